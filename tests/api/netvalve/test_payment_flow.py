import asyncio
import uuid
from collections.abc import Awaitable
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.fixtures.api import ADMIN_KEY, STOREFRONT_KEY, Api
from tests.fixtures.gateway import DECLINE_CARD

pytestmark = pytest.mark.asyncio


def amounts(body: dict[str, str]) -> tuple[str, str, str, str]:
    return (
        body["amount"],
        body["authorized_amount"],
        body["captured_amount"],
        body["refunded_amount"],
    )


class TestSaleMode:
    async def test_hpf_session_then_sale_then_refunds(self, api: Api):
        medusa = await api.medusa_session(amount="44.00")

        hpf = await api.post(
            "/hpf/session", {"payment_session_id": medusa.session_id}, key=STOREFRONT_KEY
        )
        assert hpf.status_code == 200, hpf.text
        session = hpf.json()
        assert (session["source"], session["amount"], session["currency_code"]) == (
            "api",
            "44.00",
            "EUR",
        )
        token = session["payment_token"]
        await api.sandbox.admin.post(
            "/hpf/tokenize",
            json={
                "paymentToken": token,
                "cardNumber": "4012000098765439",
                "cardExpireMonth": "12",
                "cardExpireYear": "2030",
                "cardSecurityCode": "999",
            },
        )

        paid = await api.post(
            "/payment",
            {"payment_session_id": medusa.session_id, "payment_token": token},
            key=STOREFRONT_KEY,
        )

        assert paid.status_code == 200, paid.text
        payment = paid.json()
        assert (payment["status"], payment["state"]) == ("captured", "captured")
        assert amounts(payment) == ("44.00", "44.00", "44.00", "0.00")
        assert payment["card_number"] == "401200******5439"
        assert payment["cart_id"] == medusa.cart_id
        assert payment["response_code"] == "GTW_1000"

        partial = await api.post("/refund", {"payment_id": payment["id"], "amount": "10.00"})
        assert partial.status_code == 200, partial.text
        assert partial.json()["state"] == "partially_refunded"
        assert partial.json()["refunded_amount"] == "10.00"

        status = await api.get("/status", {"payment_session_id": medusa.session_id})
        assert status.json()["refunded_amount"] == "10.00"

        rest = await api.post("/refund", {"transaction_id": payment["transaction_id"]})
        assert rest.status_code == 200, rest.text
        assert (rest.json()["state"], rest.json()["refunded_amount"]) == ("refunded", "44.00")
        assert rest.json()["status"] == "captured"

        final = await api.get("/status", {"cart_id": medusa.cart_id, "refresh": "true"})
        assert final.status_code == 200
        assert final.json()["state"] == "refunded"
        await api.assert_ledger_matches_gateway(payment["id"])

    async def test_medusa_amounts_are_rounded_once_and_recorded(self, api: Api):
        medusa = await api.medusa_session(amount="98.9009")

        paid = await api.pay(medusa)

        assert paid.status_code == 200, paid.text
        body = paid.json()
        assert (body["amount"], body["medusa_amount"]) == ("98.90", "98.9009")
        [sale] = await api.sandbox_transactions(body["id"])
        assert Decimal(str(sale["amount"])) == Decimal("98.90")
        await api.assert_ledger_matches_gateway(body["id"])

    async def test_a_decline_is_402_and_a_new_token_may_retry(self, api: Api):
        medusa = await api.medusa_session()

        declined = await api.post(
            "/payment",
            {
                "payment_session_id": medusa.session_id,
                "payment_token": await api.token(DECLINE_CARD),
            },
            key=STOREFRONT_KEY,
        )

        assert declined.status_code == 402, declined.text
        body = declined.json()
        assert body["error"] == "PaymentDeclined"
        assert (body["response_code"], body["decline_type"]) == ("BNK_2005", "soft")
        assert body["payment"]["status"] == "error"
        assert body["request_id"] == declined.headers["x-request-id"]
        await api.assert_ledger_matches_gateway(body["payment"]["id"])

        retried = await api.pay(medusa)

        assert retried.status_code == 200, retried.text
        assert retried.json()["state"] == "captured"
        assert len(await api.sandbox_transactions(retried.json()["id"])) == 2
        attempts = await api.medusa.fetch(
            "SELECT operation, outcome, response_code, client_order_id FROM payment_attempts "
            "WHERE payment_id = $1 ORDER BY created_at",
            uuid.UUID(retried.json()["id"]),
        )
        assert [(a["operation"], a["outcome"], a["response_code"]) for a in attempts] == [
            ("sale", "declined", "BNK_2005"),
            ("sale", "approved", "GTW_1000"),
        ]
        assert attempts[0]["client_order_id"] != attempts[1]["client_order_id"]
        await api.assert_ledger_matches_gateway(retried.json()["id"])

    async def test_paying_a_paid_session_again_is_409_without_a_second_charge(self, api):
        medusa = await api.medusa_session()
        first = await api.pay(medusa)

        second = await api.pay(medusa)

        assert second.status_code == 409  # issue 12: AlreadyPaid, with the payment
        assert second.json()["payment"]["id"] == first.json()["id"]
        assert len(await api.sandbox_transactions(first.json()["id"])) == 1
        await api.assert_ledger_matches_gateway(first.json()["id"])

    async def test_payment_by_cart_uses_its_netvalve_session(self, api: Api):
        medusa = await api.medusa_session()

        paid = await api.post(
            "/payment",
            {"cart_id": medusa.cart_id, "payment_token": await api.token()},
            key=STOREFRONT_KEY,
        )

        assert paid.status_code == 200, paid.text
        assert paid.json()["payment_session_id"] == medusa.session_id
        await api.assert_ledger_matches_gateway(paid.json()["id"])


