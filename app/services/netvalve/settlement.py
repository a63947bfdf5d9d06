"""What the ledger applies to an attempt: a `Settlement`, whatever told us of it.

NetValve's answer to the request (`settlement_of`), what its record of the transaction says
(`settlement_of_record`), or what reconciliation concluded from its records (built directly)
all become the same type, so the ledger has one thing to apply and nothing pretends to be a
gateway answer.
"""

from dataclasses import dataclass

from app.clients.netvalve import (
    Approved,
    AuthenticationFailed,
    Declined,
    FieldError,
    NetvalveResult,
    Pending,
    TransactionRecord,
    UnknownOutcome,
    ValidationFailed,
)
from app.models.payment_attempt import AttemptOutcome

# NetValve's codes for a capture, refund or cancel it has done already.
_ALREADY = {"GTW_2045", "GTW_2046", "GTW_2047"}
_ANSWERED = {
    Approved: AttemptOutcome.APPROVED,
    Pending: AttemptOutcome.PENDING,
    Declined: AttemptOutcome.DECLINED,
}
# Outcomes after which NetValve may still decide: the attempt stays open.
_UNDECIDED = frozenset({AttemptOutcome.PENDING, AttemptOutcome.UNKNOWN})


@dataclass(frozen=True, slots=True, kw_only=True)
class Settlement:
    """How one attempt ended, as far as NetValve has told us.

    `captured_minor` and `refunded_minor` are totals read from NetValve's record of the parent
    (a capture or refund settled from it), else None; `absorbed_refunds` are that record's
    approved refunds, (transaction id, minor units) each.
    """

    outcome: AttemptOutcome
    transaction_id: int | None = None
    response_code: str | None = None
    response_message: str | None = None
    hard_decline: bool = False
    card_number: str | None = None
    card_type: str | None = None
    field_errors: tuple[FieldError, ...] = ()
    reason: str | None = None
    """Why there is no answer (`timeout`, `known_transaction`, ...), for unknown or
    unavailable outcomes."""
    already_done: bool = False
    """NetValve refused a capture, refund or cancel as done already: its record decides."""
    not_found: bool = False
    """NetValve has no record of the request: it was not processed."""
    http_status: int | None = None
    elapsed_ms: float = 0.0
    captured_minor: int | None = None
    refunded_minor: int | None = None
    absorbed_refunds: tuple[tuple[int, int], ...] | None = None

    @property
    def final(self) -> bool:
        """Whether the attempt ends with this; False while NetValve may still decide."""
        return self.outcome not in _UNDECIDED and not self.already_done


def settlement_of(result: NetvalveResult) -> Settlement:
    """NetValve's answer to an attempt's request."""
    if isinstance(result, Approved | Pending | Declined):
        declined = isinstance(result, Declined)
        return Settlement(
            outcome=_ANSWERED[type(result)],
            transaction_id=result.transaction_id,
            response_code=result.response_code,
            response_message=result.response_message,
            hard_decline=isinstance(result, Declined) and result.hard,
            card_number=result.card_number,
            card_type=result.card_type,
            already_done=declined
            and result.response_code in _ALREADY
            and result.operation in ("capture", "refund", "cancel"),
            not_found=declined and result.http_status == 404,
            http_status=result.http_status,
            elapsed_ms=result.elapsed_ms,
        )
    if isinstance(result, ValidationFailed):
        first = result.errors[0] if result.errors else None
        return Settlement(
            outcome=AttemptOutcome.VALIDATION_FAILED,
            response_code=first.response_code if first else None,
            response_message=first.response_message if first else None,
            field_errors=result.errors,
            http_status=result.http_status,
            elapsed_ms=result.elapsed_ms,
        )
    if isinstance(result, AuthenticationFailed):
        return Settlement(
            outcome=AttemptOutcome.AUTHENTICATION_FAILED,
            response_code=result.response_code,
            http_status=result.http_status,
            elapsed_ms=result.elapsed_ms,
        )
    unknown = isinstance(result, UnknownOutcome)
    return Settlement(
        outcome=AttemptOutcome.UNKNOWN if unknown else AttemptOutcome.UNAVAILABLE,
        reason=result.reason,
        http_status=result.http_status,
        elapsed_ms=result.elapsed_ms,
    )


def settlement_of_record(record: TransactionRecord) -> Settlement:
    """A sale or authorization, as NetValve's record of it says it ended."""
    outcome = {"approved": AttemptOutcome.APPROVED, "pending": AttemptOutcome.PENDING}.get(
        record.outcome, AttemptOutcome.DECLINED
    )
    # A record without a code type is read as its sale would have been answered: a decline
    # that does not say hard is soft.
    code_type = record.response_code_type or ""
    return Settlement(
        outcome=outcome,
        transaction_id=record.transaction_id,
        response_code=record.response_code,
        response_message=record.response_message,
        hard_decline=outcome is AttemptOutcome.DECLINED and code_type.upper() == "HARD DECLINE",
        card_number=record.card_number or None,
        card_type=record.card_type or None,
        http_status=200,
    )
