"""Issue 12, section 2: only a payable Medusa session is charged, and only with a live token.

- a token that a payment attempt sent (or NetValve reports used) is never handed out again;
- a paid session answers 409 AlreadyPaid with the payment, to GET/POST /hpf/session and to a
  POST /payment with a new token, while the same Idempotency-Key still replays;
- Medusa's own state counts: canceled, error, authorized or captured sessions and completed
  carts are not charged;
- a Medusa raw_amount the ledger cannot hold is a 422 naming the session, not a 500.
"""

import asyncio
import uuid
from decimal import Decimal
from typing import Any

import httpx
import pytest

from app.clients.netvalve import Customer
from app.clients.netvalve import PaymentRequest as GatewayPayment
from tests.fixtures.api import STOREFRONT_KEY, Api, MedusaSession
from tests.fixtures.gateway import APPROVE_CARD, DECLINE_CARD, order_id
from tests.fixtures.medusa import (
    create_address,
    create_cart,
    create_order,
    create_payment_collection,
    create_payment_session,
)
from tests.fixtures.settlement import until

pytestmark = pytest.mark.asyncio


async def hpf(api: Api, medusa: MedusaSession) -> httpx.Response:
    return await api.get("/hpf/session", {"payment_session_id": medusa.session_id})


async def bind_card(api: Api, token: str, card: str) -> None:
    """What NetValve's SDK does in the browser: bind card fields to the session's token."""
    tokenized = await api.sandbox.admin.post(
        "/hpf/tokenize",
        json={
            "paymentToken": token,
            "cardNumber": card,
            "cardExpireMonth": "12",
            "cardExpireYear": "2030",
            "cardSecurityCode": "999",
            "cardHolderName": "Ada Lovelace",
        },
    )
    assert tokenized.status_code == 200, tokenized.text


async def pay_with(
    api: Api, medusa: MedusaSession, token: str, *, idempotency_key: str | None = None
) -> httpx.Response:
    return await api.post(
        "/payment",
        {"payment_session_id": medusa.session_id, "payment_token": token},
        key=STOREFRONT_KEY,
        idempotency_key=idempotency_key,
    )


async def medusa_session_with(
    api: Api, *, status: str = "pending", raw_value: str | None = None
) -> MedusaSession:
    address = await create_address(api.medusa)
    cart = await create_cart(api.medusa, billing_address_id=address)
    collection = await create_payment_collection(api.medusa, cart)
    session = await create_payment_session(
        api.medusa, collection, status=status, raw_value=raw_value
    )
    return MedusaSession(cart, collection, session)


async def nothing_charged(api: Api) -> None:
    assert await api.ledger_counts() == (0, 0)


class TestSpentTokensAreRetired:
    async def test_after_a_decline_get_starts_a_new_session(self, api: Api):
        medusa = await api.medusa_session()
        first = await hpf(api, medusa)
        token = first.json()["payment_token"]
        await bind_card(api, token, DECLINE_CARD)

        declined = await pay_with(api, medusa, token)
        again = await hpf(api, medusa)

        assert declined.status_code == 402, declined.text
        assert again.status_code == 200, again.text
        assert again.json()["reused"] is False
        assert again.json()["payment_token"] not in {None, token}
        spent = await api.medusa.fetchval(
            "SELECT spent_at IS NOT NULL FROM hpf_sessions WHERE id = $1",
            uuid.UUID(first.json()["id"]),
        )
        assert spent is True

    async def test_a_token_netvalve_reports_used_is_retired(self, api: Api):
        medusa = await api.medusa_session()
        token = (await hpf(api, medusa)).json()["payment_token"]
        await bind_card(api, token, APPROVE_CARD)
        # Spent elsewhere (another tab, another integration): NetValve knows, we do not yet.
        elsewhere = await api.sandbox.client.sale(
            GatewayPayment(
                amount=Decimal("1.00"),
                currency="EUR",
                client_order_id=order_id(),
                payment_token=token,
                customer=Customer(email="ada@example.com"),
            )
        )
        assert elsewhere.http_status == 200

        refused = await pay_with(api, medusa, token)
        again = await hpf(api, medusa)

        assert refused.status_code == 422, refused.text
        assert refused.json()["error"] == "GatewayValidationFailed"
        assert "used" in refused.json()["detail"]
        assert again.json()["reused"] is False
        assert again.json()["payment_token"] != token

    async def test_get_while_a_payment_is_in_flight_does_not_hand_out_its_token(self, api: Api):
        medusa = await api.medusa_session()
        token = (await hpf(api, medusa)).json()["payment_token"]
        await bind_card(api, token, APPROVE_CARD)
        await api.sandbox.fault("/sale", "latency", latency_ms=1200)

        async def claimed() -> bool:
            # The claim and the token's retirement commit together, before NetValve is called.
            spent = await api.medusa.fetchval(
                "SELECT bool_or(spent_at IS NOT NULL) FROM hpf_sessions WHERE payment_token = $1",
                token,
            )
            return bool(spent)

        paying = asyncio.create_task(pay_with(api, medusa, token))
        await until(claimed, "the payment to claim the session")  # not a fixed sleep: CI is slow
        during = await hpf(api, medusa)
        paid = await paying

        assert paid.status_code == 200, paid.text
        assert during.status_code == 409, during.text
        assert during.json()["error"] == "PaymentInProgress"
        assert token not in during.text


