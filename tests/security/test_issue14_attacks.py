"""Attacks on issue 14's two-commit money path (app.db.session.Phases): the Idempotency-Key
claim commits with the ledger's claim, the stored answer with the outcome. Each test is a race or
a fault a hostile reviewer would try, through the real app, PostgreSQL and the sandbox."""

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
import httpx
import pytest
import pytest_asyncio
from sqlalchemy import event
from sqlalchemy.engine import Connection

from app.dev.embedded_pg import asyncpg_dsn
from tests.fixtures.api import STOREFRONT_KEY, Api, ApiFactory
from tests.fixtures.netvalve import build_webhook_event
from tests.fixtures.webhooks import WEBHOOK_SETTINGS, post_webhook, webhook_service_of

pytestmark = pytest.mark.asyncio

CONCURRENT = 10


@pytest_asyncio.fixture
async def empty_inbox(medusa_writer: asyncpg.Connection) -> AsyncIterator[None]:
    yield
    await medusa_writer.execute("DELETE FROM webhook_events")


@pytest_asyncio.fixture
async def manual_api(api_factory: ApiFactory) -> Api:
    built: Api = await api_factory(netvalve_capture_mode="manual")
    return built


def engine_of(api: Api) -> Any:
    resources: Any = api.resources
    return resources.sessionmaker.kw["bind"].sync_engine


def terminate(dsn: str, pid: int) -> None:
    """Kill one server backend from outside the service's event loop: the hook that calls it
    runs inside a statement, where nothing can be awaited."""

    async def kill() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute("SELECT pg_terminate_backend($1, 5000)", pid)
        finally:
            await connection.close()

    thread = threading.Thread(target=asyncio.run, args=(kill(),))
    thread.start()
    thread.join()


@contextmanager
def backend_killed_before(api: Api, dsn: str, marker: str) -> Iterator[list[str]]:
    """The first statement of the service containing `marker` runs on a connection whose
    PostgreSQL backend was just terminated: the database fails at exactly that step."""
    engine = engine_of(api)
    killed: list[str] = []

    def before(connection: Connection, _c: Any, statement: str, *_: Any) -> None:
        if killed or marker not in statement:
            return
        killed.append(statement)
        raw: Any = connection.connection.driver_connection
        terminate(dsn, raw.get_server_pid())

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield killed
    finally:
        event.remove(engine, "before_cursor_execute", before)


async def until(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(300):
        if await check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"never happened: {what}")


async def in_flight(api: Api, payment_id: str | None = None, session_id: str | None = None) -> None:
    async def check() -> bool:
        if payment_id is not None:
            row = await api.medusa.fetchval(
                "SELECT in_flight FROM payments WHERE id = $1", uuid.UUID(payment_id)
            )
        else:
            row = await api.medusa.fetchval(
                "SELECT in_flight FROM payments WHERE payment_session_id = $1", session_id
            )
        return row is not None

    await until(check, "the operation's claim committed")


async def lock_waiters(api: Api, statement: str, count: int) -> None:
    """Until `count` of the service's statements containing `statement` wait on a lock."""

    async def check() -> bool:
        waiting = await api.medusa.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND position($1 in query) > 0",
            statement,
        )
        return int(waiting) >= count

    await until(check, f"{count} waiting on a lock: {statement}")


async def release(api: Api, path: str) -> None:
    """Let the held gateway call go on, once it has reached the sandbox (the claim commits
    before the call leaves)."""

    async def released() -> bool:
        response = await api.sandbox.admin.post("/_sandbox/faults/release", params={"path": path})
        assert response.status_code == 200, response.text
        return int(response.json()["released"]) > 0

    await until(released, f"a held call to {path}")


async def of_type(api: Api, payment_id: str, kind: str) -> list[dict[str, Any]]:
    return [t for t in await api.sandbox_transactions(payment_id) if t["transactionType"] == kind]


async def pay_body(api: Api, amount: str = "100.00") -> dict[str, str]:
    session = await api.medusa_session(amount=amount)
    return {"payment_session_id": session.session_id, "payment_token": await api.token()}