class TestManualMode:
    async def test_authorize_partial_final_capture_and_refunds(self, manual_api: Api):
        api = manual_api
        medusa = await api.medusa_session(amount="44.00")

        authorized = await api.pay(medusa)
        assert authorized.status_code == 200, authorized.text
        payment = authorized.json()
        assert (payment["status"], payment["state"]) == ("authorized", "authorized")
        assert amounts(payment) == ("44.00", "44.00", "0.00", "0.00")

        too_much = await api.post("/capture", {"payment_id": payment["id"], "amount": "50.00"})
        assert too_much.status_code == 422
        assert too_much.json()["error"] == "CaptureExceedsAuthorized"

        captured = await api.post("/capture", {"payment_id": payment["id"], "amount": "30.00"})
        assert captured.status_code == 200, captured.text
        assert (captured.json()["status"], captured.json()["captured_amount"]) == (
            "captured",
            "30.00",
        )

        again = await api.post("/capture", {"payment_id": payment["id"], "amount": "30.00"})
        assert again.status_code == 200  # already captured, same amount: the payment as it is
        assert again.json()["captured_amount"] == "30.00"

        partial = await api.post("/refund", {"payment_id": payment["id"], "amount": "10.00"})
        assert partial.json()["state"] == "partially_refunded"
        over = await api.post("/refund", {"payment_id": payment["id"], "amount": "25.00"})
        assert over.status_code == 422
        assert over.json()["error"] == "RefundExceedsCaptured"
        rest = await api.post("/refund", {"payment_id": payment["id"]})
        assert (rest.json()["state"], rest.json()["refunded_amount"]) == ("refunded", "30.00")

        cancel = await api.post("/cancel", {"payment_id": payment["id"]})
        assert cancel.status_code == 409
        status = await api.get("/status", {"payment_id": payment["id"], "refresh": "true"})
        assert amounts(status.json()) == ("44.00", "44.00", "30.00", "30.00")
        await api.assert_ledger_matches_gateway(payment["id"])

    async def test_cancel_an_authorization(self, manual_api: Api):
        authorized = await manual_api.pay(await manual_api.medusa_session())

        canceled = await manual_api.post("/cancel", {"payment_id": authorized.json()["id"]})
        capture = await manual_api.post("/capture", {"payment_id": authorized.json()["id"]})

        assert (canceled.status_code, canceled.json()["status"]) == (200, "canceled")
        assert capture.status_code == 409
        assert capture.json()["error"] == "PaymentStateConflict"
        await manual_api.assert_ledger_matches_gateway(authorized.json()["id"])


