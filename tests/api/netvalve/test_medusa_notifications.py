"""Notifications to Medusa: written with the ledger change Medusa did not ask for, delivered
signed (Standard Webhooks) by the worker, retried, given up on visibly, and replayed.

Medusa is a real HTTP server on a loopback socket (`MedusaHooks`), so the worker's own httpx
client is exercised as in production; NetValve is the sandbox.
"""

import asyncio
import base64
import json
import uuid
from collections import deque
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError

from app.api.deps import build_medusa_notification_service, build_netvalve_service
from app.core.state import Resources
from app.models.payment import PaymentState
from app.repositories.medusa_notification_repository import MedusaNotificationRepository
from app.repositories.payment_repository import PaymentRepository
from app.sandbox.server import ThreadedServer
from app.services.medusa_notifications import LedgerMark, MedusaNotificationService, MedusaOutbox
from tests.fixtures.api import ADMIN_KEY, STOREFRONT_KEY, Api, ApiFactory
from tests.fixtures.logs import CapturedLogs
from tests.fixtures.netvalve import build_webhook_event
from tests.fixtures.ports import free_port
from tests.fixtures.webhooks import WEBHOOK_SETTINGS, post_webhook, webhook_service_of

pytestmark = pytest.mark.asyncio

MEDUSA_WEBHOOK_SECRET = "whsec_" + base64.b64encode(bytes(range(100, 132))).decode()
HOOK_PATH = "/hooks/payment/netvalve_netvalve"
PREFIX = "/api/v1/netvalve/medusa-notifications"
PENDING = LedgerMark(PaymentState.PENDING, 0, 0, 0)


@dataclass(frozen=True)
class Attempt:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class MedusaHooks:
    """Medusa's webhook route: answers each POST with the next of `answers` (then 200), after
    `delay` seconds, and records every attempt."""

    def __init__(self, port: int = 0) -> None:
        self.answers: deque[int] = deque()
        self.delay = 0.0
        self.attempts: list[Attempt] = []
        app = FastAPI()

        @app.post(HOOK_PATH)
        async def hook(request: Request) -> Response:
            body = await request.body()
            status = self.answers.popleft() if self.answers else 200
            if self.delay:
                await asyncio.sleep(self.delay)
            self.attempts.append(Attempt(status, body, dict(request.headers)))
            return Response(status_code=status, content=b'{"message":"medusa says no"}')

        self.server = ThreadedServer(app, port=port)

    def start(self) -> "MedusaHooks":
        self.server.start()
        return self

    @property
    def url(self) -> str:
        return f"{self.server.url}{HOOK_PATH}"

    def delivered(self) -> list[Attempt]:
        return [attempt for attempt in self.attempts if 200 <= attempt.status < 300]


def notify(url: str, **extra: Any) -> dict[str, Any]:
    """Settings that turn notifications on, the worker off (tests drive `deliver_due`)."""
    return {
        "medusa_webhook_url": url,
        "medusa_webhook_secret": SecretStr(MEDUSA_WEBHOOK_SECRET),
        "medusa_notify_worker_enabled": False,
        **extra,
    }


PENDING_SALE = {
    "unknown_outcome_budget_seconds": 0,
    "reconcile_interval_seconds": 0.05,
    "reconcile_min_age_seconds": 0,
}


@pytest.fixture
def hooks() -> Iterator[MedusaHooks]:
    receiver = MedusaHooks().start()
    yield receiver
    receiver.server.stop()


@pytest_asyncio.fixture(autouse=True)
async def empty_inbox(medusa_writer: Any) -> AsyncIterator[None]:
    yield
    await medusa_writer.execute("DELETE FROM webhook_events")


def resources_of(api: Api) -> Resources:
    return api.resources


@pytest_asyncio.fixture
async def worker_http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as http:
        yield http


def worker(api: Api, http: httpx.AsyncClient) -> MedusaNotificationService:
    return build_medusa_notification_service(resources_of(api), http)


