"""Webhook intake, processing into the ledger, and the operator API."""

import asyncio
import dataclasses
import json
import random
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from app.core.cards import luhn_valid
from app.main import create_app
from app.models.payment import Operation, Payment, PaymentState
from app.models.payment_attempt import AttemptOutcome, PaymentAttempt
from app.sandbox.server import SandboxServer, ThreadedServer
from tests.fixtures.api import (
    ADMIN_KEY,
    STOREFRONT_KEY,
    Api,
    ApiFactory,
    MedusaSession,
)
from tests.fixtures.gateway import (
    SandboxBackend,
    recording_sandbox,
    sandbox_settings,
)
from tests.fixtures.netvalve import build_webhook_event
from tests.fixtures.ports import free_port
from tests.fixtures.settings import make_settings
from tests.fixtures.webhooks import (
    WEBHOOK_HEADER,
    WEBHOOK_SECRET,
    WEBHOOK_SETTINGS,
    WEBHOOK_VALUES,
    post_webhook,
    process_until_idle,
    webhook_service_of,
)

pytestmark = pytest.mark.asyncio


async def stored(api: Api) -> list[dict[str, Any]]:
    rows = await api.medusa.fetch("SELECT status, dedup_key, event_name FROM webhook_events")
    return [dict(row) for row in rows]


@pytest_asyncio.fixture
async def hooks(api_factory: ApiFactory) -> Api:
    built: Api = await api_factory(**WEBHOOK_SETTINGS)
    return built


@pytest_asyncio.fixture(autouse=True)
async def empty_inbox(medusa_writer: Any) -> AsyncIterator[None]:
    yield
    await medusa_writer.execute("DELETE FROM webhook_events")


