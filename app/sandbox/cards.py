"""Test cards and amounts, and what each makes the sandbox answer (NETVALVE_API.md §11)."""

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Outcome:
    response_code: str
    response_message: str
    response_code_type: str  # APPROVED | PENDING | SOFT DECLINE | HARD DECLINE
    bank_code: str
    bank_message: str

    @property
    def approved(self) -> bool:
        return self.response_code_type == "APPROVED"

    @property
    def pending(self) -> bool:
        return self.response_code_type == "PENDING"


APPROVED = Outcome(
    "GTW_1000", "Transaction Approved/ Request Successful.", "APPROVED", "00", "SUCCESS"
)
PENDING = Outcome("GTW_1002", "Transaction status is Pending.", "PENDING", "", "")
DO_NOT_HONOUR = Outcome("BNK_2005", "Do Not Honour", "SOFT DECLINE", "05", "DO NOT HONOUR")
INSUFFICIENT_FUNDS = Outcome(
    "BNK_2011", "Insufficient Funds", "SOFT DECLINE", "51", "INSUFFICIENT FUNDS"
)
LOST_CARD = Outcome("BNK_3002", "Lost Card", "HARD DECLINE", "41", "LOST CARD")
SUSPECTED_FRAUD = Outcome("BNK_3004", "Suspected Fraud", "HARD DECLINE", "59", "SUSPECTED FRAUD")
PROCESSING_ERROR = Outcome("GTW_9999", "Processing error.", "HARD DECLINE", "96", "SYSTEM ERROR")

# §11: TSYS approve and decline cards, RYVYL, and the 3DS cards (frictionless/attempted approve).
CARD_OUTCOMES: dict[str, Outcome] = {
    "6011000993026909": APPROVED,
    "4012000098765439": APPROVED,
    "371449635392376": APPROVED,
    "4716160000000009": APPROVED,
    "4100000000000100": APPROVED,
    "5100000000000107": APPROVED,
    "4100000000100009": APPROVED,
    "5100000000100006": APPROVED,
    "4532802195368940": DO_NOT_HONOUR,
}

# Amounts named after the code they trigger, for any card that would otherwise approve.
AMOUNT_OUTCOMES: dict[Decimal, Outcome] = {
    Decimal("1002.00"): PENDING,
    Decimal("2005.00"): DO_NOT_HONOUR,
    Decimal("2011.00"): INSUFFICIENT_FUNDS,
    Decimal("3002.00"): LOST_CARD,
    Decimal("3004.00"): SUSPECTED_FRAUD,
    Decimal("9999.00"): PROCESSING_ERROR,
}


def outcome_for(card_number: str, amount: Decimal) -> Outcome:
    """The card decides first (a declining card always declines), then the amount."""
    card = CARD_OUTCOMES.get(card_number, APPROVED)
    if not card.approved:
        return card
    return AMOUNT_OUTCOMES.get(amount, APPROVED)


def card_type(number: str) -> str:
    if number.startswith("4"):
        return "VISA"
    if number[:2] in {"34", "37"}:
        return "AMEX"
    if number.startswith(("6011", "65")):
        return "DISCOVER"
    if number[:2] in {"51", "52", "53", "54", "55"} or (
        number[:4].isdigit() and (2221 <= int(number[:4]) <= 2720)
    ):
        return "MASTERCARD"
    return "UNKNOWN"