async def rows(api: Api) -> list[dict[str, Any]]:
    found = await api.medusa.fetch(
        "SELECT id, payment_id, event_type, status, payload, attempts, next_attempt_at, "
        "locked_until, last_status_code, last_error, delivered_at, created_at "
        "FROM medusa_notifications ORDER BY created_at, id"
    )
    return [{**row, "payload": json.loads(row["payload"])} for row in found]


async def make_due(api: Api) -> None:
    await api.medusa.execute("UPDATE medusa_notifications SET next_attempt_at = now()")


async def settle_pending_sale(api: Api, *, approve: bool = True) -> dict[str, Any]:
    """A sale NetValve answers pending (the sandbox's 1002.00), left pending by its request
    (no budget), then settled at NetValve; the ledger does not know yet."""
    medusa = await api.medusa_session(amount="1002.00")
    answer = await api.pay(medusa)
    assert answer.status_code == 202, answer.text
    body: dict[str, Any] = answer.json()
    if approve:
        await asyncio.sleep(0.6)  # the sandbox approves a pending sale after 0.5 s
    else:
        [sale] = await api.sandbox_transactions(body["id"])
        resolved = await api.sandbox.admin.post(
            f"/_sandbox/transactions/{sale['transactionId']}/resolve",
            params={"approve": "false"},
        )
        assert resolved.status_code == 200, resolved.text
        await asyncio.sleep(0.2)  # past the payment's next look (reconcile_interval_seconds)
    return {**body, "session_id": medusa.session_id, "cart_id": medusa.cart_id}


async def queue(api: Api, payment_id: str) -> uuid.UUID:
    """An outbox row for a real payment, as a background settlement from pending writes it."""
    resources = resources_of(api)
    async with resources.sessionmaker.begin() as session:
        payment = await PaymentRepository(session).get(uuid.UUID(payment_id))
        assert payment is not None
        row = MedusaOutbox(resources.settings).note(session, payment, PENDING)
        assert row is not None
        return row.id


async def paid(api: Api) -> dict[str, Any]:
    answer = await api.pay(await api.medusa_session())
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def admin_get(api: Api, path: str, **params: Any) -> httpx.Response:
    return await api.get(path.removeprefix("/api/v1/netvalve"), params, key=ADMIN_KEY)


