"""The sandbox's rules, as a client sees them over a real socket."""

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.clients.netvalve import Approved, Declined, Pending, UnknownOutcome, ValidationFailed
from app.sandbox.server import SandboxServer
from tests.fixtures.gateway import (
    DECLINE_CARD,
    Receiver,
    SandboxBackend,
    order_id,
    sandbox_headers,
    sandbox_settings,
)

pytestmark = pytest.mark.asyncio


async def approved(result_awaitable: Any) -> Approved:
    result = await result_awaitable
    assert isinstance(result, Approved), result
    return result


async def refused(result_awaitable: Any, code: str) -> Declined:
    result = await result_awaitable
    assert isinstance(result, Declined), result
    assert result.response_code == code, result
    return result


class TestHostedPaymentFieldsFlow:
    async def test_session_token_card_and_sale(self, sandbox: SandboxBackend):
        session = await approved(sandbox.client.initialize_hpf_session())
        assert session.response_code == "GTW_1003"
        token = session.body["paymentToken"]
        assert f"paymentToken={token}" in session.body["netvalveScriptSrc"]
        _header, claims, _ = session.body["jwtToken"].split(".")
        decoded = json.loads(_b64(claims))
        assert decoded["exp"] - decoded["iat"] == 300
        assert decoded["iss"] == "NETVALVE"

        sale = await approved(sandbox.client.sale(await sandbox.payment()))

        assert sale.response_code == "GTW_1000"
        assert isinstance(sale.transaction_id, int)

    async def test_a_token_pays_once(self, sandbox: SandboxBackend):
        request = await sandbox.payment()
        await approved(sandbox.client.sale(request))

        again = await sandbox.client.sale(
            type(request)(
                amount=request.amount,
                currency=request.currency,
                client_order_id=order_id(),
                payment_token=request.payment_token,
            )
        )

        assert isinstance(again, ValidationFailed)
        assert again.errors[0].response_code == "GTW_2063"
        assert "used" in again.errors[0].response_message

    async def test_a_token_without_a_card_is_refused(self, sandbox: SandboxBackend):
        session = await approved(sandbox.client.initialize_hpf_session())
        request = await sandbox.payment()

        result = await sandbox.client.sale(
            type(request)(
                amount=request.amount,
                currency="EUR",
                client_order_id=order_id(),
                payment_token=session.body["paymentToken"],
            )
        )

        assert isinstance(result, ValidationFailed)
        assert "no card" in result.errors[0].response_message

    async def test_an_expired_token_is_refused(self):
        server = SandboxServer(sandbox_settings(sandbox_token_ttl_seconds=0.2))
        backend = SandboxBackend(server.start())
        try:
            request = await backend.payment()
            await asyncio.sleep(0.3)

            result = await backend.client.sale(request)

            assert isinstance(result, ValidationFailed)
            assert "expired" in result.errors[0].response_message
        finally:
            await backend.close()
            server.stop()

    async def test_tokenize_validates_the_card(self, sandbox: SandboxBackend):
        session = await approved(sandbox.client.initialize_hpf_session())

        response = await sandbox.admin.post(
            "/hpf/tokenize",
            json={
                "paymentToken": session.body["paymentToken"],
                "cardNumber": "4012000098765438",
                "cardExpireMonth": "13",
                "cardExpireYear": "2030",
                "cardSecurityCode": "9",
            },
        )

        assert response.status_code == 400
        codes = {error["responseCode"] for error in response.json()}
        assert codes == {"GTW_2034", "GTW_2023", "GTW_2006"}
        assert "4012000098765438" not in response.text

    async def test_demo_page_and_sdk_are_served(self, sandbox: SandboxBackend):
        page = await sandbox.admin.get("/hpf/demo")
        sdk = await sandbox.admin.get("/hpf/sdk.js")

        assert page.status_code == 200
        assert "Hosted payment fields" in page.text
        assert "{{PAYMENT_TOKEN}}" not in page.text
        assert sdk.status_code == 200
        assert "tokenizeFields" in sdk.text