class TestPaidSessions:
    async def test_hpf_session_for_a_paid_session_is_409_with_the_payment(self, api: Api):
        medusa = await api.medusa_session()
        paid = await api.pay(medusa)
        assert paid.status_code == 200, paid.text

        got = await hpf(api, medusa)
        posted = await api.post(
            "/hpf/session", {"payment_session_id": medusa.session_id}, key=STOREFRONT_KEY
        )
        by_cart = await api.get("/hpf/session", {"cart_id": medusa.cart_id})

        for response in (got, posted, by_cart):
            assert response.status_code == 409, response.text
            assert response.json()["error"] == "AlreadyPaid"
            assert response.json()["payment"]["id"] == paid.json()["id"]
            assert response.json()["payment"]["status"] == "captured"

    async def test_an_authorized_session_is_paid_too(self, manual_api: Api):
        medusa = await manual_api.medusa_session()
        authorized = await manual_api.pay(medusa)
        assert authorized.json()["status"] == "authorized"

        got = await hpf(manual_api, medusa)

        assert got.status_code == 409, got.text
        assert got.json()["payment"]["status"] == "authorized"

    async def test_a_new_token_on_a_paid_session_is_409_with_the_payment(self, api: Api):
        medusa = await api.medusa_session()
        first = await api.pay(medusa)

        second = await api.pay(medusa)

        assert second.status_code == 409, second.text
        assert second.json()["error"] == "AlreadyPaid"
        assert second.json()["payment"]["id"] == first.json()["id"]
        assert len(await api.sandbox_transactions(first.json()["id"])) == 1

    async def test_the_same_idempotency_key_still_replays(self, api: Api):
        medusa = await api.medusa_session()
        token = await api.token()

        first = await pay_with(api, medusa, token, idempotency_key="order-1201-pay")
        replay = await pay_with(api, medusa, token, idempotency_key="order-1201-pay")

        assert first.status_code == replay.status_code == 200
        assert replay.json() == first.json()
        assert replay.headers["idempotent-replayed"] == "true"

    async def test_a_retry_of_a_202_with_its_key_gets_the_payment(self, api_factory):
        api = await api_factory(unknown_outcome_budget_seconds=0)
        medusa = await api.medusa_session()
        token = await api.token()
        await api.sandbox.fault("/sale", "reset")

        pending = await pay_with(api, medusa, token, idempotency_key="order-1202-pay")
        assert pending.status_code == 202, pending.text
        await api.get("/status", {"payment_id": pending.json()["id"], "refresh": "true"})
        retried = await pay_with(api, medusa, token, idempotency_key="order-1202-pay")
        other = await pay_with(api, medusa, await api.token(), idempotency_key="order-1202-new")

        assert retried.status_code == 200, retried.text  # the 202 was not stored: it ran again
        assert retried.json()["state"] == "captured"
        assert other.status_code == 409, other.text
        assert len(await api.sandbox_transactions(pending.json()["id"])) == 1

    async def test_two_concurrent_payments_with_different_tokens_charge_once(self, api: Api):
        medusa = await api.medusa_session()
        tokens = [await api.token(), await api.token()]
        await api.sandbox.fault("/sale", "latency", latency_ms=300)

        responses = await asyncio.gather(*(pay_with(api, medusa, token) for token in tokens))

        statuses = sorted(response.status_code for response in responses)
        assert statuses == [200, 409], [response.text for response in responses]
        loser = next(response for response in responses if response.status_code == 409)
        assert loser.json()["error"] in {"PaymentInProgress", "AlreadyPaid"}
        winner = next(response for response in responses if response.status_code == 200)
        assert len(await api.sandbox_transactions(winner.json()["id"])) == 1