def assert_error_shape(response: httpx.Response, error: str) -> None:
    body = response.json()
    assert body["error"] == error, response.text
    assert isinstance(body["detail"], str), response.text
    assert body["detail"], response.text
    assert "request_id" in body, response.text


def assert_one_winner(responses: list[httpx.Response]) -> httpx.Response:
    """One first answer; every other is 409 in-flight or a replay of exactly that answer."""
    first = [
        r for r in responses if "idempotent-replayed" not in r.headers and r.status_code != 409
    ]
    assert len(first) == 1, [(r.status_code, r.text) for r in responses]
    for response in responses:
        if response is first[0]:
            continue
        if response.status_code == 409:
            assert_error_shape(response, "IdempotencyKeyInFlight")
        else:
            assert response.headers["idempotent-replayed"] == "true"
            assert (response.status_code, response.json()) == (
                first[0].status_code,
                first[0].json(),
            )
    return first[0]


class TestSameKeyAtOnce:
    """Ten copies of one request, one Idempotency-Key, the first held at NetValve meanwhile."""

    async def _storm(
        self, api: Api, path: str, gateway_path: str, body: dict[str, Any], **who: Any
    ) -> httpx.Response:
        await api.sandbox.fault(gateway_path, "hold")
        key = f"storm-{uuid.uuid4().hex}"
        requests = [
            asyncio.create_task(api.post(path, body, idempotency_key=key, **who))
            for _ in range(CONCURRENT)
        ]
        await in_flight(api, body.get("payment_id"), body.get("payment_session_id"))
        await release(api, gateway_path)
        winner = assert_one_winner(list(await asyncio.gather(*requests)))
        assert winner.status_code == 200, winner.text
        replay = await api.post(path, body, idempotency_key=key, **who)
        assert (replay.status_code, replay.json()) == (200, winner.json())
        assert replay.headers["idempotent-replayed"] == "true"
        return winner

    async def test_pay(self, api: Api):
        body = await pay_body(api)
        winner = await self._storm(api, "/payment", "/sale", body, key=STOREFRONT_KEY)
        assert len(await api.sandbox_transactions(winner.json()["id"])) == 1
        await api.assert_ledger_matches_gateway(winner.json()["id"])

    async def test_partial_refund(self, api: Api):
        paid = (await api.pay(await api.medusa_session(amount="100.00"))).json()
        body = {"payment_id": paid["id"], "amount": "30.00"}
        winner = await self._storm(api, "/refund", "/refund", body)
        assert winner.json()["refunded_amount"] == "30.00"
        assert len(await of_type(api, paid["id"], "REFUND")) == 1
        await api.assert_ledger_matches_gateway(paid["id"])

    @pytest.mark.parametrize(
        ("path", "kind", "state"),
        [
            ("/capture", "CAPTURE", "captured"),
            ("/cancel", "CANCEL", "canceled"),
        ],
    )
    async def test_capture_and_cancel(self, manual_api: Api, path: str, kind: str, state: str):
        api = manual_api
        authorized = (await api.pay(await api.medusa_session())).json()
        body = {"payment_id": authorized["id"]}
        winner = await self._storm(api, path, path, body)
        assert winner.json()["state"] == state
        assert len(await of_type(api, authorized["id"], kind)) == 1
        await api.assert_ledger_matches_gateway(authorized["id"])