class TestWhatIsWritten:
    async def test_a_pending_sale_the_sweep_settles_writes_one_payment_captured(
        self, api_factory: ApiFactory, hooks: MedusaHooks
    ):
        api = await api_factory(**notify(hooks.url), **PENDING_SALE)
        pending = await settle_pending_sale(api)
        assert await rows(api) == []

        settled = await build_netvalve_service(resources_of(api)).sweep_once()

        assert settled == 1
        status = (await api.get("/status", {"payment_id": pending["id"]})).json()
        assert status["state"] == "captured"
        [row] = await rows(api)
        assert (row["event_type"], row["status"], row["attempts"]) == (
            "payment.captured",
            "pending",
            0,
        )
        assert row["payload"] == {
            "type": "payment.captured",
            "timestamp": row["payload"]["timestamp"],
            "data": {
                "payment_id": pending["id"],
                "session_id": pending["session_id"],
                "cart_id": pending["cart_id"],
                "state": "captured",
                "amount": "1002.00",
                "currency_code": "eur",
                "transaction_id": status["transaction_id"],
            },
        }
        stamp = datetime.fromisoformat(row["payload"]["timestamp"].replace("Z", "+00:00"))
        assert abs(stamp - row["created_at"]) < timedelta(seconds=5)
        # now() is the transaction's start time: the same in both rows only if one transaction
        # wrote both the ledger change and its notification.
        changed_at = await api.medusa.fetchval(
            "SELECT updated_at FROM payments WHERE id = $1", uuid.UUID(pending["id"])
        )
        assert row["created_at"] == changed_at

    async def test_refresh_that_settles_a_pending_sale_writes_payment_captured(
        self, api_factory: ApiFactory, hooks: MedusaHooks
    ):
        api = await api_factory(**notify(hooks.url), **PENDING_SALE)
        pending = await settle_pending_sale(api)

        refreshed = await api.get("/status", {"payment_id": pending["id"], "refresh": "true"})

        assert refreshed.json()["state"] == "captured"
        assert [row["event_type"] for row in await rows(api)] == ["payment.captured"]

    async def test_a_sale_settled_late_within_its_request_is_notified_too(
        self, api_factory: ApiFactory, hooks: MedusaHooks
    ):
        # Settling within the request can outlast the provider's timeout (each look at
        # NetValve's records may take the client's whole timeout): Medusa is told regardless,
        # once; a sale answered at once, a refresh and a sweep of the settled payment add none.
        api = await api_factory(**notify(hooks.url), unknown_outcome_budget_seconds=3)
        medusa = await api.medusa_session(amount="1002.00")  # pending at NetValve for 0.5 s

        answer = await api.pay(medusa)
        plain = await api.pay(await api.medusa_session())
        refreshed = await api.get("/status", {"payment_id": answer.json()["id"], "refresh": "true"})
        swept = await build_netvalve_service(resources_of(api)).sweep_once()

        assert (answer.status_code, answer.json()["state"]) == (200, "captured"), answer.text
        assert (plain.status_code, refreshed.json()["state"], swept) == (200, "captured", 0)
        [row] = await rows(api)
        assert row["event_type"] == "payment.captured"
        assert row["payload"]["data"]["session_id"] == medusa.session_id
        assert row["payload"]["data"]["amount"] == "1002.00"

    async def test_a_declined_pending_sale_writes_payment_failed(
        self, api_factory: ApiFactory, hooks: MedusaHooks
    ):
        api = await api_factory(**notify(hooks.url), **PENDING_SALE)
        pending = await settle_pending_sale(api, approve=False)

        await build_netvalve_service(resources_of(api)).sweep_once()

        status = (await api.get("/status", {"payment_id": pending["id"]})).json()
        assert (status["state"], status["status"]) == ("requires_payment", "error")
        [row] = await rows(api)
        assert row["event_type"] == "payment.failed"
        assert row["payload"]["data"] | {"payment_id": None} == {
            "payment_id": None,
            "session_id": pending["session_id"],
            "cart_id": pending["cart_id"],
            "state": "requires_payment",
            "amount": "1002.00",
            "currency_code": "eur",
            "transaction_id": None,
        }

    async def test_operations_medusa_asked_for_write_none(
        self, api_factory: ApiFactory, hooks: MedusaHooks
    ):
        api = await api_factory(**notify(hooks.url), netvalve_capture_mode="manual")
        captured = (await api.pay(await api.medusa_session())).json()
        cancelled = (await api.pay(await api.medusa_session())).json()

        answers = [
            await api.post("/capture", {"payment_id": captured["id"], "amount": "40.00"}),
            await api.post("/refund", {"payment_id": captured["id"], "amount": "10.00"}),
            await api.post("/cancel", {"payment_id": cancelled["id"]}),
        ]

        assert [answer.status_code for answer in answers] == [200, 200, 200]
        assert [answer.json()["state"] for answer in answers] == [
            "captured",
            "partially_refunded",
            "canceled",
        ]
        assert await rows(api) == []

    async def test_a_capture_and_a_refund_in_netvalves_portal_proven_by_webhooks_notify(
        self, api_factory: ApiFactory, hooks: MedusaHooks
    ):
        api = await api_factory(
            **notify(hooks.url), **WEBHOOK_SETTINGS, netvalve_capture_mode="manual"
        )
        authorized = (await api.pay(await api.medusa_session())).json()
        order = f"{uuid.UUID(authorized['id']).hex}-1"
        capture = await api.sandbox.client.capture(authorized["transaction_id"], Decimal("44.00"))
        await post_webhook(
            api.http,
            build_webhook_event(
                "CAPTURED",
                transactionType="CAPTURE",
                clientOrderId=order,
                transactionId=capture.transaction_id,
                amount=44.00,
            ),
        )
        await webhook_service_of(api.http).process_due()
        assert capture.transaction_id is not None
        refund = await api.sandbox.client.refund(capture.transaction_id, Decimal("4.00"))
        await post_webhook(
            api.http,
            build_webhook_event(
                "REFUNDED",
                transactionType="REFUND",
                clientOrderId=order,
                transactionId=refund.transaction_id,
                amount=4.00,
            ),
        )

        await webhook_service_of(api.http).process_due()

        status = (await api.get("/status", {"payment_id": authorized["id"]})).json()
        assert (status["state"], status["refunded_amount"]) == ("partially_refunded", "4.00")
        written = await rows(api)
        assert [(row["event_type"], row["payload"]["data"]["amount"]) for row in written] == [
            ("payment.captured", "44.00"),
            ("payment.refunded", "4.00"),
        ]
        assert [row["payload"]["data"]["state"] for row in written] == [
            "captured",
            "partially_refunded",
        ]


