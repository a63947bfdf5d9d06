"""What a NetValve call returns: one result type per outcome, each with typed fields.

NetvalveResult
 ├── Approved             the gateway did it (GTW_1xxx other than pending)
 │    ├── HpfSessionInit  an HPF session: payment token, script and its integrity hash
 │    ├── HppOrder        a hosted-payment-page order: where to send the customer
 │    └── HpfScriptList   the back office's HPF scripts, and the one to use
 ├── Pending              GTW_1002: resolve later with `inquiry`
 ├── Declined             soft or hard decline, or a refused operation (code + message)
 ├── ValidationFailed     HTTP 400 with NetValve's JSON array of field errors
 ├── AuthenticationFailed HTTP 401/403, GTW_9001/9002/2082
 ├── UnknownOutcome       sent, but no trustworthy answer: read timeout, connection reset,
 │                        5xx, 429, unparseable body. It may have been processed: never
 │                        resend a sale; ask `inquiry` instead.
 └── Unavailable          never sent (connection refused, connect or pool timeout); the only
                          result that is safe to retry automatically.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from app.clients.netvalve.records import TransactionRecord, parse_record
from app.clients.netvalve.values import as_int, as_text

Operation = Literal[
    "sale",
    "authorize",
    "capture",
    "cancel",
    "refund",
    "inquiry",
    "get_transaction",
    "get_order",
    "hpf_session",
    "hpp_order",
    "backoffice_sign_in",
    "backoffice_scripts",
]
# Lookups answer 200 with a record whose own response code describes the transaction, not the
# lookup; for them any 200 JSON object is a successful read.
LOOKUPS: frozenset[Operation] = frozenset(
    {"get_transaction", "get_order", "backoffice_sign_in", "backoffice_scripts"}
)
_RECORD_LOOKUPS = frozenset({"get_transaction", "get_order"})


@dataclass(frozen=True, slots=True, kw_only=True)
class _Result:
    operation: Operation
    http_status: int | None = None
    elapsed_ms: float = 0.0

    @property
    def retry_safe(self) -> bool:
        """True only when the request provably never reached NetValve."""
        return False


@dataclass(frozen=True, slots=True, kw_only=True)
class _Answered(_Result):
    """NetValve answered with a JSON object, read into typed fields.

    `card_number` is masked, as NetValve sends it. `status` is the transaction's state in a
    lookup or inquiry ("Settled", ...). `record` is NetValve's record, for GET /transaction and
    GET /order. `body` is the raw answer, kept only until every caller reads the typed fields;
    a result built from a `body` alone has its typed fields read from it."""

    response_code: str | None = None
    response_message: str | None = None
    response_code_type: str | None = None
    transaction_id: int | None = None
    order_id: int | None = None
    card_number: str | None = None
    card_type: str | None = None
    status: str | None = None
    record: TransactionRecord | None = None
    body: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.body or any(getattr(self, name) is not None for name in _ANSWER_FIELDS):
            return
        for name, value in answer_fields(self.operation, self.body).items():
            object.__setattr__(self, name, value)


_ANSWER_FIELDS = ("transaction_id", "order_id", "card_number", "card_type", "status", "record")


def answer_fields(operation: Operation, body: Mapping[str, Any]) -> dict[str, Any]:
    """The typed fields of an answer, from NetValve's JSON object."""
    return {
        "transaction_id": as_int(body.get("transactionID", body.get("transactionId"))),
        "order_id": as_int(body.get("orderId")),
        "card_number": as_text(body.get("cardNumber")),
        "card_type": as_text(body.get("cardType")),
        "status": as_text(body.get("status")),
        "record": parse_record(body) if operation in _RECORD_LOOKUPS else None,
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Approved(_Answered):
    """NetValve did it (GTW_1xxx other than pending); for lookups, the record was read."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Pending(_Answered):
    """GTW_1002: NetValve has not decided yet; ask `inquiry` later."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Declined(_Answered):
    @property
    def hard(self) -> bool:
        """Hard declines will not succeed on retry with the same card (3000-range codes)."""
        return (self.response_code_type or "").upper() == "HARD DECLINE"


@dataclass(frozen=True, slots=True, kw_only=True)
class HpfSessionInit(Approved):
    """An HPF session: the token the customer's card is bound to, and the script that shows
    the card fields, with its subresource-integrity hash when NetValve sends one."""

    payment_token: str
    script_src: str | None = None
    integrity: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class HppOrder(Approved):
    """A hosted-payment-page order; the customer pays at `redirect_url`."""

    redirect_url: str


@dataclass(frozen=True, slots=True)
class HpfScript:
    """One HPF script of the back office (an undocumented API: every field may be absent)."""

    script_src: str | None
    integrity: str | None = None
    status: str | None = None
    deleted: bool = False
    is_default: bool = False
    created: str | None = None

    @property
    def usable(self) -> bool:
        return self.status == "ACTIVE" and not self.deleted and bool(self.script_src)


@dataclass(frozen=True, slots=True, kw_only=True)
class HpfScriptList(Approved):
    scripts: tuple[HpfScript, ...] = ()

    @property
    def preferred(self) -> HpfScript | None:
        """The newest usable default script, else the newest usable one."""
        usable = [script for script in self.scripts if script.usable]
        defaults = [script for script in usable if script.is_default]
        ranked = sorted(defaults or usable, key=lambda script: script.created or "")
        return ranked[-1] if ranked else None


@dataclass(frozen=True, slots=True)
class FieldError:
    response_code: str
    response_message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ValidationFailed(_Result):
    errors: tuple[FieldError, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthenticationFailed(_Result):
    response_code: str | None = None
    response_message: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownOutcome(_Result):
    reason: str
    """`timeout`, `connection_lost`, `http_5xx`, `http_429`, `malformed_body`, ..."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Unavailable(_Result):
    reason: str

    @property
    def retry_safe(self) -> bool:
        return True


NetvalveResult = (
    Approved
    | Pending
    | Declined
    | ValidationFailed
    | AuthenticationFailed
    | UnknownOutcome
    | Unavailable
)


def is_not_found(result: NetvalveResult) -> bool:
    """NetValve answered that it has no such transaction or order (GTW_2103, HTTP 404)."""
    return isinstance(result, Declined) and result.http_status == 404


def read_record(result: NetvalveResult) -> TransactionRecord | None:
    """The record in a lookup's answer; None if there is no readable record in it."""
    if not isinstance(result, Approved | Pending | Declined) or result.http_status != 200:
        return None
    return result.record if result.record is not None else parse_record(result.body)


def outcome_name(result: NetvalveResult) -> str:
    """The outcome's name for logs and metrics: `Approved` for its typed variants too."""
    return "Approved" if isinstance(result, Approved) else type(result).__name__