class TestDifferentKeysOnePayment:
    async def test_concurrent_partial_refunds_never_refund_more_than_captured(self, api: Api):
        paid = (await api.pay(await api.medusa_session(amount="100.00"))).json()
        body = {"payment_id": paid["id"], "amount": "30.00"}

        responses = await asyncio.gather(*(api.post("/refund", body) for _ in range(CONCURRENT)))
        while sum(r.status_code == 200 for r in responses) < 3:
            responses.append(await api.post("/refund", body))
        last = await api.post("/refund", body)

        assert {r.status_code for r in responses} <= {200, 409}, [r.text for r in responses]
        for refused in (r for r in responses if r.status_code == 409):
            assert_error_shape(refused, "PaymentInProgress")
        assert last.status_code == 422
        assert_error_shape(last, "RefundExceedsCaptured")
        assert sum(r.status_code == 200 for r in responses) == 3
        refunds = await of_type(api, paid["id"], "REFUND")
        assert len(refunds) == 3
        status = (await api.get("/status", {"payment_id": paid["id"]})).json()
        assert status["refunded_amount"] == "90.00"
        await api.assert_ledger_matches_gateway(paid["id"])

    async def test_captures_and_cancels_at_once_move_money_once(self, manual_api: Api):
        api = manual_api
        authorized = (await api.pay(await api.medusa_session())).json()
        body = {"payment_id": authorized["id"]}

        responses = await asyncio.gather(
            *(api.post("/capture" if i % 2 else "/cancel", body) for i in range(CONCURRENT))
        )

        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 409}, [r.text for r in responses]
        kinds = [t["transactionType"] for t in await api.sandbox_transactions(authorized["id"])]
        assert len([k for k in kinds if k in {"CAPTURE", "CANCEL"}]) == 1, kinds
        final = (await api.get("/status", {"payment_id": authorized["id"]})).json()
        winners = {r.json()["state"] for r in responses if r.status_code == 200}
        assert winners == {final["state"]}
        await api.assert_ledger_matches_gateway(authorized["id"])


class TestRefundRetriedByKey:
    async def test_a_retry_while_the_answer_is_lost_sends_no_second_refund(self, api_factory):
        api: Api = await api_factory(unknown_outcome_budget_seconds=0)
        paid = (await api.pay(await api.medusa_session(amount="100.00"))).json()
        body, key = {"payment_id": paid["id"], "amount": "25.00"}, f"ref-{uuid.uuid4().hex}"
        await api.sandbox.fault("/refund", "reset")  # processed, answer lost

        first = await api.post("/refund", body, idempotency_key=key)
        retried = await api.post("/refund", body, idempotency_key=key)

        assert first.status_code == 202, first.text
        assert retried.status_code == 202, retried.text
        assert "idempotent-replayed" not in retried.headers  # a 202 is never stored
        assert len(await of_type(api, paid["id"], "REFUND")) == 1
        refreshed = await api.get("/status", {"payment_id": paid["id"], "refresh": "true"})
        assert refreshed.json()["refunded_amount"] == "25.00"

        settled = await api.post("/refund", body, idempotency_key=key)
        assert settled.status_code == 200, settled.text
        assert settled.json()["refunded_amount"] == "25.00"
        again = await api.post("/refund", body, idempotency_key=key)
        assert again.headers["idempotent-replayed"] == "true"
        assert len(await of_type(api, paid["id"], "REFUND")) == 1
        await api.assert_ledger_matches_gateway(paid["id"])

    async def test_a_new_key_after_a_lost_answer_waits_for_it(self, api_factory):
        api: Api = await api_factory(unknown_outcome_budget_seconds=0)
        paid = (await api.pay(await api.medusa_session(amount="100.00"))).json()
        body = {"payment_id": paid["id"], "amount": "80.00"}
        await api.sandbox.fault("/refund", "reset")

        first = await api.post("/refund", body)
        other = await api.post("/refund", body)  # another key: a second refund, not a retry

        assert first.status_code == 202
        assert other.status_code == 409
        assert_error_shape(other, "PaymentInProgress")
        assert len(await of_type(api, paid["id"], "REFUND")) == 1