class TestCardsAndAmounts:
    async def test_decline_card_is_a_bank_decline(self, sandbox: SandboxBackend):
        result = await refused(
            sandbox.client.sale(await sandbox.payment(card=DECLINE_CARD)), "BNK_2005"
        )

        assert result.body["cardNumber"] == "453280******8940"

    @pytest.mark.parametrize(
        ("amount", "code", "hard"),
        [("2011.00", "BNK_2011", False), ("3004.00", "BNK_3004", True)],
    )
    async def test_trigger_amounts(self, sandbox: SandboxBackend, amount, code, hard):
        result = await refused(sandbox.client.sale(await sandbox.payment(amount=amount)), code)

        assert result.hard is hard

    async def test_pending_settles_on_a_later_inquiry(self, sandbox: SandboxBackend):
        pending = await sandbox.client.sale(await sandbox.payment(amount="1002.00"))
        assert isinstance(pending, Pending)
        assert pending.transaction_id is not None

        early = await sandbox.client.inquiry(pending.transaction_id)
        await asyncio.sleep(0.6)
        later = await sandbox.client.inquiry(pending.transaction_id)

        assert isinstance(early, Pending)
        assert isinstance(later, Approved)
        assert later.body["status"] == "Settled"

    async def test_pending_can_be_resolved_as_declined(self, sandbox: SandboxBackend):
        pending = await sandbox.client.sale(await sandbox.payment(amount="1002.00"))
        assert isinstance(pending, Pending)
        assert pending.transaction_id is not None

        resolved = await sandbox.admin.post(
            f"/_sandbox/transactions/{pending.transaction_id}/resolve", params={"approve": "false"}
        )
        inquiry = await sandbox.client.inquiry(pending.transaction_id)

        assert resolved.status_code == 200
        assert isinstance(inquiry, Declined)
        assert inquiry.body["status"] == "Declined"

    async def test_duplicate_client_order_id(self, sandbox: SandboxBackend):
        first = await sandbox.payment()
        await approved(sandbox.client.sale(first))
        second = await sandbox.payment()

        await refused(
            sandbox.client.sale(
                type(second)(
                    amount=second.amount,
                    currency="EUR",
                    client_order_id=first.client_order_id,
                    payment_token=second.payment_token,
                )
            ),
            "GTW_2065",
        )


