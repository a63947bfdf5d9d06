"""The errors more than one module of the NetValve service raises; each other error is declared
next to the code that raises it."""

from app.core.errors import AppError


class NetvalveError(AppError):
    """Base of the NetValve routes' errors."""


class PaymentNotFound(NetvalveError):
    """No payment in the ledger matches."""

    status_code = 404
    message = "No payment matches."


class InvalidAmount(NetvalveError):
    """The amount is not positive, or has more decimals than the currency."""

    status_code = 422


class PaymentInProgress(NetvalveError):
    """Another operation on this payment has not finished; retry shortly."""

    status_code = 409

    def __init__(self, message: str = "Another operation on this payment is in progress.") -> None:
        super().__init__(message, headers={"Retry-After": "2"})


class PaymentStateConflict(NetvalveError):
    """The payment's state does not allow this operation."""

    status_code = 409