class TestConcurrency:
    async def test_twenty_concurrent_payments_make_one_sale(self, api: Api):
        medusa = await api.medusa_session()
        token = await api.token()

        responses = await asyncio.gather(
            *(
                api.post(
                    "/payment",
                    {"payment_session_id": medusa.session_id, "payment_token": token},
                    key=STOREFRONT_KEY,
                )
                for _ in range(20)
            )
        )

        statuses = [response.status_code for response in responses]
        assert statuses.count(200) >= 1
        assert set(statuses) <= {200, 409}
        ids = {response.json()["id"] for response in responses if response.status_code == 200}
        assert len(ids) == 1
        assert len(await api.sandbox_transactions(next(iter(ids)))) == 1
        await api.assert_ledger_matches_gateway(ids.pop())

    async def test_two_concurrent_refunds_beyond_the_capture_one_wins(self, api: Api):
        paid = await api.pay(await api.medusa_session(amount="100.00"))
        payment_id = paid.json()["id"]

        first, second = await asyncio.gather(
            api.post("/refund", {"payment_id": payment_id, "amount": "60.00"}),
            api.post("/refund", {"payment_id": payment_id, "amount": "60.00"}),
        )

        assert sorted([first.status_code, second.status_code])[0] == 200
        assert sorted([first.status_code, second.status_code])[1] in {409, 422}
        status = await api.get("/status", {"payment_id": payment_id})
        assert status.json()["refunded_amount"] == "60.00"
        refunds = [
            t
            for t in await api.sandbox_transactions(payment_id)
            if t["transactionType"] == "REFUND"
        ]
        assert len(refunds) == 1
        await api.assert_ledger_matches_gateway(payment_id)

    async def test_concurrent_capture_and_cancel_have_one_winner(self, manual_api: Api):
        authorized = await manual_api.pay(await manual_api.medusa_session())
        payment_id = authorized.json()["id"]

        capture, cancel = await asyncio.gather(
            manual_api.post("/capture", {"payment_id": payment_id}),
            manual_api.post("/cancel", {"payment_id": payment_id}),
        )

        assert sorted([capture.status_code, cancel.status_code]) == [200, 409]
        final = (await manual_api.get("/status", {"payment_id": payment_id})).json()
        assert final["state"] in {"captured", "canceled"}
        kinds = {t["transactionType"] for t in await manual_api.sandbox_transactions(payment_id)}
        assert len(kinds & {"CAPTURE", "CANCEL"}) == 1
        await manual_api.assert_ledger_matches_gateway(payment_id)


class TestIdempotency:
    async def test_same_key_same_body_replays_without_a_second_call(self, api: Api):
        medusa = await api.medusa_session()
        body = {"payment_session_id": medusa.session_id, "payment_token": await api.token()}

        first = await api.post(
            "/payment", body, key=STOREFRONT_KEY, idempotency_key="order-0001-pay"
        )
        replay = await api.post(
            "/payment", body, key=STOREFRONT_KEY, idempotency_key="order-0001-pay"
        )

        assert replay.status_code == first.status_code == 200
        assert replay.json() == first.json()
        assert replay.headers["idempotent-replayed"] == "true"
        assert len(await api.sandbox_transactions(first.json()["id"])) == 1
        await api.assert_ledger_matches_gateway(first.json()["id"])

    async def test_same_key_different_body_is_422(self, api: Api):
        medusa = await api.medusa_session()
        await api.post(
            "/payment",
            {"payment_session_id": medusa.session_id, "payment_token": await api.token()},
            key=STOREFRONT_KEY,
            idempotency_key="order-0002-pay",
        )

        reused = await api.post(
            "/payment",
            {"payment_session_id": medusa.session_id, "payment_token": await api.token()},
            key=STOREFRONT_KEY,
            idempotency_key="order-0002-pay",
        )

        assert reused.status_code == 422
        assert reused.json()["error"] == "IdempotencyKeyReused"

    async def test_same_key_while_in_flight_is_409(self, api: Api):
        medusa = await api.medusa_session()
        body = {"payment_session_id": medusa.session_id, "payment_token": await api.token()}
        await api.sandbox.fault("/sale", "latency", latency_ms=800)

        first, second = await asyncio.gather(
            api.post("/payment", body, key=STOREFRONT_KEY, idempotency_key="order-0003-pay"),
            _later(
                api.post("/payment", body, key=STOREFRONT_KEY, idempotency_key="order-0003-pay")
            ),
        )

        assert first.status_code == 200, first.text
        assert second.status_code == 409
        assert second.json()["error"] == "IdempotencyKeyInFlight"
        assert second.headers["retry-after"] == "1"
        await api.assert_ledger_matches_gateway(first.json()["id"])

    async def test_keys_are_scoped_to_the_api_key(self, api: Api):
        medusa = await api.medusa_session()
        body = {"payment_session_id": medusa.session_id, "payment_token": await api.token()}

        as_storefront = await api.post(
            "/payment", body, key=STOREFRONT_KEY, idempotency_key="k-shared-01"
        )
        as_admin = await api.post("/payment", body, key=ADMIN_KEY, idempotency_key="k-shared-01")

        assert as_storefront.status_code == 200
        assert "idempotent-replayed" not in as_admin.headers

    async def test_a_request_refused_by_validation_does_not_use_up_its_key(self, api: Api):
        medusa = await api.medusa_session()

        invalid = await api.post(
            "/payment",
            {"payment_session_id": medusa.session_id, "payment_token": 12},
            key=STOREFRONT_KEY,
            idempotency_key="order-0004-pay",
        )
        valid = await api.post(
            "/payment",
            {"payment_session_id": medusa.session_id, "payment_token": await api.token()},
            key=STOREFRONT_KEY,
            idempotency_key="order-0004-pay",
        )

        assert invalid.status_code == 422
        assert invalid.json()["error"] == "RequestValidationError"
        assert valid.status_code == 200, valid.text

    async def test_missing_key_is_400(self, api: Api):
        medusa = await api.medusa_session()

        response = await api.http.post(
            "/api/v1/netvalve/payment",
            json={"payment_session_id": medusa.session_id, "payment_token": "tok-12345678"},
            headers={"Authorization": f"Bearer {STOREFRONT_KEY}"},
        )

        assert response.status_code == 400
        assert response.json()["error"] == "IdempotencyKeyMissing"