class TestTransactionRules:
    async def test_sale_then_partial_refund_then_refund_beyond_the_remainder(self, sandbox):
        sale = await approved(sandbox.client.sale(await sandbox.payment()))

        await refused(sandbox.client.capture(sale.transaction_id, Decimal("44.00")), "GTW_2046")
        await approved(sandbox.client.refund(sale.transaction_id, Decimal("10.00")))
        await refused(sandbox.client.refund(sale.transaction_id, Decimal("44.00")), "GTW_2108")
        rest = await approved(sandbox.client.refund(sale.transaction_id))
        await refused(sandbox.client.refund(sale.transaction_id), "GTW_2045")

        record = await approved(sandbox.client.get_transaction(sale.transaction_id))
        assert record.body["status"] == "Refunded"
        assert record.body["refundBalancedAmount"] == 0
        assert [t["amount"] for t in record.body["transactions"]] == [10.0, 34.0]
        assert rest.transaction_id != sale.transaction_id

    async def test_authorize_partial_final_capture_then_inquiry(self, sandbox):
        authorization = await approved(sandbox.client.authorize(await sandbox.payment()))

        await refused(
            sandbox.client.capture(authorization.transaction_id, Decimal("30.00")), "GTW_2038"
        )
        await refused(
            sandbox.client.capture(authorization.transaction_id, Decimal("50.00")), "GTW_2124"
        )
        await approved(
            sandbox.client.capture(
                authorization.transaction_id, Decimal("30.00"), final_capture=True
            )
        )
        inquiry = await approved(sandbox.client.inquiry(authorization.transaction_id))

        assert inquiry.body["status"] == "PARTIALLY_SETTLED"
        assert inquiry.body["transactionType"] == "AUTHORIZATION"
        await refused(sandbox.client.cancel(authorization.transaction_id), "GTW_2046")
        await refused(
            sandbox.client.capture(authorization.transaction_id, Decimal("14.00")), "GTW_2046"
        )

    async def test_refund_of_an_authorization_goes_to_its_capture(self, sandbox):
        authorization = await approved(sandbox.client.authorize(await sandbox.payment()))
        await refused(sandbox.client.refund(authorization.transaction_id), "GTW_2100")
        capture = await approved(
            sandbox.client.capture(authorization.transaction_id, Decimal("44.00"))
        )

        await approved(sandbox.client.refund(authorization.transaction_id, Decimal("4.00")))

        record = await approved(sandbox.client.get_transaction(capture.transaction_id))
        assert record.body["status"] == "Partially Refunded"

    async def test_cancel_only_an_authorization_once(self, sandbox):
        authorization = await approved(sandbox.client.authorize(await sandbox.payment()))
        sale = await approved(sandbox.client.sale(await sandbox.payment()))

        await approved(sandbox.client.cancel(authorization.transaction_id))

        await refused(sandbox.client.cancel(authorization.transaction_id), "GTW_2047")
        await refused(
            sandbox.client.capture(authorization.transaction_id, Decimal("44.00")), "GTW_2047"
        )
        await refused(sandbox.client.cancel(sale.transaction_id), "GTW_2046")

    async def test_a_pending_authorization_cannot_be_captured_or_cancelled(self, sandbox):
        pending = await sandbox.client.authorize(await sandbox.payment(amount="1002.00"))
        assert isinstance(pending, Pending)

        await refused(
            sandbox.client.capture(pending.transaction_id, Decimal("1002.00")), "GTW_2049"
        )
        await refused(sandbox.client.cancel(pending.transaction_id), "GTW_2049")

    async def test_a_declined_payment_allows_nothing(self, sandbox):
        declined = await refused(
            sandbox.client.authorize(await sandbox.payment(card=DECLINE_CARD)), "BNK_2005"
        )

        await refused(sandbox.client.capture(declined.transaction_id, Decimal("44.00")), "GTW_2100")
        await refused(sandbox.client.cancel(declined.transaction_id), "GTW_2100")
        await refused(sandbox.client.refund(declined.transaction_id), "GTW_2100")

    async def test_records_name_the_channel_and_the_type(self, sandbox):
        sale = await approved(sandbox.client.sale(await sandbox.payment()))
        record = await approved(sandbox.client.get_transaction(sale.transaction_id))

        assert sale.body["paymentChannelType"] == "HOSTED_PAYMENT_FIELDS"
        assert (record.body["paymentType"], record.body["transactionType"]) == ("CARD", "SALE")

    async def test_unknown_transaction(self, sandbox):
        result = await refused(sandbox.client.capture(1, Decimal("1.00")), "GTW_2103")

        assert result.http_status == 404

    async def test_get_order_finds_the_root_with_its_children(self, sandbox):
        request = await sandbox.payment()
        authorization = await approved(sandbox.client.authorize(request))
        await approved(sandbox.client.capture(authorization.transaction_id, Decimal("44.00")))

        order = await approved(sandbox.client.get_order(client_order_id=request.client_order_id))

        assert order.body["netvalveID"] == authorization.transaction_id
        assert [t["transactionType"] for t in order.body["transactions"]] == ["CAPTURE"]