class TestRefusalsAreStoredAndReplayed:
    """A refusal in the first phase rolls back the operation's writes, keeps the key's claim and
    stores the answer in the same commit: the replay is exact and nothing else was written."""

    async def _refused_twice(self, api: Api, path: str, body: dict[str, Any]) -> httpx.Response:
        before = await api.ledger_counts()
        key = f"refused-{uuid.uuid4().hex}"
        refused = await api.post(path, body, idempotency_key=key)
        replayed = await api.post(path, body, idempotency_key=key)
        assert (replayed.status_code, replayed.json()) == (refused.status_code, refused.json())
        assert replayed.headers["idempotent-replayed"] == "true"
        assert await api.ledger_counts() == before
        stored = await api.medusa.fetchrow(
            "SELECT response_status, locked_at FROM idempotency_keys WHERE key = $1", key
        )
        assert stored is not None
        assert (stored["response_status"], stored["locked_at"]) == (refused.status_code, None)
        return refused

    async def test_unknown_payment(self, api: Api):
        refused = await self._refused_twice(api, "/capture", {"payment_id": str(uuid.uuid4())})
        assert refused.status_code == 404
        assert_error_shape(refused, "PaymentNotFound")

    async def test_capture_above_the_authorization(self, manual_api: Api):
        authorized = (await manual_api.pay(await manual_api.medusa_session())).json()
        body = {"payment_id": authorized["id"], "amount": "44.01"}
        refused = await self._refused_twice(manual_api, "/capture", body)
        assert refused.status_code == 422
        assert_error_shape(refused, "CaptureExceedsAuthorized")
        status = (await manual_api.get("/status", {"payment_id": authorized["id"]})).json()
        assert (status["state"], status["in_progress"]) == ("authorized", None)

    async def test_a_declined_payment(self, api: Api):
        body = await pay_body(api, amount="2005.00")
        refused = await self._refused_ledger_grows(api, body)
        assert refused.status_code == 402
        assert refused.json()["error"] == "PaymentDeclined"

    async def _refused_ledger_grows(self, api: Api, body: dict[str, Any]) -> httpx.Response:
        key = f"declined-{uuid.uuid4().hex}"
        refused = await api.post("/payment", body, key=STOREFRONT_KEY, idempotency_key=key)
        replayed = await api.post("/payment", body, key=STOREFRONT_KEY, idempotency_key=key)
        assert (replayed.status_code, replayed.json()) == (refused.status_code, refused.json())
        assert replayed.headers["idempotent-replayed"] == "true"
        payment_id = refused.json()["payment"]["id"]
        assert len(await api.sandbox_transactions(payment_id)) == 1
        await api.assert_ledger_matches_gateway(payment_id)
        return refused


