"""Client scenarios, each run against respx and against the sandbox with the same assertions."""

import dataclasses
import uuid
from decimal import Decimal

import httpx
import pytest

from app.clients.netvalve import (
    Approved,
    AuthenticationFailed,
    Declined,
    HppOrderRequest,
    Pending,
    Unavailable,
    UnknownOutcome,
    ValidationFailed,
)
from tests.fixtures.gateway import DECLINE_CARD, Backend, order_id
from tests.fixtures.netvalve import (
    build_auth_failure,
    build_decline,
    build_hpf_session,
    build_pending,
    build_transaction_record,
    build_transaction_response,
    build_validation_errors,
)

pytestmark = pytest.mark.asyncio


def refusal(code: str, message: str) -> dict[str, str]:
    return {
        "traceID": "2d9c8b7a-0000-4000-8000-000000000005",
        "responseTimestamp": "2024-11-08T12:38:58.140+00:00",
        "responseCode": code,
        "responseMessage": message,
        "responseCodeType": "SOFT DECLINE",
    }


async def approved_sale(backend: Backend) -> Approved:
    backend.mock("POST", "/sale", json=build_transaction_response())
    result = await backend.client.sale(await backend.payment())
    assert isinstance(result, Approved), result
    return result


async def approved_authorization(backend: Backend) -> Approved:
    backend.mock(
        "POST", "/authorize", json=build_transaction_response(transactionType="AUTHORIZATION")
    )
    result = await backend.client.authorize(await backend.payment())
    assert isinstance(result, Approved), result
    return result


class TestSuccessPaths:
    async def test_hpf_session(self, backend):
        backend.mock("GET", "/hpf/initializeSession", json=build_hpf_session())

        result = await backend.client.initialize_hpf_session()

        assert isinstance(result, Approved)
        assert result.response_code == "GTW_1003"
        assert result.body["paymentToken"]
        assert "paymentToken=" in result.body["netvalveScriptSrc"]

    async def test_sale(self, backend):
        result = await approved_sale(backend)

        assert result.response_code == "GTW_1000"
        assert result.transaction_id is not None
        assert result.body["cardNumber"] == "401200******5439"

    async def test_authorize_then_full_capture(self, backend):
        authorization = await approved_authorization(backend)
        backend.mock("POST", "/capture", json=build_transaction_response(transactionID=18748))

        captured = await backend.client.capture(authorization.transaction_id, Decimal("44.00"))

        assert isinstance(captured, Approved)
        assert captured.transaction_id != authorization.transaction_id

    async def test_partial_capture_with_final_capture(self, backend):
        authorization = await approved_authorization(backend)
        backend.mock("POST", "/capture", json=build_transaction_response(transactionID=18748))

        captured = await backend.client.capture(
            authorization.transaction_id, Decimal("30.00"), final_capture=True
        )

        assert isinstance(captured, Approved)

    async def test_cancel(self, backend):
        authorization = await approved_authorization(backend)
        backend.mock("POST", "/cancel", json=build_transaction_response(transactionType="CANCEL"))

        result = await backend.client.cancel(authorization.transaction_id)

        assert isinstance(result, Approved)

    async def test_partial_then_full_refund(self, backend):
        sale = await approved_sale(backend)
        backend.mock("POST", "/refund", json=build_transaction_response(transactionID=18748))
        backend.mock("POST", "/refund", json=build_transaction_response(transactionID=18749))

        partial = await backend.client.refund(sale.transaction_id, Decimal("10.00"))
        rest = await backend.client.refund(sale.transaction_id)

        assert isinstance(partial, Approved)
        assert isinstance(rest, Approved)

    async def test_inquiry(self, backend):
        sale = await approved_sale(backend)
        backend.mock("GET", "/inquiry", json=build_transaction_response())

        result = await backend.client.inquiry(sale.transaction_id)

        assert isinstance(result, Approved)
        assert result.transaction_id == sale.transaction_id

    async def test_get_transaction(self, backend):
        sale = await approved_sale(backend)
        backend.mock("GET", "/transaction", json=build_transaction_record(netvalveID=18747))

        result = await backend.client.get_transaction(sale.transaction_id)

        assert isinstance(result, Approved)
        assert result.body["netvalveID"] in {sale.transaction_id, 18747}

    async def test_get_order_by_client_order_id(self, backend):
        request = await backend.payment()
        backend.mock("POST", "/sale", json=build_transaction_response())
        await backend.client.sale(request)
        backend.mock(
            "GET", "/order", json=build_transaction_record(clientOrderId=request.client_order_id)
        )

        result = await backend.client.get_order(client_order_id=request.client_order_id)

        assert isinstance(result, Approved)
        assert result.body["clientOrderId"] == request.client_order_id

    async def test_hpp_order(self, backend):
        backend.mock(
            "POST",
            "/hpp/order",
            json=build_transaction_response(
                orderState="CREATED", redirectUrl="https://checkout.uat.sandbox-netvalve.com/?x"
            ),
        )

        result = await backend.client.create_hpp_order(
            HppOrderRequest(
                amount=Decimal("44.00"),
                currency="EUR",
                client_order_id=order_id(),
                success_url="https://shop.example.com/ok",
                cancel_url="https://shop.example.com/cancel",
                failed_url="https://shop.example.com/failed",
            )
        )

        assert isinstance(result, Approved)
        assert result.body["orderState"] == "CREATED"
        assert result.body["redirectUrl"]