class TestIntake:
    async def test_stored_once_then_exact_and_near_duplicates_are_no_ops(self, hooks: Api):
        body = build_webhook_event()
        near = json.loads(json.dumps(body))
        near["data"]["responseTimestamp"] = "2024-11-08T12:40:00.000000000"
        reordered = {"data": dict(reversed(list(body["data"].items()))), "eventName": "PURCHASED"}

        first = await post_webhook(hooks.http, body)
        exact = await post_webhook(hooks.http, body)
        stamped = await post_webhook(hooks.http, near)
        shuffled = await post_webhook(hooks.http, json.dumps(reordered, indent=2).encode())

        assert first.status_code == 200
        assert first.json()["status"] == "stored"
        assert [r.json()["status"] for r in (exact, stamped, shuffled)] == ["duplicate"] * 3
        rows = await stored(hooks)
        assert len(rows) == 1
        assert rows[0]["status"] == "received"

    async def test_a_different_event_for_the_same_transaction_is_stored(self, hooks: Api):
        body = build_webhook_event()
        other = json.loads(json.dumps(body))
        other["data"]["traceId"] = str(uuid.uuid4())
        other["data"]["responseCode"] = "BNK_2005"

        await post_webhook(hooks.http, body)
        second = await post_webhook(hooks.http, other)

        assert second.json()["status"] == "stored"
        assert len(await stored(hooks)) == 2

    async def test_a_number_too_long_to_write_as_an_integer_is_stored(self, hooks: Api):
        # Masking wrote every whole number out as an integer, which Python refuses past 4,300
        # digits: a 500, and a delivery NetValve would repeat forever.
        body = build_webhook_event()
        raw = json.dumps({**body, "data": {**body["data"], "note": 0}}).encode()

        response = await post_webhook(hooks.http, raw.replace(b'"note": 0', b'"note": 1e5000'))

        assert response.status_code == 200, response.text
        assert response.json()["status"] == "stored"
        payload = await hooks.medusa.fetchval("SELECT payload FROM webhook_events")
        assert json.loads(payload)["data"]["note"] == "1E+5000"

    async def test_headers_are_stored_without_the_secret(self, hooks: Api):
        await post_webhook(hooks.http, build_webhook_event())

        headers = await hooks.medusa.fetchval("SELECT headers FROM webhook_events")

        assert json.loads(headers)[WEBHOOK_HEADER.lower()] == "[REDACTED]"
        assert WEBHOOK_VALUES[0] not in headers

    @pytest.mark.parametrize("value", [None, "", "whk_test_wrong_00000000000"])
    async def test_a_missing_or_wrong_header_is_401(self, hooks: Api, value):
        before = await hooks.ledger_counts()

        response = await post_webhook(hooks.http, build_webhook_event(), value=value)

        assert response.status_code == 401
        assert response.json()["error"] == "WebhookUnauthenticated"
        assert await stored(hooks) == []
        assert await hooks.ledger_counts() == before

    async def test_both_values_work_during_a_rotation(self, hooks: Api):
        current = await post_webhook(hooks.http, build_webhook_event(), value=WEBHOOK_VALUES[0])
        previous = await post_webhook(hooks.http, build_webhook_event(), value=WEBHOOK_VALUES[1])

        assert (current.status_code, previous.status_code) == (200, 200)

    async def test_an_address_off_the_allow_list_is_403(self, api_factory: ApiFactory):
        api = await api_factory(**WEBHOOK_SETTINGS, netvalve_webhook_allowed_ips=["10.99.0.0/16"])

        direct = await post_webhook(api.http, build_webhook_event())
        spoofed = await post_webhook(
            api.http, build_webhook_event(), **{"X-Forwarded-For": "10.99.1.2"}
        )

        assert (direct.status_code, spoofed.status_code) == (403, 403)
        assert await stored(api) == []

    async def test_forwarded_for_counts_only_behind_a_trusted_proxy(self, api_factory):
        # The test client connects from 127.0.0.1, playing the load balancer.
        api = await api_factory(
            **WEBHOOK_SETTINGS,
            netvalve_webhook_allowed_ips=["10.99.0.0/16"],
            trusted_proxies=["127.0.0.1/32"],
        )

        allowed = await post_webhook(
            api.http, build_webhook_event(), **{"X-Forwarded-For": "198.51.100.7, 10.99.1.2"}
        )
        forged = await post_webhook(
            api.http, build_webhook_event(), **{"X-Forwarded-For": "10.99.1.2, 198.51.100.7"}
        )

        assert allowed.status_code == 200
        assert forged.status_code == 403

    async def test_an_oversized_body_is_413(self, api_factory: ApiFactory):
        api = await api_factory(**WEBHOOK_SETTINGS, netvalve_webhook_max_body_bytes=2048)
        big = build_webhook_event(padding="x" * 4096)

        response = await post_webhook(api.http, big)

        assert response.status_code == 413
        assert await stored(api) == []

    @pytest.mark.parametrize(
        "body",
        [
            b'{"eventName": "PURCHASED", "data": ',
            b"[1, 2]",
            b'{"eventName": "REFUNDD", "data": {}}',
        ],
        ids=["malformed", "not-an-object", "unknown-event"],
    )
    async def test_malformed_or_unknown_is_400_and_stored_as_rejected(self, hooks: Api, body):
        before = await hooks.ledger_counts()

        response = await post_webhook(hooks.http, body)

        assert response.status_code == 400
        assert response.json()["error"] == "WebhookMalformed"
        assert [row["status"] for row in await stored(hooks)] == ["rejected"]
        assert await hooks.ledger_counts() == before

    async def test_database_down_is_503_and_nothing_is_lost(self, api_factory, tmp_path):
        from app.dev.embedded_pg import EmbeddedPostgres, ensure_database, with_database
        from tests.conftest import alembic_config

        data_dir = tmp_path / "pg"
        server = EmbeddedPostgres(data_dir, cleanup="stop")
        url = with_database(server.url(), "drill")
        await ensure_database(server.url(), "drill")
        await asyncio.to_thread(_migrate, alembic_config(url))
        api = await api_factory(**WEBHOOK_SETTINGS, database_url=url, medusa_database_url=url)
        before = [build_webhook_event() for _ in range(3)]
        during = [build_webhook_event() for _ in range(3)]
        try:
            assert [(await post_webhook(api.http, body)).status_code for body in before] == [
                200
            ] * 3

            await asyncio.to_thread(server.stop)
            refused = [await post_webhook(api.http, body) for body in during]

            assert [response.status_code for response in refused] == [503] * 3
            assert refused[0].json()["error"] == "WebhookStoreUnavailable"
            assert refused[0].headers["retry-after"]

            server = await asyncio.to_thread(EmbeddedPostgres, data_dir, cleanup="stop")
            redelivered = [await post_webhook(api.http, body) for body in [*during, *before]]

            assert [r.json()["status"] for r in redelivered] == ["stored"] * 3 + ["duplicate"] * 3
        finally:
            await asyncio.to_thread(server.stop)


