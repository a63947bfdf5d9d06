"""NetValve's answer to a money operation, as its caller is told it: the payment, or an error
named after what NetValve said."""

import structlog

from app.models.payment import Payment, PaymentState
from app.models.payment_attempt import AttemptOutcome
from app.services.netvalve.errors import NetvalveError
from app.services.netvalve.results import PaymentResult, to_response
from app.services.netvalve.settlement import Settlement

log = structlog.get_logger(__name__)


class PaymentDeclined(NetvalveError):
    """NetValve declined; the body carries the payment and NetValve's code."""

    status_code = 402


class GatewayValidationFailed(NetvalveError):
    """NetValve refused the request's fields (e.g. an expired or used payment token)."""

    status_code = 422


class GatewayUnavailable(NetvalveError):
    """NetValve could not be reached; nothing was sent, so a retry is safe."""

    status_code = 503

    def __init__(self, message: str = "NetValve could not be reached; retry shortly.") -> None:
        super().__init__(message, headers={"Retry-After": "5"})


class GatewayMisconfigured(NetvalveError):
    """NetValve refused this service's credentials."""

    status_code = 502
    message = "NetValve refused this service's credentials; an operator must fix them."


def outcome_of(payment: Payment, settlement: Settlement) -> PaymentResult:
    """The caller's answer once NetValve's answer is applied: the payment (in progress while
    the outcome is not final), or the error that names NetValve's refusal."""
    response = to_response(payment)
    if payment.in_flight is not None or payment.state is PaymentState.PENDING:
        return PaymentResult(response, in_progress=True)
    outcome = settlement.outcome
    if outcome is AttemptOutcome.DECLINED:
        raise PaymentDeclined(
            settlement.response_message or "NetValve declined the request.",
            extra={
                "payment": response.model_dump(mode="json"),
                "response_code": settlement.response_code,
                "response_message": settlement.response_message,
                "decline_type": "hard" if settlement.hard_decline else "soft",
            },
        )
    if outcome is AttemptOutcome.VALIDATION_FAILED:
        errors = settlement.field_errors
        raise GatewayValidationFailed(
            "; ".join(error.response_message for error in errors)
            or "NetValve refused the request.",
            extra={"response_codes": [error.response_code for error in errors]},
        )
    if outcome is AttemptOutcome.AUTHENTICATION_FAILED:
        log.error("netvalve.credentials_refused", response_code=settlement.response_code)
        raise GatewayMisconfigured
    if outcome is AttemptOutcome.UNAVAILABLE:
        raise GatewayUnavailable
    return PaymentResult(response)