class TestWireValidation:
    @pytest.mark.parametrize(
        ("amount", "changes", "code"),
        [
            ("1.005", {}, "GTW_2003"),
            ("-1.00", {}, "GTW_2004"),
            ('"ten"', {}, "GTW_2002"),
            ("10.00", {"currency": None}, "GTW_2018"),
            ("10.00", {"currency": "ZZZ"}, "GTW_2019"),
            ("10.00", {"midId": None}, "GTW_2000"),
            ("10.00", {"paymentType": "CASH"}, "GTW_2093"),
            ("10.00", {"clientOrderId": "x" * 101}, "GTW_2020"),
        ],
    )
    async def test_field_errors_are_a_400_array(self, sandbox, amount, changes, code):
        body: dict[str, Any] = {
            "currency": "EUR",
            "midId": 2,
            "paymentToken": await sandbox.token_for("4012000098765439"),
            "clientOrderId": order_id(),
        }
        body.update(changes)
        body = {key: value for key, value in body.items() if value is not None}
        # The amount goes in as raw JSON text, exactly as a careless client might write it.
        raw = b'{"amount":' + amount.encode() + b"," + json.dumps(body).encode()[1:]

        response = await sandbox.admin.post("/sale", content=raw)

        assert response.status_code == 400
        assert [error["responseCode"] for error in response.json()] == [code]

    async def test_a_body_that_is_not_json(self, sandbox):
        response = await sandbox.admin.post("/sale", content=b"amount=10")

        assert response.status_code == 400
        assert response.json()[0]["responseCode"] == "GTW_2063"

    @pytest.mark.parametrize(
        "headers",
        [
            {"netvalve-client-id": "test-client"},
            {"netvalve-client-id": "test-client", "netvalve-api-key": "wrong"},
            {
                "netvalve-client-id": "other",
                "netvalve-api-key": "nv_test_7f3c9a1e5b2d4f60a8c1e9b7d3f5a2c4",
            },
        ],
    )
    async def test_other_credentials_are_refused(self, sandbox_url, headers):
        async with httpx.AsyncClient(base_url=sandbox_url) as http:
            response = await http.get("/inquiry", params={"transactionId": 1}, headers=headers)

        assert response.status_code == 401
        assert response.json()["responseCode"] == "GTW_9001"

    async def test_basic_auth_is_checked_when_configured(self, sandbox_url):
        headers = {**sandbox_headers(), "Authorization": "Basic bWVyY2hhbnQ6d3Jvbmc="}
        async with httpx.AsyncClient(base_url=sandbox_url) as http:
            response = await http.get("/inquiry", params={"transactionId": 1}, headers=headers)

        assert response.status_code == 401


class TestFaults:
    async def test_reset_after_processing_leaves_the_transaction_behind(self, sandbox):
        await sandbox.fault("/sale", "reset")
        request = await sandbox.payment()

        result = await sandbox.client.sale(request)

        assert isinstance(result, UnknownOutcome)
        assert result.reason == "connection_lost"
        order = await approved(sandbox.client.get_order(client_order_id=request.client_order_id))
        inquiry = await approved(sandbox.client.inquiry(order.body["netvalveID"]))
        assert inquiry.response_code == "GTW_1000"
        assert inquiry.body["status"] == "Settled"

    async def test_5xx_before_processing_creates_nothing(self, sandbox):
        await sandbox.fault("/sale", "http_error", status=503)
        request = await sandbox.payment()

        result = await sandbox.client.sale(request)

        assert isinstance(result, UnknownOutcome)
        await refused(sandbox.client.get_order(client_order_id=request.client_order_id), "GTW_2103")

    async def test_latency_is_added(self, sandbox):
        await sandbox.fault("/inquiry", "latency", latency_ms=300)

        started = time.perf_counter()
        await sandbox.client.inquiry(1)

        assert time.perf_counter() - started >= 0.3

    async def test_a_rule_fires_only_as_often_as_asked(self, sandbox):
        await sandbox.fault("/inquiry", "http_error", status=502)

        first = await sandbox.client.inquiry(1)
        second = await sandbox.client.inquiry(1)

        assert isinstance(first, UnknownOutcome)
        assert isinstance(second, Declined)

    async def test_late_answers_now_and_processes_when_released(self, sandbox):
        await sandbox.fault("/sale", "late", status=502)
        request = await sandbox.payment()

        result = await sandbox.client.sale(request)
        before = await sandbox.client.get_order(client_order_id=request.client_order_id)
        released = await sandbox.admin.post("/_sandbox/faults/release")
        after = await approved(sandbox.client.get_order(client_order_id=request.client_order_id))

        assert (isinstance(result, UnknownOutcome), result.http_status) == (True, 502)
        assert isinstance(before, Declined)
        assert before.response_code == "GTW_2103"
        assert released.json() == {"released": 1}
        assert (after.body["transactionType"], after.body["status"]) == ("SALE", "Settled")

    async def test_late_after_a_hang_processes_after_its_delay(self, sandbox):
        await sandbox.fault("/sale", "late", answer="hang", hang_seconds=0.2, delay_seconds=0.4)
        request = await sandbox.payment()

        result = await sandbox.client.sale(request)  # 504 after the hang: nothing processed yet
        early = await sandbox.client.get_order(client_order_id=request.client_order_id)
        await asyncio.sleep(0.5)
        late = await approved(sandbox.client.get_order(client_order_id=request.client_order_id))

        assert isinstance(result, UnknownOutcome)
        assert isinstance(early, Declined)
        assert late.body["clientOrderId"] == request.client_order_id

    async def test_a_chargeback_is_recorded_on_the_transaction(self, sandbox):
        sale = await approved(sandbox.client.sale(await sandbox.payment()))

        disputed = await sandbox.admin.post(
            f"/_sandbox/transactions/{sale.transaction_id}/chargeback", params={"amount": "10.00"}
        )
        record = await approved(sandbox.client.get_transaction(sale.transaction_id or 0))

        assert disputed.status_code == 200, disputed.text
        assert [item["amount"] for item in record.body["chargebackData"]] == [Decimal("10.00")]

    async def test_faults_are_listed_and_cleared(self, sandbox):
        await sandbox.fault("/capture", "hang")

        listed = await sandbox.admin.get("/_sandbox/faults")
        await sandbox.admin.delete("/_sandbox/faults")
        cleared = await sandbox.admin.get("/_sandbox/faults")

        assert [rule["path"] for rule in listed.json()] == ["/capture"]
        assert cleared.json() == []


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    marker = request.node.get_closest_marker("failures")
    receiver = Receiver(failures=marker.args[0] if marker else 0)
    receiver.server.start()
    yield receiver
    receiver.server.stop()