def _migrate(config: Any) -> None:
    from alembic import command

    command.upgrade(config, "head")


class TestProcessing:
    async def test_an_event_for_an_unknown_payment_waits_then_applies(self, hooks: Api):
        # NetValve's webhook can overtake our own commit of the payment row.
        payment_id = uuid.uuid4()
        sale = await hooks.sandbox.client.sale(
            dataclasses.replace(
                await hooks.sandbox.payment(), client_order_id=f"{payment_id.hex}-1"
            )
        )
        body = build_webhook_event(
            clientOrderId=f"{payment_id.hex}-1",
            transactionId=sale.transaction_id,  # type: ignore[union-attr]
        )
        await post_webhook(hooks.http, body)
        service = webhook_service_of(hooks.http)

        await service.process_due()
        waiting = await stored(hooks)
        await _insert_sent_sale(hooks, payment_id)
        await hooks.medusa.execute("UPDATE webhook_events SET next_attempt_at = now()")
        await service.process_due()

        assert waiting[0]["status"] == "pending_match"
        assert [row["status"] for row in await stored(hooks)] == ["processed"]
        status = await hooks.get("/status", {"payment_id": str(payment_id)})
        assert (status.json()["state"], status.json()["captured_amount"]) == ("captured", "44.00")
        await hooks.assert_ledger_matches_gateway(str(payment_id))

    async def test_an_unmatched_event_is_given_up_after_its_tries(self, api_factory):
        api = await api_factory(**WEBHOOK_SETTINGS, webhook_max_attempts=2)
        await post_webhook(api.http, build_webhook_event(), value=WEBHOOK_VALUES[0])
        service = webhook_service_of(api.http)

        for _ in range(2):
            await api.medusa.execute("UPDATE webhook_events SET next_attempt_at = now()")
            await service.process_due()

        assert [row["status"] for row in await stored(api)] == ["unmatched"]

    async def test_an_event_inquiry_does_not_confirm_is_not_applied(self, manual_api: Api):
        api = manual_api
        authorized = (await api.pay(await api.medusa_session())).json()
        claim = build_webhook_event(
            "CAPTURED",
            clientOrderId=f"{uuid.UUID(authorized['id']).hex}-1",
            transactionId=authorized["transaction_id"] + 10**6,  # nothing at NetValve
        )
        await post_webhook(api.http, claim)

        await webhook_service_of(api.http).process_due()

        row = await api.medusa.fetchrow("SELECT status, last_error FROM webhook_events")
        assert row is not None
        assert row["status"] == "ignored"
        assert row["last_error"] == (
            f"not proven: NetValve has no transaction {authorized['transaction_id'] + 10**6}"
        )
        status = await api.get("/status", {"payment_id": authorized["id"]})
        assert status.json()["state"] == "authorized"
        await api.assert_ledger_matches_gateway(authorized["id"])

    async def test_a_transaction_id_that_passes_luhn_is_named_whole_in_the_reason(self, hooks: Api):
        # NetValve's ids can be 13 digits (the sandbox's start at the clock in milliseconds) and
        # one in ten passes Luhn: the reason, stored and served, must still name the transaction
        # whole, not mask it as a card number.
        paid = (await hooks.pay(await hooks.medusa_session())).json()
        unknown = 1000000000009  # Luhn-valid, and below any id the sandbox hands out
        assert luhn_valid(str(unknown))
        claim = build_webhook_event(
            "CAPTURED", clientOrderId=f"{uuid.UUID(paid['id']).hex}-1", transactionId=unknown
        )
        await post_webhook(hooks.http, claim)

        await webhook_service_of(hooks.http).process_due()

        row = await hooks.medusa.fetchrow("SELECT id, status, last_error FROM webhook_events")
        assert row is not None
        reason = f"not proven: NetValve has no transaction {unknown}"
        assert (row["status"], row["last_error"]) == ("ignored", reason)
        served = await hooks.get(f"/webhook-events/{row['id']}", {}, key=ADMIN_KEY)
        assert served.status_code == 200, served.text
        assert served.json()["last_error"] == reason
        await hooks.assert_ledger_matches_gateway(paid["id"])

    async def test_a_late_authorised_never_moves_a_captured_payment_back(self, manual_api):
        api = manual_api
        authorized = (await api.pay(await api.medusa_session())).json()
        await api.post("/capture", {"payment_id": authorized["id"]})
        late = build_webhook_event(
            "AUTHORISED",
            transactionType="AUTHORIZATION",
            clientOrderId=f"{uuid.UUID(authorized['id']).hex}-1",
            transactionId=authorized["transaction_id"],
        )
        await post_webhook(api.http, late)

        await webhook_service_of(api.http).process_due()

        status = await api.get("/status", {"payment_id": authorized["id"]})
        assert status.json()["state"] == "captured"
        assert [row["status"] for row in await stored(api)] == ["ignored"]
        await api.assert_ledger_matches_gateway(authorized["id"])

    async def test_a_refund_made_outside_is_counted_once_whatever_the_redeliveries(self, hooks):
        paid = (await hooks.pay(await hooks.medusa_session())).json()
        refund = await hooks.sandbox.client.refund(paid["transaction_id"], Decimal("4.00"))
        body = build_webhook_event(
            "REFUNDED",
            transactionType="REFUND",
            clientOrderId=f"{uuid.UUID(paid['id']).hex}-1",
            transactionId=refund.transaction_id,
            amount=4.00,
        )
        near = json.loads(json.dumps(body))
        near["data"]["traceId"] = str(uuid.uuid4())  # a redelivery NetValve re-traced
        for copy in (body, body, near):
            await post_webhook(hooks.http, copy)
        service = webhook_service_of(hooks.http)

        await asyncio.gather(service.process_due(), service.process_due())

        status = await hooks.get("/status", {"payment_id": paid["id"]})
        assert (status.json()["state"], status.json()["refunded_amount"]) == (
            "partially_refunded",
            "4.00",
        )
        assert sorted(row["status"] for row in await stored(hooks)) == ["ignored", "processed"]
        await hooks.assert_ledger_matches_gateway(paid["id"])

    async def test_outside_refunds_absorbed_by_a_lost_refund_are_not_counted_again(self, hooks):
        # A refund of ours is lost (reset), and settled from NetValve's record, whose total
        # already holds a refund made outside. That refund's webhook must then change nothing.
        paid = (await hooks.pay(await hooks.medusa_session())).json()
        outside = await hooks.sandbox.client.refund(paid["transaction_id"], Decimal("5.00"))
        await hooks.sandbox.fault("/refund", "reset")

        ours = await hooks.post("/refund", {"payment_id": paid["id"], "amount": "3.00"})
        if ours.status_code == 202:
            ours = await hooks.get("/status", {"payment_id": paid["id"], "refresh": "true"})
        assert ours.json()["refunded_amount"] == "8.00", ours.text
        await post_webhook(
            hooks.http,
            build_webhook_event(
                "REFUNDED",
                transactionType="REFUND",
                clientOrderId=f"{uuid.UUID(paid['id']).hex}-1",
                transactionId=outside.transaction_id,
                amount=5.00,
            ),
        )

        await webhook_service_of(hooks.http).process_due()

        status = await hooks.get("/status", {"payment_id": paid["id"]})
        assert status.json()["refunded_amount"] == "8.00"
        assert [row["status"] for row in await stored(hooks)] == ["ignored"]
        await hooks.assert_ledger_matches_gateway(paid["id"])