class TestMedusaStateCounts:
    @pytest.mark.parametrize("status", ["canceled", "error", "authorized", "captured"])
    async def test_an_unpayable_medusa_status_is_not_charged(self, api: Api, status: str):
        medusa = await medusa_session_with(api, status=status)

        paid = await api.pay(medusa)
        session = await hpf(api, medusa)

        for response in (paid, session):
            assert response.status_code == 409, response.text
            assert response.json()["error"] == "PaymentSessionNotPayable"
            assert medusa.session_id in response.json()["detail"]
        await nothing_charged(api)

    async def test_a_completed_cart_is_not_charged(self, api: Api):
        medusa = await api.medusa_session()
        await api.medusa.execute(
            "UPDATE cart SET completed_at = now() WHERE id = $1", medusa.cart_id
        )

        paid = await api.pay(medusa)

        assert paid.status_code == 409, paid.text
        assert paid.json()["error"] == "PaymentSessionNotPayable"
        await nothing_charged(api)

    async def test_a_completed_cart_whose_order_medusa_just_created_is_charged(self, api: Api):
        # Medusa 2.21's complete-cart creates the order, links it and completes the cart before
        # it authorizes the session, its last step: that authorization must go through.
        medusa = await api.medusa_session()
        await create_order(api.medusa, medusa.cart_id)
        await api.medusa.execute(
            "UPDATE cart SET completed_at = now() WHERE id = $1", medusa.cart_id
        )

        paid = await api.pay(medusa)

        assert paid.status_code == 200, paid.text
        assert paid.json()["status"] == "captured"

    @pytest.mark.parametrize("status", ["canceled", "archived", "completed"])
    async def test_a_completed_cart_whose_order_is_closed_is_not_charged(
        self, api: Api, status: str
    ):
        medusa = await api.medusa_session()
        await create_order(api.medusa, medusa.cart_id, status=status)
        await api.medusa.execute(
            "UPDATE cart SET completed_at = now() WHERE id = $1", medusa.cart_id
        )

        paid = await api.pay(medusa)

        assert paid.status_code == 409, paid.text
        assert paid.json()["error"] == "PaymentSessionNotPayable"
        await nothing_charged(api)

    async def test_by_cart_a_canceled_session_is_still_404(self, api: Api):
        medusa = await medusa_session_with(api, status="canceled")

        paid = await api.post(
            "/payment",
            {"cart_id": medusa.cart_id, "payment_token": await api.token()},
            key=STOREFRONT_KEY,
        )

        assert paid.status_code == 404, paid.text


class TestUnreadableMedusaAmounts:
    @pytest.mark.parametrize("raw_value", ["NaN", "1e100000", "99999999999999999999.99"])
    async def test_is_a_422_naming_the_session(self, api: Api, raw_value: str):
        medusa = await medusa_session_with(api, raw_value=raw_value)

        responses: list[Any] = [
            await api.pay(medusa),
            await hpf(api, medusa),
            await api.post(
                "/payment",
                {"cart_id": medusa.cart_id, "payment_token": await api.token()},
                key=STOREFRONT_KEY,
            ),
        ]

        for response in responses:
            assert response.status_code == 422, response.text
            body = response.json()
            assert body["error"] == "PaymentSessionAmountInvalid"
            assert medusa.session_id in body["detail"]
        await nothing_charged(api)