async def _later(request: Awaitable[httpx.Response]) -> httpx.Response:
    await asyncio.sleep(0.2)
    return await request


class TestUnknownOutcomes:
    async def test_reset_after_processing_is_202_then_settles_as_captured(self, api: Api):
        medusa = await api.medusa_session()
        await api.sandbox.fault("/sale", "reset")
        # NetValve answers "not found" for a moment after a reset, never "declined".

        pending = await api.pay(medusa)

        assert pending.status_code in {200, 202}, pending.text
        body = pending.json()
        if pending.status_code == 202:
            assert (body["status"], body["in_progress"]) == ("pending", "sale")
            refreshed = await api.get("/status", {"payment_id": body["id"], "refresh": "true"})
            body = refreshed.json()
        assert (body["state"], body["captured_amount"]) == ("captured", "44.00")
        assert len(await api.sandbox_transactions(body["id"])) == 1
        await api.assert_ledger_matches_gateway(body["id"])

    async def test_reset_with_no_time_to_settle_answers_202(self, api_factory):
        api = await api_factory(unknown_outcome_budget_seconds=0)
        medusa = await api.medusa_session()
        await api.sandbox.fault("/sale", "reset")

        pending = await api.pay(medusa)

        assert pending.status_code == 202, pending.text
        assert pending.json()["status"] == "pending"
        again = await api.pay(medusa)
        assert again.status_code == 409  # never resent while the first is unsettled
        refreshed = await api.get(
            "/status", {"payment_id": pending.json()["id"], "refresh": "true"}
        )
        assert refreshed.json()["state"] == "captured"
        assert len(await api.sandbox_transactions(pending.json()["id"])) == 1
        await api.assert_ledger_matches_gateway(pending.json()["id"])

    async def test_the_sweep_settles_what_requests_left_pending(self, api_factory):
        api = await api_factory(
            unknown_outcome_budget_seconds=0,
            reconcile_enabled=True,
            reconcile_interval_seconds=0.2,
            reconcile_min_age_seconds=0,
        )
        medusa = await api.medusa_session()
        await api.sandbox.fault("/sale", "reset")
        pending = await api.pay(medusa)
        assert pending.status_code == 202

        for _ in range(50):
            status = await api.get("/status", {"payment_id": pending.json()["id"]})
            if status.status_code == 200:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the sweep never settled the payment")

        assert status.json()["state"] == "captured"
        await api.assert_ledger_matches_gateway(pending.json()["id"])

    async def test_gateway_pending_is_202_then_settles(self, api: Api):
        medusa = await api.medusa_session(amount="1002.00")

        pending = await api.pay(medusa)

        assert pending.status_code == 202
        await asyncio.sleep(0.6)
        refreshed = await api.get(
            "/status", {"payment_id": pending.json()["id"], "refresh": "true"}
        )
        assert refreshed.json()["state"] == "captured"
        await api.assert_ledger_matches_gateway(pending.json()["id"])

    async def test_a_decline_found_while_settling_is_a_402_not_a_200(self, api_factory):
        api = await api_factory(unknown_outcome_budget_seconds=3)
        medusa = await api.medusa_session(amount="1002.00")  # NetValve answers pending
        # The sandbox is shared: an earlier test's pending sale may still be listed.
        listed = await api.sandbox.admin.get("/_sandbox/transactions")
        earlier = {t["transactionId"] for t in listed.json()["transactions"]}

        paying = asyncio.create_task(api.pay(medusa))
        pending: list[dict[str, Any]] = []
        for _ in range(100):
            found = await api.sandbox.admin.get("/_sandbox/transactions")
            pending = [
                t
                for t in found.json()["transactions"]
                if t["responseCode"] == "GTW_1002" and t["transactionId"] not in earlier
            ]
            if pending:
                break
            await asyncio.sleep(0.01)
        assert pending, "the sale never reached the sandbox"
        await api.sandbox.admin.post(
            f"/_sandbox/transactions/{pending[-1]['transactionId']}/resolve",
            params={"approve": "false"},
        )
        answer = await paying

        assert answer.status_code == 402, answer.text
        assert answer.json()["error"] == "PaymentDeclined"
        await api.assert_ledger_matches_gateway(answer.json()["payment"]["id"])