class TestTransactions:
    async def test_a_row_is_not_sent_before_its_transaction_commits(
        self, api_factory: ApiFactory, hooks: MedusaHooks, worker_http: httpx.AsyncClient
    ):
        api = await api_factory(**notify(hooks.url))
        payment = await paid(api)
        resources = resources_of(api)

        async with resources.sessionmaker.begin() as session:
            row = await PaymentRepository(session).get(uuid.UUID(payment["id"]))
            assert row is not None
            assert MedusaOutbox(resources.settings).note(session, row, PENDING) is not None
            await session.flush()
            sent_while_open = await worker(api, worker_http).deliver_due()
        sent_after_commit = await worker(api, worker_http).deliver_due()

        assert (sent_while_open, sent_after_commit) == (0, 1)
        assert len(hooks.delivered()) == 1

    async def test_a_ledger_change_that_rolls_back_leaves_nothing_to_send(
        self,
        api_factory: ApiFactory,
        hooks: MedusaHooks,
        worker_http: httpx.AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
    ):
        api = await api_factory(**notify(hooks.url), **PENDING_SALE)
        pending = await settle_pending_sale(api)
        original = MedusaNotificationRepository.add

        def add_then_fail(self: MedusaNotificationRepository, notification: Any) -> None:
            original(self, notification)
            raise RuntimeError("the database went away before the commit")

        monkeypatch.setattr(MedusaNotificationRepository, "add", add_then_fail)
        sweep = build_netvalve_service(resources_of(api))

        assert await sweep.sweep_once() == 0
        status = (await api.get("/status", {"payment_id": pending["id"]})).json()
        assert (status["state"], status["in_progress"]) == ("pending", "sale")
        assert await rows(api) == []
        assert await worker(api, worker_http).deliver_due() == 0
        assert hooks.attempts == []

        monkeypatch.undo()
        await api.medusa.execute("UPDATE payments SET next_reconcile_at = now()")
        assert await sweep.sweep_once() == 1
        assert await worker(api, worker_http).deliver_due() == 1
        assert [json.loads(a.body)["type"] for a in hooks.attempts] == ["payment.captured"]


