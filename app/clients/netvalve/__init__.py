"""A small typed client for NetValve's payment API (shared/NETVALVE_API.md).

`NetvalveClient` (client.py) sends; every call returns one of the results in results.py, with
typed fields, so that no caller reads NetValve's JSON. Its wire names stay in this package.
"""

from app.clients.netvalve.client import NetvalveClient, NetvalveConfigurationError
from app.clients.netvalve.records import TransactionRecord
from app.clients.netvalve.requests import Customer, HppOrderRequest, PaymentRequest
from app.clients.netvalve.results import (
    Approved,
    AuthenticationFailed,
    Declined,
    FieldError,
    HpfScript,
    HpfScriptList,
    HpfSessionInit,
    HppOrder,
    NetvalveResult,
    Operation,
    Pending,
    Unavailable,
    UnknownOutcome,
    ValidationFailed,
    is_not_found,
    read_record,
)
from app.clients.netvalve.values import as_decimal, as_int

__all__ = [
    "Approved",
    "AuthenticationFailed",
    "Customer",
    "Declined",
    "FieldError",
    "HpfScript",
    "HpfScriptList",
    "HpfSessionInit",
    "HppOrder",
    "HppOrderRequest",
    "NetvalveClient",
    "NetvalveConfigurationError",
    "NetvalveResult",
    "Operation",
    "PaymentRequest",
    "Pending",
    "TransactionRecord",
    "Unavailable",
    "UnknownOutcome",
    "ValidationFailed",
    "as_decimal",
    "as_int",
    "is_not_found",
    "read_record",
]