async def _insert_sent_sale(api: Api, payment_id: uuid.UUID) -> None:
    """What the payment route's first phase commits: the payment and its sent attempt."""
    medusa = await api.medusa_session()
    transport = api.http._transport
    sessionmaker = transport.app.state.resources.sessionmaker  # type: ignore[attr-defined]
    async with sessionmaker.begin() as session:
        attempt_id = uuid.uuid4()
        session.add(
            Payment(
                id=payment_id,
                payment_session_id=medusa.session_id,
                cart_id=medusa.cart_id,
                currency="EUR",
                amount_minor=4400,
                medusa_amount=Decimal("44.00"),
                mode="sale",
                state=PaymentState.PENDING,
                in_flight=Operation.SALE,
                in_flight_attempt_id=attempt_id,
                attempts_count=1,
            )
        )
        await session.flush()
        session.add(
            PaymentAttempt(
                id=attempt_id,
                payment_id=payment_id,
                operation=Operation.SALE,
                client_order_id=f"{payment_id.hex}-1",
                amount_minor=4400,
                outcome=AttemptOutcome.UNKNOWN,
            )
        )


class TestFullFlowWithTheSandboxDelivering:
    async def test_every_event_stored_once_and_the_ledger_agrees_with_inquiry(
        self, api_factory, database_url
    ):
        # The service on a real socket, the sandbox posting its webhooks to it (each twice).
        seeding = await api_factory()
        port = free_port()
        sandbox = SandboxServer(
            sandbox_settings(
                sandbox_webhook_url=f"http://127.0.0.1:{port}/api/v1/netvalve/webhook",
                sandbox_webhook_auth_header=WEBHOOK_HEADER,
                sandbox_webhook_auth_value=SecretStr(WEBHOOK_SECRET),
                sandbox_webhook_duplicate_rate=1.0,
                sandbox_webhook_retry_delays=(0.05, 0.1, 0.5),
            )
        )
        gateway = SandboxBackend(sandbox.start())
        service = ThreadedServer(
            create_app(
                make_settings(
                    database_url,
                    netvalve_base_url=gateway.url,
                    netvalve_hpf_url=gateway.url,
                    netvalve_hpp_url=gateway.url,
                    storefront_api_keys=[SecretStr(STOREFRONT_KEY)],
                    admin_api_keys=[SecretStr(ADMIN_KEY)],
                    netvalve_webhook_auth_header=WEBHOOK_HEADER,
                    netvalve_webhook_auth_values=[SecretStr(WEBHOOK_SECRET)],
                    webhook_worker_interval_seconds=0.1,
                    webhook_retry_base_seconds=0.1,
                    reconcile_enabled=False,
                )
            ),
            port=port,
        )
        base = service.start()
        try:
            async with httpx.AsyncClient(base_url=f"{base}/api/v1/netvalve", timeout=10) as http:
                flow = Api(http, seeding.medusa, gateway)
                medusa = await flow.medusa_session()
                paid = await http.post(
                    "/payment",
                    json={
                        "payment_session_id": medusa.session_id,
                        "payment_token": await gateway.token_for("4012000098765439"),
                    },
                    headers={
                        "Authorization": f"Bearer {STOREFRONT_KEY}",
                        "Idempotency-Key": "flow-pay-0001",
                    },
                )
                payment = paid.json()
                admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
                for key, body in (("flow-r-0001", {"amount": "10.00"}), ("flow-r-0002", {})):
                    refunded = await http.post(
                        "/refund",
                        json={"payment_id": payment["id"], **body},
                        headers={**admin, "Idempotency-Key": key},
                    )
                    assert refunded.status_code == 200, refunded.text

                events = await _wait_for_events(seeding, 3)

                assert sorted(e["event_name"] for e in events) == [
                    "PURCHASED",
                    "REFUNDED",
                    "REFUNDED",
                ]
                assert all(e["status"] in {"processed", "ignored"} for e in events)
                status = await http.get(
                    "/status",
                    params={"payment_id": payment["id"]},
                    headers={"Authorization": f"Bearer {STOREFRONT_KEY}"},
                )
                assert (status.json()["state"], status.json()["refunded_amount"]) == (
                    "refunded",
                    "44.00",
                )
                inquiry = await gateway.client.inquiry(payment["transaction_id"])
                assert inquiry.body["status"] == "Refunded"  # type: ignore[union-attr]
                assert Decimal(str(inquiry.body["amount"])) == Decimal("44.00")  # type: ignore[union-attr]
                await flow.assert_ledger_matches_gateway(payment["id"])
        finally:
            service.stop()
            await gateway.close()
            sandbox.stop()