@pytest_asyncio.fixture
async def hooked(
    receiver: Receiver, request: pytest.FixtureRequest
) -> AsyncIterator[SandboxBackend]:
    marker = request.node.get_closest_marker("duplicates")
    server = SandboxServer(
        sandbox_settings(
            sandbox_webhook_url=f"{receiver.server.url}/hook",
            sandbox_webhook_auth_header="X-Netvalve-Auth",
            sandbox_webhook_auth_value="hook-secret-1",
            sandbox_webhook_retry_delays=(0.05, 0.05, 0.05),
            sandbox_webhook_duplicate_rate=1.0 if marker else 0.0,
        )
    )
    backend = SandboxBackend(server.start())
    yield backend
    await backend.close()
    server.stop()


class TestWebhooks:
    async def test_each_state_change_is_posted_with_the_auth_header(self, hooked, receiver):
        request = await hooked.payment()
        authorization = await approved(hooked.client.authorize(request))
        await approved(hooked.client.capture(authorization.transaction_id, Decimal("44.00")))

        events = await receiver.wait_for(2)

        assert [event["eventName"] for event in events] == ["AUTHORISED", "CAPTURED"]
        data = events[0]["data"]
        assert data["transactionId"] == authorization.transaction_id
        assert data["clientOrderId"] == request.client_order_id
        assert isinstance(data["orderId"], str)
        assert data["responseCode"] == "GTW_1000"
        assert data["cardNumber"] == "401200******5439"
        assert b'"amount":44.00' in receiver.raw[0]
        assert all(h["x-netvalve-auth"] == "hook-secret-1" for h in receiver.headers)

    async def test_failed_sale_event(self, hooked, receiver):
        await hooked.client.sale(await hooked.payment(card=DECLINE_CARD))

        events = await receiver.wait_for(1)

        assert events[0]["eventName"] == "PURCHASE_FAILED"
        assert events[0]["data"]["responseCode"] == "BNK_2005"

    @pytest.mark.failures(2)
    async def test_non_2xx_is_retried(self, hooked, receiver):
        await approved(hooked.client.sale(await hooked.payment()))

        events = await receiver.wait_for(1)

        assert [event["eventName"] for event in events] == ["PURCHASED"]
        assert receiver.failures == 0

    @pytest.mark.duplicates
    async def test_duplicates_on_request(self, hooked, receiver):
        await approved(hooked.client.sale(await hooked.payment()))

        events = await receiver.wait_for(2)

        assert len(events) == 2
        assert events[0] == events[1]


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


async def test_a_refused_duplicate_leaves_its_token_usable(sandbox: SandboxBackend):
    first = await sandbox.payment()
    await approved(sandbox.client.sale(first))
    second = await sandbox.payment()
    duplicate = type(second)(
        amount=second.amount,
        currency="EUR",
        client_order_id=first.client_order_id,
        payment_token=second.payment_token,
    )

    await refused(sandbox.client.sale(duplicate), "GTW_2065")

    await approved(sandbox.client.sale(second))
