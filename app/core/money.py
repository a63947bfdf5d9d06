"""Money at the edges: ISO 4217 exponents and NetValve's two-decimal wire amounts.

Amounts are `Decimal` everywhere; a float never holds money. Rounding is ROUND_HALF_UP, the
rule shoppers and accountants expect (2.675 -> 2.68), applied once, where a value is quantised.
"""

import json
import uuid
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

ROUNDING = ROUND_HALF_UP

# ISO 4217 minor-unit exponents that differ from 2; every other active code uses 2.
_EXPONENTS = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
    "CLF": 4,
    "UYW": 4,
}
# Codes NetValve may be asked for; an unknown code is refused rather than assumed to be 2.
_KNOWN = frozenset(
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHF CLF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP "
    "GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS "
    "KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR "
    "MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF "
    "SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD "
    "TZS UAH UGX USD UYI UYU UYW UZS VED VES VND VUV WST XAF XCD XOF XPF YER ZAR ZMW ZWG".split()
)
# MGA and MRU have a non-decimal minor unit (1/5); ISO lists exponent 2 but cards settle whole.
_EXPONENTS.update({"MGA": 0, "MRU": 0})


class UnknownCurrency(ValueError):
    """Not an ISO 4217 currency code this service knows."""


def normalise_currency(code: str) -> str:
    upper = code.strip().upper()
    if upper not in _KNOWN:
        raise UnknownCurrency(f"unknown currency {code!r}")
    return upper


def exponent(currency: str) -> int:
    return _EXPONENTS.get(normalise_currency(currency), 2)


def quantize(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded half-up to the currency's minor unit, e.g. 98.9009 EUR -> 98.90."""
    return amount.quantize(Decimal(1).scaleb(-exponent(currency)), rounding=ROUNDING)


def to_minor_units(amount: Decimal, currency: str) -> int:
    return int(quantize(amount, currency).scaleb(exponent(currency)))


def from_minor_units(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


def wire_amount(amount: Decimal) -> Decimal:
    """NetValve's amount: exactly two decimals (GTW_2003), rounded half-up."""
    try:
        wired = amount.quantize(Decimal("0.01"), rounding=ROUNDING)
    except InvalidOperation:
        raise ValueError(f"not a finite amount: {amount}") from None
    if not wired.is_finite():
        raise ValueError(f"not a finite amount: {amount}")
    return wired


def json_with_amounts(body: object) -> bytes:
    """JSON with every `Decimal` as a number with exactly two decimals (`44.00`).

    The json module can only emit Decimals as strings; each one goes out as a unique quoted
    marker that is then replaced by the bare number.
    """
    marker = f"@amount-{uuid.uuid4().hex}-"
    amounts: list[str] = []

    def default(value: object) -> str:
        if isinstance(value, Decimal):
            amounts.append(format(wire_amount(value), "f"))
            return f"{marker}{len(amounts) - 1}"
        raise TypeError(f"cannot encode {type(value).__name__}")

    text = json.dumps(body, default=default, separators=(",", ":"))
    for index, amount in enumerate(amounts):
        text = text.replace(f'"{marker}{index}"', amount)
    return text.encode()