async def _wait_for_events(api: Api, count: int) -> list[dict[str, Any]]:
    for _ in range(300):
        rows = await stored(api)
        settled = [row for row in rows if row["status"] in {"processed", "ignored", "unmatched"}]
        if len(rows) >= count and len(settled) == len(rows):
            return rows
        await asyncio.sleep(0.1)
    raise AssertionError(f"{count} webhook events were not all stored and settled")


class TestOperatorApi:
    async def admin(self, api: Api, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await api.http.request(
            method,
            f"/api/v1/netvalve/webhook-events{path}",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            **kwargs,
        )

    async def test_list_filters_and_pages(self, hooks: Api):
        for _ in range(5):
            await post_webhook(hooks.http, build_webhook_event())
        await post_webhook(hooks.http, build_webhook_event("REFUNDED", transactionType="REFUND"))

        first = await self.admin(hooks, "GET", "", params={"limit": 2, "event_name": "PURCHASED"})
        second = await self.admin(
            hooks,
            "GET",
            "",
            params={"limit": 5, "event_name": "PURCHASED", "cursor": first.json()["next_cursor"]},
        )
        refunds = await self.admin(hooks, "GET", "", params={"event_name": "REFUNDED"})

        assert len(first.json()["items"]) == 2
        assert len(second.json()["items"]) == 3
        assert second.json()["next_cursor"] is None
        ids = {item["id"] for item in first.json()["items"] + second.json()["items"]}
        assert len(ids) == 5
        assert len(refunds.json()["items"]) == 1
        bad = await self.admin(hooks, "GET", "", params={"cursor": "not-a-cursor"})
        assert bad.status_code == 400

    async def test_get_patch_replay_delete(self, hooks: Api):
        paid = (await hooks.pay(await hooks.medusa_session())).json()
        refund = await hooks.sandbox.client.refund(paid["transaction_id"], Decimal("4.00"))
        stored_event = await post_webhook(
            hooks.http,
            build_webhook_event(
                "REFUNDED",
                transactionType="REFUND",
                clientOrderId=f"{uuid.UUID(paid['id']).hex}-1",
                transactionId=refund.transaction_id,  # type: ignore[union-attr]
                amount=4.00,
            ),
        )
        event_id = stored_event.json()["id"]

        fetched = await self.admin(hooks, "GET", f"/{event_id}")
        noted = await self.admin(hooks, "PATCH", f"/{event_id}", json={"notes": "checked by ops"})
        first = await self.admin(hooks, "POST", f"/{event_id}/replay")
        second = await self.admin(hooks, "POST", f"/{event_id}/replay")
        requeued = await self.admin(hooks, "PATCH", f"/{event_id}", json={"status": "received"})
        deleted = await self.admin(hooks, "DELETE", f"/{event_id}")
        gone = await self.admin(hooks, "GET", f"/{event_id}")

        assert fetched.json()["status"] == "received"
        assert noted.json()["notes"] == "checked by ops"
        assert first.json()["status"] == "processed"
        assert second.json()["status"] == "ignored"  # a replay changes nothing the second time
        status = await hooks.get("/status", {"payment_id": paid["id"]})
        assert status.json()["refunded_amount"] == "4.00"
        await hooks.assert_ledger_matches_gateway(paid["id"])
        assert requeued.json()["status"] == "received"
        assert deleted.json()["deleted"] is True
        assert gone.status_code == 404
        bad_status = await self.admin(
            hooks, "PATCH", f"/{uuid.uuid4()}", json={"status": "processed"}
        )
        assert bad_status.status_code == 422

    async def test_needs_an_admin_key(self, hooks: Api):
        response = await hooks.http.get(
            "/api/v1/netvalve/webhook-events",
            headers={"Authorization": "Bearer sf_test_4b1e9c7a2d5f8e0a3c6b9d1f"},
        )

        assert response.status_code == 403


async def _drain(api: Api, *, workers: int) -> None:
    """Run `workers` concurrent processors until no event is waiting or retrying."""
    service = webhook_service_of(api.http)
    for _ in range(2000):
        await process_until_idle([service] * workers)
        waiting = await api.medusa.fetchval(
            "SELECT count(*) FROM webhook_events "
            "WHERE status IN ('received', 'failed', 'pending_match') AND deleted_at IS NULL"
        )
        if not waiting:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("webhook events were still waiting")


class TestReplayAtScale:
    PAYMENTS = 50
    REFUNDS = 27  # of 1.00 each on 44.00: 50 x (1 purchase + 27 refunds) = 1,400 events

    async def test_2000_deliveries_30_percent_duplicates_shuffled_4_senders(self, api_factory):
        with recording_sandbox() as (url, receiver):
            gateway = SandboxBackend(url)
            try:
                api = await api_factory(
                    **WEBHOOK_SETTINGS,
                    netvalve_base_url=gateway.url,
                    netvalve_hpf_url=gateway.url,
                    netvalve_hpp_url=gateway.url,
                    webhook_retry_base_seconds=0.05,
                )
                api.sandbox = gateway
                sessions = [await api.medusa_session() for _ in range(self.PAYMENTS)]
                payments: list[str] = []
                for batch in range(0, self.PAYMENTS, 10):
                    payments += await asyncio.gather(
                        *(
                            self._pay_and_refund(api, session)
                            for session in sessions[batch : batch + 10]
                        )
                    )
                unique = await receiver.wait_for(self.PAYMENTS * (1 + self.REFUNDS), seconds=60)
                assert len(unique) == self.PAYMENTS * (1 + self.REFUNDS)

                deliveries = self._with_duplicates(unique, total=2000)
                senders = [deliveries[index::4] for index in range(4)]
                answers = await asyncio.gather(*(self._send_all(api, batch) for batch in senders))
                assert [status for batch in answers for status in batch] == [200] * 2000

                await _drain(api, workers=4)

                rows = await stored(api)
                assert len(rows) == len(unique)
                statuses = sorted({(row["event_name"], row["status"]) for row in rows})
                assert statuses == [("PURCHASED", "ignored"), ("REFUNDED", "processed")]
                for payment_id in payments:
                    status = (await api.get("/status", {"payment_id": payment_id})).json()
                    assert (status["state"], status["refunded_amount"]) == (
                        "partially_refunded",
                        f"{self.REFUNDS}.00",
                    )
                    await api.assert_ledger_matches_gateway(payment_id)
                refunds = await api.medusa.fetchval(
                    "SELECT count(DISTINCT transaction_id) FROM payment_attempts "
                    "WHERE operation = 'refund' AND outcome = 'approved'"
                )
                assert refunds == self.PAYMENTS * self.REFUNDS
            finally:
                await gateway.close()

    async def _pay_and_refund(self, api: Api, session: MedusaSession) -> str:
        paid = (await api.pay(session)).json()
        for _ in range(self.REFUNDS):
            refund = await api.sandbox.client.refund(paid["transaction_id"], Decimal("1.00"))
            assert refund.response_code == "GTW_1000"  # type: ignore[union-attr]
        return str(paid["id"])

    @staticmethod
    def _with_duplicates(unique: list[dict[str, Any]], total: int) -> list[bytes]:
        shuffler = random.Random(20261122)  # noqa: S311 (a fixed seed: the same run every time)
        copies = [json.dumps(event).encode() for event in unique]
        for original in shuffler.choices(unique, k=total - len(unique)):
            again = json.loads(json.dumps(original))
            if shuffler.random() < 0.5:
                again["data"]["responseTimestamp"] = "2026-11-22T04:00:00.000000000"
            copies.append(json.dumps(again).encode())
        shuffler.shuffle(copies)
        return copies

    @staticmethod
    async def _send_all(api: Api, batch: list[bytes]) -> list[int]:
        return [(await post_webhook(api.http, body)).status_code for body in batch]


class TestOtherEvents:
    async def test_a_chargeback_keeps_the_largest_amount_in_any_order(self, hooks: Api):
        paid = (await hooks.pay(await hooks.medusa_session())).json()
        for amount in ("20.00", "44.00"):  # the bank disputes twice; NetValve records both
            disputed = await hooks.sandbox.admin.post(
                f"/_sandbox/transactions/{paid['transaction_id']}/chargeback",
                params={"amount": amount},
            )
            assert disputed.status_code == 200, disputed.text
        reference = {
            "clientOrderId": f"{uuid.UUID(paid['id']).hex}-1",
            "transactionId": paid["transaction_id"],
            "chargebackTransactionType": "Chargeback",
            "chargebackSource": "CB-Alert",
        }
        await post_webhook(hooks.http, build_webhook_event("CHARGEBACK", amount=20.00, **reference))
        await post_webhook(hooks.http, build_webhook_event("CHARGEBACK", amount=44.00, **reference))
        await post_webhook(hooks.http, build_webhook_event("CHARGEBACK", amount=20.00, **reference))

        await webhook_service_of(hooks.http).process_due()

        status = (await hooks.get("/status", {"payment_id": paid["id"]})).json()
        assert (status["charged_back_amount"], status["state"]) == ("44.00", "captured")
        assert status["charged_back_at"] is not None
        assert sorted(row["status"] for row in await stored(hooks)).count("processed") >= 1
        await hooks.assert_ledger_matches_gateway(paid["id"])

    async def test_rebill_events_are_stored_and_ignored(self, hooks: Api):
        await post_webhook(
            hooks.http, build_webhook_event("REBIL_FAILED", transactionType="REBILL")
        )

        await webhook_service_of(hooks.http).process_due()

        row = await hooks.medusa.fetchrow("SELECT status, last_error FROM webhook_events")
        assert row is not None
        assert (row["status"], row["last_error"]) == (
            "ignored",
            "rebills are not made by this service",
        )

    async def test_all_nineteen_event_names_are_mapped(self):
        from app.services.netvalve.webhooks import EVENTS

        assert len(EVENTS) == 19


class TestStoredErrorText:
    async def test_a_secret_in_an_exception_is_not_stored_or_served(
        self, hooks: Api, monkeypatch: pytest.MonkeyPatch
    ):
        # last_error is served by the operator API: an exception that quotes one of our
        # secrets (here NetValve's API key, in an error a library raised) must not be stored.
        settings = hooks.http._transport.app.state.settings  # type: ignore[attr-defined]
        secret = settings.netvalve_api_key.get_secret_value()
        await post_webhook(hooks.http, build_webhook_event())
        service = webhook_service_of(hooks.http)

        async def fails(_: Any) -> Any:
            raise RuntimeError(f"upstream refused key {secret} for card 4012 0000 9876 5439")

        monkeypatch.setattr(service, "_apply", fails)
        await service.process_due()

        row = await hooks.medusa.fetchrow("SELECT id, status, last_error FROM webhook_events")
        assert row is not None
        assert row["status"] == "failed"
        assert "RuntimeError" in row["last_error"]
        assert secret not in row["last_error"]
        assert "4012 0000 9876 5439" not in row["last_error"]
        served = await hooks.get(f"/webhook-events/{row['id']}", {}, key=ADMIN_KEY)
        assert served.status_code == 200
        assert "[REDACTED]" in served.json()["last_error"]
        assert secret not in served.text
