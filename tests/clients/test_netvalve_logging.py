"""No API key, basic-auth password or full card number reaches a log line, whatever happens."""

import base64
from decimal import Decimal
from typing import get_args

import httpx
import pytest

from app.clients.netvalve import Approved, HppOrderRequest, Operation
from app.sandbox.cards import CARD_OUTCOMES
from tests.fixtures.gateway import DECLINE_CARD, Backend, order_id
from tests.fixtures.netvalve import (
    build_auth_failure,
    build_decline,
    build_hpf_session,
    build_transaction_record,
    build_transaction_response,
)
from tests.fixtures.settings import TEST_API_KEY, TEST_BASIC_AUTH_PASSWORD

pytestmark = pytest.mark.asyncio

# Every operation but the back office's, which only the HPF waterfall uses.
OPERATIONS = set(get_args(Operation)) - {"backoffice_sign_in", "backoffice_scripts"}


async def every_operation_and_failure(backend: Backend) -> None:
    client = backend.client
    backend.mock("GET", "/hpf/initializeSession", json=build_hpf_session())
    await client.initialize_hpf_session()

    backend.mock("POST", "/sale", json=build_transaction_response())
    sale = await client.sale(await backend.payment())
    backend.mock("POST", "/sale", json=build_decline())
    await client.sale(await backend.payment(card=DECLINE_CARD))
    backend.mock("POST", "/authorize", json=build_transaction_response(transactionID=18750))
    authorization = await client.authorize(await backend.payment())
    assert isinstance(sale, Approved)
    assert isinstance(authorization, Approved)
    assert sale.transaction_id is not None
    assert authorization.transaction_id is not None
    auth_id, sale_id = authorization.transaction_id, sale.transaction_id

    backend.mock("POST", "/capture", json=build_transaction_response())
    await client.capture(auth_id, Decimal("20.00"), final_capture=True)
    backend.mock(
        "POST",
        "/cancel",
        status=400,
        json=build_transaction_response(responseCode="GTW_2046", responseCodeType="SOFT DECLINE"),
    )
    await client.cancel(auth_id)
    backend.mock("POST", "/refund", json=build_transaction_response())
    await client.refund(sale_id, Decimal("5.00"))
    backend.mock("GET", "/inquiry", json=build_transaction_response())
    await client.inquiry(sale_id)
    backend.mock("GET", "/transaction", json=build_transaction_record())
    await client.get_transaction(sale_id)
    backend.mock(
        "GET",
        "/order",
        status=404,
        json=build_transaction_response(responseCode="GTW_2103", responseCodeType="SOFT DECLINE"),
    )
    await client.get_order(client_order_id=order_id())
    backend.mock("POST", "/hpp/order", json=build_transaction_response(orderState="CREATED"))
    await client.create_hpp_order(
        HppOrderRequest(
            amount=Decimal("44.00"),
            currency="EUR",
            client_order_id=order_id(),
            success_url="https://shop.example.com/ok",
            cancel_url="https://shop.example.com/cancel",
            failed_url="https://shop.example.com/failed",
        )
    )

    backend.mock("GET", "/inquiry", status=401, json=build_auth_failure())
    await backend.wrong_key_client().inquiry(sale_id)
    backend.mock("POST", "/sale", error=httpx.ConnectError("refused"))
    await backend.unreachable_client().sale(await backend.payment())
    for kind, answer in (
        ("reset", {"error": httpx.RemoteProtocolError("closed")}),
        ("malformed", {"content": b'{"traceID": "'}),
        ("http_error", {"status": 502, "content": b"<html>Bad Gateway</html>"}),
    ):
        await backend.fault("/sale", kind)
        backend.mock("POST", "/sale", **answer)
        await client.sale(await backend.payment())


async def test_no_secret_or_card_number_in_any_log_line(backend, captured_logs):
    await every_operation_and_failure(backend)

    lines = captured_logs.lines()
    calls = [line for line in lines if line["event"] == "netvalve.call"]
    assert {line["operation"] for line in calls} == OPERATIONS
    outcomes = {line["outcome"] for line in calls}
    assert outcomes >= {"Approved", "Declined", "AuthenticationFailed", "UnknownOutcome"}
    assert "Unavailable" in outcomes
    basic = base64.b64encode(f"merchant:{TEST_BASIC_AUTH_PASSWORD}".encode()).decode()
    for secret in (TEST_API_KEY, TEST_BASIC_AUTH_PASSWORD, basic, *CARD_OUTCOMES):
        assert secret not in captured_logs.text
