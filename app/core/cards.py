"""Card-number arithmetic shared by log redaction, webhook storage and the sandbox. No card data
is stored here."""

import re
from collections.abc import Collection
from decimal import Decimal
from functools import lru_cache
from typing import Any


def luhn_valid(number: str) -> bool:
    """The Luhn check digit test, on 12 to 19 digits."""
    if not number.isdigit() or not 12 <= len(number) <= 19:
        return False
    total = 0
    for index, char in enumerate(reversed(number)):
        digit = int(char)
        if index % 2 == 1:
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return total % 10 == 0


def mask(number: str) -> str:
    """NetValve's mask: first six, asterisks, last four (`401200******5439`)."""
    return f"{number[:6]}{'*' * (len(number) - 10)}{number[-4:]}"


# 13 to 19 digits, optionally grouped by spaces or dashes: the shape of a card number. It opens
# with `\d`, its lookbehind after it, so the engine jumps from digit to digit instead of trying
# every position (the same matches as `(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)`, twice as fast).
_PAN_CANDIDATE = re.compile(r"\d(?<!\d\d)(?:[ -]?\d){12,18}(?!\d)")
# UUIDs (with or without dashes): their digit groups can look like a grouped card number. Written
# without IGNORECASE, which halves the time: `_ALNUM` is what `[0-9A-Za-z]` matched with it (four
# more letters fold to ASCII ones: dotted I, dotless i, long s, Kelvin sign), and the first hex
# digit opens the pattern as above.
_HEX = "[0-9a-fA-F]"
_ALNUM = "[0-9A-Za-z\u0130\u0131\u017f\u212a]"
_UUID = re.compile(
    f"{_HEX}(?<!{_ALNUM}{_HEX})"
    f"(?:{_HEX}{{7}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{4}}-{_HEX}{{12}}|{_HEX}{{31}})(?!{_ALNUM})"
)
# NetValve's ids (transactionId, netvalveID, orderId, ...): digits that are not card numbers.
_ID_KEY = re.compile(r"(^id|Id|ID|_id)$")
# A card number is 13 digits in a row once its spaces and dashes are dropped. In ASCII text that
# test is one byte translation, far cheaper than the regexes, and most text fails it.
_DIGITS_TO_NUL = bytes.maketrans(b"0123456789", bytes(10))
_THIRTEEN_DIGITS = bytes(13)


def mask_candidate(candidate: str, keep: Collection[str] = ()) -> str:
    """A card-number-shaped run of digit groups with the card number in it masked: the whole
    run, or else its first or last groups, since a card number is often written with its expiry
    date or security code right after it (`4111 1111 1111 1111 12/26`), which makes the whole
    run fail the Luhn test. `keep` holds digit strings (ids) never to mask."""
    digits = re.sub(r"\D", "", candidate)
    if luhn_valid(digits) and digits not in keep:
        return mask(digits)
    parts = re.split(r"(\D)", candidate)  # digit groups at even indexes, separators between
    groups = len(parts) // 2 + 1
    if max(len(group) for group in parts[::2]) < 4:
        return candidate  # card numbers are written in groups of four or more digits, or whole
    # Longest first: the first groups (card number then expiry), then the last groups.
    for size in range(groups - 1, 0, -1):
        for first in (0, groups - size):
            window = "".join(parts[2 * first : 2 * (first + size) : 2])
            if len(window) >= 13 and luhn_valid(window) and window not in keep:
                return (
                    "".join(parts[: 2 * first])
                    + mask(window)
                    + "".join(parts[2 * (first + size) - 1 :])
                )
    return candidate


def mask_pans_in_text(text: str, keep: Collection[str] = ()) -> str:
    """`text` with every Luhn-valid card number, plain, spaced or dashed, masked as NetValve
    masks it; UUIDs, and the digit strings in `keep` (ids), are left whole."""
    if len(text) < 13 or not may_hold_pan(text):
        return text

    def masked(match: re.Match[str]) -> str:
        return mask_candidate(match.group(), keep)

    pieces: list[str] = []
    start = 0
    for found in _UUID.finditer(text):
        pieces += [_PAN_CANDIDATE.sub(masked, text[start : found.start()]), found.group()]
        start = found.end()
    pieces.append(_PAN_CANDIDATE.sub(masked, text[start:]))
    return "".join(pieces)


def may_hold_pan(text: str, separators: bytes = b" -") -> bool:
    """False only if no piece of `text` can hold a card number written with `separators`
    between its digits (a NUL byte already in the text reads as a digit here: a needless scan,
    never a missed one)."""
    if not text.isascii():
        return True  # `\d` matches other scripts' digits too: left to the regex
    return _THIRTEEN_DIGITS in text.encode().translate(_DIGITS_TO_NUL, separators)


def mask_pans(value: Any) -> Any:
    """A copy of the JSON `value` with card numbers masked in any field, as text or as a
    number; the values of id fields (`transactionId`, `orderId`, ...) are kept."""
    if isinstance(value, str):
        return mask_pans_in_text(value)
    if isinstance(value, dict):
        return {key: item if _is_id(key, item) else mask_pans(item) for key, item in value.items()}
    if isinstance(value, list):
        return [mask_pans(item) for item in value]
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return _masked_number(value)
    return value


def _masked_number(value: int | Decimal) -> int | Decimal | str:
    # A JSON number, also one written with a fraction or an exponent (`4111111111111111.0`,
    # which the webhook parser reads as a Decimal).
    if isinstance(value, Decimal) and (
        # Past 19 digits it cannot be a card number, and `1e5000` could not even be written
        # out as an integer (Python refuses past 4,300 digits).
        not value.is_finite() or value.adjusted() >= 19 or value != value.to_integral()
    ):
        return value
    digits = str(int(value))
    return mask(digits) if luhn_valid(digits) and len(digits) >= 13 else value


def id_values(value: Any) -> set[str]:
    """The digit strings held by id fields anywhere in the JSON `value`."""
    found: set[str] = set()
    _add_id_values(value, found)
    return found


def _add_id_values(value: Any, found: set[str]) -> None:
    # Only containers are descended into: a call per leaf was most of the walk's cost.
    if isinstance(value, dict):
        for key, item in value.items():
            if _is_id(key, item):
                found.add(str(item))
            elif isinstance(item, dict | list):
                _add_id_values(item, found)
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict | list):
                _add_id_values(item, found)


def _is_id(key: object, value: object) -> bool:
    # The value first: most are text that is not all digits, which settles it.
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            return False
    elif not isinstance(value, int) or isinstance(value, bool):
        return False
    return isinstance(key, str) and _is_id_key(key)


@lru_cache(maxsize=1024)
def _is_id_key(key: str) -> bool:
    # A payload's few key names recur in every event; the bound holds a sender's odd ones.
    return _ID_KEY.search(key) is not None