class TestDelivery:
    async def test_signed_per_standard_webhooks_and_verifiable_by_the_provider(
        self,
        api_factory: ApiFactory,
        hooks: MedusaHooks,
        worker_http: httpx.AsyncClient,
        captured_logs: CapturedLogs,
    ):
        api = await api_factory(**notify(hooks.url))
        payment = await paid(api)
        row_id = await queue(api, payment["id"])

        sent = await worker(api, worker_http).deliver_due()

        [attempt] = hooks.attempts
        assert sent == 1
        assert attempt.headers["content-type"] == "application/json"
        assert attempt.webhook_id == f"msg_{row_id.hex}"
        assert abs(int(attempt.headers["webhook-timestamp"]) - datetime.now(UTC).timestamp()) < 5
        verified = Webhook(MEDUSA_WEBHOOK_SECRET).verify(attempt.body, attempt.headers)
        assert verified["type"] == "payment.captured"
        assert verified["data"]["payment_id"] == payment["id"]
        other = "whsec_" + base64.b64encode(bytes(32)).decode()
        with pytest.raises(WebhookVerificationError):
            Webhook(other).verify(attempt.body, attempt.headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(MEDUSA_WEBHOOK_SECRET).verify(
                attempt.body.replace(b"44.00", b"4.40"), attempt.headers
            )
        [row] = await rows(api)
        assert (row["status"], row["attempts"], row["last_status_code"]) == ("delivered", 1, 200)
        assert row["delivered_at"] is not None
        signature = attempt.headers["webhook-signature"].removeprefix("v1,")
        assert "medusa.notification_delivered" in captured_logs.text
        assert signature not in captured_logs.text
        assert MEDUSA_WEBHOOK_SECRET.removeprefix("whsec_") not in captured_logs.text

    async def test_medusa_answering_5xx_is_retried_with_backoff_under_one_webhook_id(
        self, api_factory: ApiFactory, hooks: MedusaHooks, worker_http: httpx.AsyncClient
    ):
        api = await api_factory(**notify(hooks.url, medusa_notify_retry_base_seconds=30))
        row_id = await queue(api, (await paid(api))["id"])
        hooks.answers.extend([500, 503])
        sender = worker(api, worker_http)

        await sender.deliver_due()
        [first] = await rows(api)
        not_yet = await sender.deliver_due()
        await make_due(api)
        await sender.deliver_due()
        [second] = await rows(api)
        await make_due(api)
        await sender.deliver_due()
        [last] = await rows(api)

        assert not_yet == 0
        assert (first["status"], first["attempts"], first["last_status_code"]) == (
            "pending",
            1,
            500,
        )
        assert first["last_error"] == 'HTTP 500: {"message":"medusa says no"}'
        assert first["locked_until"] is None
        first_delay = first["next_attempt_at"] - first["created_at"]
        assert timedelta(seconds=24) <= first_delay <= timedelta(seconds=36 + 5)
        second_delay = second["next_attempt_at"] - datetime.now(UTC)
        assert timedelta(seconds=47) <= second_delay <= timedelta(seconds=72)
        assert (second["attempts"], second["last_status_code"]) == (2, 503)
        assert (last["status"], last["attempts"], last["last_status_code"]) == (
            "delivered",
            3,
            200,
        )
        assert [attempt.status for attempt in hooks.attempts] == [500, 503, 200]
        assert {attempt.webhook_id for attempt in hooks.attempts} == {f"msg_{row_id.hex}"}
        assert len({attempt.body for attempt in hooks.attempts}) == 1
        for attempt in hooks.attempts:  # each attempt signed afresh: all still verify
            Webhook(MEDUSA_WEBHOOK_SECRET).verify(attempt.body, attempt.headers)

    async def test_medusa_down_fails_for_good_is_listed_and_a_replay_delivers_it(
        self, api_factory: ApiFactory, worker_http: httpx.AsyncClient
    ):
        port = free_port()
        api = await api_factory(
            **notify(f"http://127.0.0.1:{port}{HOOK_PATH}", medusa_notify_max_attempts=3)
        )
        row_id = await queue(api, (await paid(api))["id"])
        sender = worker(api, worker_http)

        for _ in range(3):
            await make_due(api)
            await sender.deliver_due()

        [row] = await rows(api)
        assert (row["status"], row["attempts"], row["last_status_code"]) == ("failed", 3, None)
        assert row["last_error"].startswith("ConnectError")
        await make_due(api)
        assert await sender.deliver_due() == 0  # terminal: never retried on its own
        listed = await admin_get(api, PREFIX, status="failed")
        assert [item["id"] for item in listed.json()["items"]] == [str(row_id)]
        assert listed.json()["items"][0]["webhook_id"] == f"msg_{row_id.hex}"
        metrics = await api.http.get("/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
        assert 'netvalve_gateway_medusa_notifications{status="failed"} 1.0' in metrics.text

        medusa = MedusaHooks(port=port).start()  # Medusa is back
        try:
            replays = [
                await api.post(f"/medusa-notifications/{row_id}/replay", {}) for _ in range(2)
            ]
            sent = await sender.deliver_due()
        finally:
            medusa.server.stop()

        assert [r.status_code for r in replays] == [200, 200]
        assert [(r.json()["status"], r.json()["attempts"]) for r in replays] == [("pending", 0)] * 2
        assert sent == 1
        assert [attempt.webhook_id for attempt in medusa.attempts] == [f"msg_{row_id.hex}"]
        shown = await admin_get(api, f"{PREFIX}/{row_id}")
        assert (shown.json()["status"], shown.json()["attempts"]) == ("delivered", 1)
        assert shown.json()["payload"]["data"]["payment_id"] == str(row["payment_id"])

    async def test_two_workers_racing_send_each_notification_once(
        self, api_factory: ApiFactory, hooks: MedusaHooks
    ):
        api = await api_factory(**notify(hooks.url))
        payment = await paid(api)
        queued = {await queue(api, payment["id"]) for _ in range(12)}
        hooks.delay = 0.02
        async with httpx.AsyncClient(timeout=5) as one, httpx.AsyncClient(timeout=5) as two:
            sent = await asyncio.gather(
                worker(api, one).deliver_due(), worker(api, two).deliver_due()
            )
            again = await asyncio.gather(
                worker(api, one).deliver_due(), worker(api, two).deliver_due()
            )

        assert sum(sent) == 12
        assert list(again) == [0, 0]
        ids = [attempt.webhook_id for attempt in hooks.attempts]
        assert sorted(ids) == sorted(f"msg_{row_id.hex}" for row_id in queued)
        assert {row["status"] for row in await rows(api)} == {"delivered"}

    async def test_a_stopping_worker_hands_its_claim_back(
        self, api_factory: ApiFactory, hooks: MedusaHooks, worker_http: httpx.AsyncClient
    ):
        api = await api_factory(**notify(hooks.url))
        await queue(api, (await paid(api))["id"])
        stop = asyncio.Event()
        stop.set()

        sent = await worker(api, worker_http).deliver_due(stop=stop)

        [row] = await rows(api)
        assert sent == 0
        assert (row["status"], row["attempts"], row["locked_until"]) == ("pending", 0, None)
        assert hooks.attempts == []


class TestOperatorApi:
    async def test_needs_an_admin_key(self, api_factory: ApiFactory, hooks: MedusaHooks):
        api = await api_factory(**notify(hooks.url))
        row_id = await queue(api, (await paid(api))["id"])

        storefront = await api.get("/medusa-notifications", {}, key=STOREFRONT_KEY)
        replay = await api.post(f"/medusa-notifications/{row_id}/replay", {}, key=STOREFRONT_KEY)
        anonymous = await api.http.get(PREFIX)

        assert [storefront.status_code, replay.status_code, anonymous.status_code] == [
            403,
            403,
            401,
        ]

    async def test_list_pages_newest_first_and_filters(
        self, api_factory: ApiFactory, hooks: MedusaHooks
    ):
        api = await api_factory(**notify(hooks.url))
        first, second = await paid(api), await paid(api)
        older = await queue(api, first["id"])
        newer = [await queue(api, second["id"]) for _ in range(2)]

        page = await admin_get(api, PREFIX, limit=2)
        rest = await admin_get(api, PREFIX, limit=2, cursor=page.json()["next_cursor"])
        of_first = await admin_get(api, PREFIX, payment_id=first["id"])
        delivered = await admin_get(api, PREFIX, status="delivered")
        bad_cursor = await admin_get(api, PREFIX, cursor="bm90IGEgY3Vyc29y")
        unknown = await admin_get(api, f"{PREFIX}/{uuid.uuid4()}")
        unknown_replay = await api.post(f"/medusa-notifications/{uuid.uuid4()}/replay", {})

        assert [item["id"] for item in page.json()["items"]] == [str(i) for i in newer[::-1]]
        assert [item["id"] for item in rest.json()["items"]] == [str(older)]
        assert rest.json()["next_cursor"] is None
        assert [item["id"] for item in of_first.json()["items"]] == [str(older)]
        assert delivered.json()["items"] == []
        assert (bad_cursor.status_code, bad_cursor.json()["error"]) == (400, "InvalidCursor")
        assert (unknown.status_code, unknown_replay.status_code) == (404, 404)
        assert unknown.json()["error"] == "MedusaNotificationNotFound"


class TestWithoutMedusaUrl:
    async def test_one_line_at_start_no_rows_and_no_worker(
        self, api_factory: ApiFactory, captured_logs: CapturedLogs
    ):
        api = await api_factory(**PENDING_SALE)
        pending = await settle_pending_sale(api)

        await build_netvalve_service(resources_of(api)).sweep_once()

        said = [line for line in captured_logs.lines() if line["event"].startswith("medusa.")]
        assert [line["event"] for line in said] == ["medusa.notifications_disabled"]
        status = (await api.get("/status", {"payment_id": pending["id"]})).json()
        assert status["state"] == "captured"
        assert await rows(api) == []
        assert "notify_medusa_forever" not in {task.get_name() for task in asyncio.all_tasks()}

    async def test_with_the_url_the_worker_runs_and_nothing_says_off(
        self, api_factory: ApiFactory, hooks: MedusaHooks, captured_logs: CapturedLogs
    ):
        await api_factory(**notify(hooks.url, medusa_notify_worker_enabled=True))

        assert "notify_medusa_forever" in {task.get_name() for task in asyncio.all_tasks()}
        assert "medusa.notifications_disabled" not in captured_logs.text


class TestEndToEnd:
    async def test_the_worker_delivers_what_the_sweep_settled(
        self, api_factory: ApiFactory, hooks: MedusaHooks
    ):
        api = await api_factory(
            **notify(
                hooks.url, medusa_notify_worker_enabled=True, medusa_notify_interval_seconds=0.05
            ),
            **PENDING_SALE,
            reconcile_enabled=True,
        )
        medusa = await api.medusa_session(amount="1002.00")
        answer = await api.pay(medusa)
        assert answer.status_code == 202

        for _ in range(200):
            if hooks.delivered():
                break
            await asyncio.sleep(0.05)

        [attempt] = hooks.attempts
        body = Webhook(MEDUSA_WEBHOOK_SECRET).verify(attempt.body, attempt.headers)
        assert (body["type"], body["data"]["session_id"]) == ("payment.captured", medusa.session_id)
        assert body["data"]["amount"] == "1002.00"
        await asyncio.sleep(0.1)  # the worker records the delivery right after Medusa answers
        assert [row["status"] for row in await rows(api)] == ["delivered"]

    async def test_a_pending_sale_settled_by_its_netvalve_webhook_notifies(
        self, api_factory: ApiFactory, hooks: MedusaHooks
    ):
        api = await api_factory(**notify(hooks.url), **WEBHOOK_SETTINGS, **PENDING_SALE)
        pending = await settle_pending_sale(api)
        [sale] = await api.sandbox_transactions(pending["id"])
        await post_webhook(
            api.http,
            build_webhook_event(
                clientOrderId=sale["clientOrderId"],
                transactionId=sale["transactionId"],
                amount=1002.00,
            ),
        )

        await webhook_service_of(api.http).process_due()

        status = (await api.get("/status", {"payment_id": pending["id"]})).json()
        assert status["state"] == "captured"
        assert [row["event_type"] for row in await rows(api)] == ["payment.captured"]