class TestTheDatabaseFailsMidOperation:
    """A backend killed at one step of a sale: a clean 503, one charge at most, a key that a
    retry can use at once, and a payment that settles to what NetValve did."""

    @pytest.mark.parametrize(
        ("step", "marker"),
        [
            ("the first phase's claim", "UPDATE payments SET in_flight"),
            ("the last phase's apply", "FOR UPDATE OF payments"),
            ("storing the answer", "UPDATE idempotency_keys SET response_status"),
        ],
    )
    async def test_a_sale(self, api: Api, database_url: str, step: str, marker: str):
        body = await pay_body(api)
        key = f"killed-{uuid.uuid4().hex}"
        with backend_killed_before(api, asyncpg_dsn(database_url), marker) as killed:
            failed = await api.post("/payment", body, key=STOREFRONT_KEY, idempotency_key=key)
        assert killed, f"no statement matched {marker!r}"
        assert failed.status_code == 503, failed.text
        assert_error_shape(failed, "DatabaseUnavailable")

        payment_id = await api.medusa.fetchval(
            "SELECT id FROM payments WHERE payment_session_id = $1", body["payment_session_id"]
        )
        if payment_id is not None:
            await api.get("/status", {"payment_id": str(payment_id), "refresh": "true"})
        retried = await api.post("/payment", body, key=STOREFRONT_KEY, idempotency_key=key)

        assert retried.status_code == 200, f"{step}: {retried.text}"
        assert retried.json()["state"] == "captured"
        assert len(await api.sandbox_transactions(retried.json()["id"])) == 1
        await api.assert_ledger_matches_gateway(retried.json()["id"])

    async def test_every_connection_killed_while_at_the_gateway(self, api: Api):
        body, key = await pay_body(api), f"killed-{uuid.uuid4().hex}"
        await api.sandbox.fault("/sale", "hold")
        paying = asyncio.create_task(
            api.post("/payment", body, key=STOREFRONT_KEY, idempotency_key=key)
        )
        await in_flight(api, session_id=body["payment_session_id"])
        # No transaction is open across the call: whatever the service pooled dies here.
        await api.medusa.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND backend_type = 'client backend'"
        )
        await release(api, "/sale")
        paid = await asyncio.wait_for(paying, timeout=20)

        assert paid.status_code == 200, paid.text
        assert paid.json()["state"] == "captured"
        replay = await api.post("/payment", body, key=STOREFRONT_KEY, idempotency_key=key)
        assert (replay.status_code, replay.json()) == (200, paid.json())
        assert len(await api.sandbox_transactions(paid.json()["id"])) == 1
        await api.assert_ledger_matches_gateway(paid.json()["id"])

    async def test_a_refund_killed_while_storing_its_answer(self, api: Api, database_url: str):
        paid = (await api.pay(await api.medusa_session(amount="100.00"))).json()
        body, key = {"payment_id": paid["id"], "amount": "40.00"}, f"ref-{uuid.uuid4().hex}"
        marker = "UPDATE idempotency_keys SET response_status"
        with backend_killed_before(api, asyncpg_dsn(database_url), marker):
            failed = await api.post("/refund", body, idempotency_key=key)
        assert failed.status_code == 503, failed.text

        retried = await api.post("/refund", body, idempotency_key=key)

        assert retried.status_code == 200, retried.text
        assert retried.json()["refunded_amount"] == "40.00"
        assert len(await of_type(api, paid["id"], "REFUND")) == 1
        await api.assert_ledger_matches_gateway(paid["id"])


class TestPoolExhaustion:
    """More money requests than pooled connections: a request holds at most one at a time, so
    they queue for the pool and all finish; none waits for a second connection it cannot get."""

    async def test_one_connection_serves_many_sales_and_refunds(self, api_factory):
        api: Api = await api_factory(
            database_pool_size=1, database_max_overflow=0, database_pool_timeout_seconds=20
        )
        bodies = [await pay_body(api) for _ in range(4)]
        paid = (await api.pay(await api.medusa_session(amount="100.00"))).json()
        refund = {"payment_id": paid["id"], "amount": "10.00"}
        same_key = f"pool-{uuid.uuid4().hex}"

        responses = await asyncio.wait_for(
            asyncio.gather(
                *(api.post("/payment", b, key=STOREFRONT_KEY) for b in bodies),
                *(api.post("/refund", refund) for _ in range(4)),
                *(api.post("/refund", refund, idempotency_key=same_key) for _ in range(4)),
            ),
            timeout=30,
        )

        sales, refunds = responses[:4], responses[4:]
        assert [r.status_code for r in sales] == [200] * 4, [r.text for r in sales]
        assert {r.status_code for r in refunds} <= {200, 409}, [r.text for r in refunds]
        won = sum(r.status_code == 200 and "idempotent-replayed" not in r.headers for r in refunds)
        assert len(await of_type(api, paid["id"], "REFUND")) == won
        for sale in sales:
            await api.assert_ledger_matches_gateway(sale.json()["id"])
        await api.assert_ledger_matches_gateway(paid["id"])