class TestRefusalsChangeNothing:
    async def test_tampered_amount(self, api: Api):
        medusa = await api.medusa_session(amount="44.00")
        before = await api.ledger_counts()

        response = await api.pay(medusa, amount="4.40")

        assert response.status_code == 422
        assert response.json()["error"] == "AmountMismatch"
        assert await api.ledger_counts() == before

    async def test_soft_deleted_payment_session(self, api: Api):
        medusa = await api.medusa_session(deleted=True)
        before = await api.ledger_counts()

        response = await api.pay(medusa)

        assert response.status_code == 404
        assert response.json()["error"] == "PaymentSessionNotFound"
        assert await api.ledger_counts() == before

    async def test_currency_without_a_mid(self, api: Api):
        medusa = await api.medusa_session(currency="usd")
        before = await api.ledger_counts()

        response = await api.pay(medusa)

        assert response.status_code == 422
        assert "USD" in response.json()["detail"]
        assert await api.ledger_counts() == before

    async def test_zero_decimal_currency(self, api_factory):
        api = await api_factory(netvalve_site_id="7d2f1c3a-1111-4222-8333-944455556666")
        medusa = await api.medusa_session(currency="jpy", amount="705")

        response = await api.pay(medusa)

        assert response.status_code == 422
        assert "JPY" in response.json()["detail"]

    async def test_wrong_scope(self, api: Api):
        paid = await api.pay(await api.medusa_session())
        before = await api.ledger_counts()

        response = await api.post("/refund", {"payment_id": paid.json()["id"]}, key=STOREFRONT_KEY)

        assert response.status_code == 403
        assert response.json()["error"] == "InsufficientScope"
        assert await api.ledger_counts() == before
        await api.assert_ledger_matches_gateway(paid.json()["id"])

    @pytest.mark.parametrize("header", [None, "Bearer not-a-key", "Basic abc"])
    async def test_no_or_unknown_key(self, api: Api, header):
        headers = {"Authorization": header} if header else {}

        response = await api.http.get(
            "/api/v1/netvalve/status", params={"payment_id": str(uuid.uuid4())}, headers=headers
        )

        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_unknown_payment(self, api: Api):
        response = await api.post("/capture", {"payment_id": str(uuid.uuid4())})

        assert response.status_code == 404
        assert response.json()["error"] == "PaymentNotFound"

    @pytest.mark.parametrize("amount", ["-1.00", "1.005", "1e3", "abc"])
    async def test_bad_amounts_are_4xx(self, api: Api, amount):
        paid = await api.pay(await api.medusa_session())

        response = await api.post("/refund", {"payment_id": paid.json()["id"], "amount": amount})

        assert response.status_code == 422


class TestAlreadyDoneAtTheGateway:
    async def test_a_capture_made_outside_the_service_is_adopted(self, manual_api: Api):
        authorized = (await manual_api.pay(await manual_api.medusa_session())).json()
        outside = await manual_api.sandbox.client.capture(
            authorized["transaction_id"], Decimal("44.00")
        )
        assert outside.response_code == "GTW_1000"  # type: ignore[union-attr]

        captured = await manual_api.post("/capture", {"payment_id": authorized["id"]})

        assert captured.status_code == 200, captured.text
        assert (captured.json()["state"], captured.json()["captured_amount"]) == (
            "captured",
            "44.00",
        )
        await manual_api.assert_ledger_matches_gateway(authorized["id"])

    async def test_cancelling_twice_answers_with_the_payment(self, manual_api: Api):
        authorized = (await manual_api.pay(await manual_api.medusa_session())).json()
        await manual_api.post("/cancel", {"payment_id": authorized["id"]})

        again = await manual_api.post("/cancel", {"payment_id": authorized["id"]})

        assert (again.status_code, again.json()["status"]) == (200, "canceled")
        await manual_api.assert_ledger_matches_gateway(authorized["id"])