class TestGatewayOutcomes:
    async def test_decline_card(self, backend):
        backend.mock("POST", "/sale", json=build_decline())

        result = await backend.client.sale(await backend.payment(card=DECLINE_CARD))

        assert isinstance(result, Declined)
        assert (result.response_code, result.response_code_type) == ("BNK_2005", "SOFT DECLINE")
        assert not result.hard
        assert result.http_status == 200

    async def test_pending_amount(self, backend):
        backend.mock("POST", "/sale", json=build_pending())

        result = await backend.client.sale(await backend.payment(amount="1002.00"))

        assert isinstance(result, Pending)
        assert result.response_code == "GTW_1002"

    async def test_validation_array_for_an_unknown_token(self, backend):
        backend.mock(
            "POST", "/sale", status=400, json=build_validation_errors("GTW_2063", "paymentToken")
        )
        request = dataclasses.replace(await backend.payment(), payment_token=str(uuid.uuid4()))

        result = await backend.client.sale(request)

        assert isinstance(result, ValidationFailed)
        assert result.http_status == 400
        assert [error.response_code for error in result.errors] == ["GTW_2063"]
        assert "paymentToken" in result.errors[0].response_message

    async def test_wrong_api_key(self, backend):
        backend.mock("GET", "/inquiry", status=401, json=build_auth_failure())

        result = await backend.wrong_key_client().inquiry(18747)

        assert isinstance(result, AuthenticationFailed)
        assert (result.http_status, result.response_code) == (401, "GTW_9001")

    async def test_capture_of_a_sale_is_refused(self, backend):
        sale = await approved_sale(backend)
        backend.mock(
            "POST",
            "/capture",
            status=400,
            json=refusal("GTW_2046", "Transaction already captured."),
        )

        result = await backend.client.capture(sale.transaction_id, Decimal("44.00"))

        assert isinstance(result, Declined)
        assert (result.http_status, result.response_code) == (400, "GTW_2046")

    async def test_refund_beyond_the_remainder_is_refused(self, backend):
        sale = await approved_sale(backend)
        backend.mock("POST", "/refund", json=build_transaction_response(transactionID=18748))
        backend.mock(
            "POST",
            "/refund",
            status=400,
            json=refusal("GTW_2108", "Refund amount exceeds the remaining amount."),
        )

        partial = await backend.client.refund(sale.transaction_id, Decimal("30.00"))
        beyond = await backend.client.refund(sale.transaction_id, Decimal("20.00"))

        assert isinstance(partial, Approved)
        assert isinstance(beyond, Declined)
        assert beyond.response_code == "GTW_2108"

    async def test_inquiry_of_an_unknown_transaction(self, backend):
        backend.mock(
            "GET",
            "/inquiry",
            status=404,
            json=refusal("GTW_2103", "Reference transaction not found."),
        )

        result = await backend.client.inquiry(999_999_999)

        assert isinstance(result, Declined)
        assert (result.http_status, result.response_code) == (404, "GTW_2103")


class TestTransportOutcomes:
    async def test_timeout_after_sending_is_an_unknown_outcome(self, backend):
        await backend.fault("/sale", "hang", hang_seconds=4)
        backend.mock("POST", "/sale", error=httpx.ReadTimeout("timed out"))

        result = await backend.client.sale(await backend.payment())

        assert isinstance(result, UnknownOutcome)
        assert result.reason == "timeout"
        assert not result.retry_safe

    async def test_connection_refused_is_unavailable_and_retry_safe(self, backend):
        backend.mock("POST", "/sale", error=httpx.ConnectError("connection refused"))
        request = await backend.payment()

        result = await backend.unreachable_client().sale(request)

        assert isinstance(result, Unavailable)
        assert result.reason == "connection_refused"
        assert result.retry_safe

    async def test_502_is_an_unknown_outcome(self, backend):
        await backend.fault("/sale", "http_error", status=502, when="after")
        backend.mock("POST", "/sale", status=502, content=b"<html>Bad Gateway</html>")

        result = await backend.client.sale(await backend.payment())

        assert isinstance(result, UnknownOutcome)
        assert (result.http_status, result.reason) == (502, "http_502")

    async def test_malformed_body_is_an_unknown_outcome(self, backend):
        await backend.fault("/sale", "malformed")
        backend.mock("POST", "/sale", content=b'{"traceID": "')

        result = await backend.client.sale(await backend.payment())

        assert isinstance(result, UnknownOutcome)
        assert (result.http_status, result.reason) == (200, "malformed_body")

    async def test_reset_after_processing_is_an_unknown_outcome(self, backend):
        await backend.fault("/sale", "reset")
        backend.mock("POST", "/sale", error=httpx.RemoteProtocolError("peer closed connection"))

        result = await backend.client.sale(await backend.payment())

        assert isinstance(result, UnknownOutcome)
        assert result.reason == "connection_lost"