class TestAWebhookMeetsTheHeldLastPhase:
    """The request's last phase holds the payment's row lock until its answer is stored; a
    webhook for the same sale applied meanwhile waits on that lock, and both end consistent."""

    async def test_the_sale_and_its_webhook_apply_once_without_a_deadlock(
        self, api_factory: ApiFactory, database_url: str, empty_inbox: None
    ):
        api: Api = await api_factory(**WEBHOOK_SETTINGS)
        body, key = await pay_body(api), f"held-{uuid.uuid4().hex}"
        await api.sandbox.fault("/sale", "hold")
        paying = asyncio.create_task(
            api.post("/payment", body, key=STOREFRONT_KEY, idempotency_key=key)
        )
        await in_flight(api, session_id=body["payment_session_id"])
        payment_id = str(
            await api.medusa.fetchval(
                "SELECT id FROM payments WHERE payment_session_id = $1",
                body["payment_session_id"],
            )
        )
        blocker = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            # The key's row, locked here: storing the answer waits, with the outcome applied
            # and the payment row locked in the same open transaction.
            async with blocker.transaction():
                await blocker.execute(
                    "SELECT 1 FROM idempotency_keys WHERE key = $1 FOR UPDATE", key
                )
                await release(api, "/sale")
                await lock_waiters(api, "UPDATE idempotency_keys", 1)
                [sale] = await api.sandbox_transactions(payment_id)
                event = build_webhook_event(
                    clientOrderId=sale["clientOrderId"],
                    transactionId=sale["transactionId"],
                    amount=100.00,
                )
                assert (await post_webhook(api.http, event)).status_code == 200
                applying = asyncio.create_task(webhook_service_of(api.http).process_due())
                await lock_waiters(api, "SELECT payments.id", 1)  # the webhook's apply
            paid, _ = await asyncio.wait_for(asyncio.gather(paying, applying), timeout=20)
        finally:
            await blocker.close()

        assert paid.status_code == 200, paid.text
        assert paid.json()["state"] == "captured"
        events = await api.medusa.fetch("SELECT status FROM webhook_events")
        assert [row["status"] for row in events] in (["processed"], ["ignored"])
        assert len(await api.sandbox_transactions(payment_id)) == 1
        replay = await api.post("/payment", body, key=STOREFRONT_KEY, idempotency_key=key)
        assert (replay.status_code, replay.json()) == (200, paid.json())
        await api.assert_ledger_matches_gateway(payment_id)


class TestAStaleKeyTakenOver:
    """A first request that held its key past STALE_AFTER is taken over by its retry while the
    first's last phase is at the payment row's lock: the retry must not wait on that row while
    holding the key the first needs to store its answer (a deadlock), and neither may end in a
    500; the first's answer is the one stored."""

    async def test_the_retry_and_the_held_last_phase_do_not_deadlock(
        self, manual_api: Api, database_url: str
    ):
        api = manual_api
        authorized = (await api.pay(await api.medusa_session())).json()
        body, key = {"payment_id": authorized["id"]}, f"stale-{uuid.uuid4().hex}"
        await api.sandbox.fault("/capture", "hold")
        first = asyncio.create_task(api.post("/capture", body, idempotency_key=key))
        await in_flight(api, authorized["id"])
        await api.medusa.execute(
            "UPDATE idempotency_keys SET locked_at = locked_at - interval '1 hour' WHERE key = $1",
            key,
        )
        blocker = await asyncpg.connect(asyncpg_dsn(database_url))
        try:
            async with blocker.transaction():
                await blocker.execute(
                    "SELECT 1 FROM payments WHERE id = $1 FOR UPDATE", uuid.UUID(authorized["id"])
                )
                await release(api, "/capture")
                await lock_waiters(api, "SELECT payments.id", 1)  # the first's last phase
                # The retry takes the stale key over; the payment row is still in flight as
                # committed, so its claim refuses at once instead of waiting on the lock.
                retried = await asyncio.wait_for(
                    api.post("/capture", body, idempotency_key=key), timeout=10
                )
            captured = await asyncio.wait_for(first, timeout=10)
        finally:
            await blocker.close()

        assert captured.status_code == 200, captured.text
        assert captured.json()["state"] == "captured"
        assert retried.status_code == 409, retried.text
        assert_error_shape(retried, "PaymentInProgress")
        replay = await api.post("/capture", body, idempotency_key=key)
        assert (replay.status_code, replay.json()) == (200, captured.json())
        assert len(await of_type(api, authorized["id"], "CAPTURE")) == 1
        await api.assert_ledger_matches_gateway(authorized["id"])
