"""Input that must be refused, and answers that must be right (issue 12, section 5)."""

import asyncio
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.clients.netvalve import Approved
from app.core import metrics
from app.repositories.idempotency_key_repository import IdempotencyRepository
from app.schemas.base import MONEY_IN_PATTERN, MONEY_OUT_PATTERN
from app.services.idempotency import _unreleased, release_after_outage
from tests.drills.conftest import StoppablePostgres, stoppable_db, stoppable_server  # noqa: F401
from tests.fixtures.api import ADMIN_KEY, Api
from tests.fixtures.gateway import Receiver, SandboxBackend
from tests.fixtures.settlement import deliver, pay, process, sent, status
from tests.fixtures.webhooks import WEBHOOK_HEADER, WEBHOOK_SECRET

pytestmark = pytest.mark.asyncio

# Full-width, Arabic-Indic and mathematical bold digits, and one mixed in with ASCII.
NON_ASCII_AMOUNTS = [
    "\uff11\uff10.\uff10\uff10",
    "\u0663.\u0660\u0660",
    "\U0001d7cf.00",
    "1\u0660.00",
]


class TestAmountsAreAsciiDigits:
    @pytest.mark.parametrize("amount", NON_ASCII_AMOUNTS)
    async def test_a_refund_in_other_digits_is_refused_and_not_made(self, api: Api, amount):
        paid = (await api.pay(await api.medusa_session())).json()

        response = await api.post("/refund", {"payment_id": paid["id"], "amount": amount})

        assert response.status_code == 422, response.text
        assert amount not in response.text
        kinds = [t["transactionType"] for t in await api.sandbox_transactions(paid["id"])]
        assert kinds == ["SALE"]

    async def test_the_openapi_pattern_is_the_validators(self, api: Api):
        spec = (await api.http.get("/openapi.json")).json()
        schemas = spec["components"]["schemas"]

        for name in ("RefundRequest", "CaptureRequest", "PaymentRequest"):
            amount = schemas[name]["properties"]["amount"]
            patterns = {option.get("pattern") for option in amount.get("anyOf", [amount])}
            assert patterns - {None} == {MONEY_IN_PATTERN}, name
        assert schemas["PaymentResponse"]["properties"]["amount"]["pattern"] == MONEY_OUT_PATTERN
        for pattern in (MONEY_IN_PATTERN, MONEY_OUT_PATTERN):
            assert re.fullmatch(pattern, "10.00")
            for amount in NON_ASCII_AMOUNTS:
                assert not re.fullmatch(pattern, amount)


class TestZeroAmounts:
    @pytest.mark.parametrize("amount", ["0", "0.00", "0.000"])
    async def test_a_zero_refund_must_be_positive(self, api: Api, amount):
        paid = (await api.pay(await api.medusa_session())).json()

        response = await api.post("/refund", {"payment_id": paid["id"], "amount": amount})

        assert response.status_code == 422, response.text
        assert response.json()["error"] == "InvalidAmount"
        assert "must be positive" in response.json()["detail"]

    async def test_a_zero_capture_must_be_positive(self, manual_api: Api):
        authorized = (await manual_api.pay(await manual_api.medusa_session())).json()

        response = await manual_api.post(
            "/capture", {"payment_id": authorized["id"], "amount": "0.00"}
        )

        assert response.status_code == 422, response.text
        assert response.json()["error"] == "InvalidAmount"
        assert "must be positive" in response.json()["detail"]

    async def test_a_zero_does_not_use_up_the_idempotency_key(self, api: Api):
        paid = (await api.pay(await api.medusa_session())).json()
        body = {"payment_id": paid["id"], "amount": "0.00"}

        zero = await api.post("/refund", body, idempotency_key="refund-zero-0001")
        fixed = await api.post(
            "/refund", {**body, "amount": "1.00"}, idempotency_key="refund-zero-0001"
        )

        assert (zero.status_code, zero.json()["error"]) == (422, "InvalidAmount")
        assert fixed.status_code == 200, fixed.text
        assert fixed.json()["refunded_amount"] == "1.00"

    @pytest.mark.parametrize("path", ["/capture", "/refund"])
    async def test_a_zero_is_refused_before_any_lookup(self, api: Api, path):
        response = await api.post(path, {"payment_id": str(uuid.uuid4()), "amount": "0.00"})

        assert response.status_code == 422, response.text
        assert response.json()["error"] == "InvalidAmount"


class TestIdempotencyKeyBoundToItsBody:
    async def test_after_a_202_another_body_is_422_and_the_first_still_runs(self, api_factory):
        api = await api_factory(unknown_outcome_budget_seconds=0)
        paid = (await api.pay(await api.medusa_session())).json()
        await api.sandbox.fault("/refund", "reset")
        first = {"payment_id": paid["id"], "amount": "10.00"}

        pending = await api.post("/refund", first, idempotency_key="refund-0001-202")
        assert pending.status_code == 202, pending.text

        other = await api.post(
            "/refund", {**first, "amount": "20.00"}, idempotency_key="refund-0001-202"
        )
        again = await api.post("/refund", first, idempotency_key="refund-0001-202")

        assert other.status_code == 422, other.text
        assert other.json()["error"] == "IdempotencyKeyReused"
        assert again.status_code in {200, 202}, again.text
        refunds = [
            t["amount"]
            for t in await api.sandbox_transactions(paid["id"])
            if t["transactionType"] == "REFUND"
        ]
        assert len(refunds) == 1

    async def test_after_a_409_another_body_is_422(self, api_factory):
        api = await api_factory(unknown_outcome_budget_seconds=0)
        paid = (await api.pay(await api.medusa_session())).json()
        await api.sandbox.fault("/refund", "reset")
        pending = await api.post("/refund", {"payment_id": paid["id"], "amount": "1.00"})
        assert pending.status_code == 202, pending.text
        body = {"payment_id": paid["id"], "amount": "2.00"}

        busy = await api.post("/refund", body, idempotency_key="refund-0002-409")
        assert (busy.status_code, busy.json()["error"]) == (409, "PaymentInProgress")
        other = await api.post(
            "/refund", {**body, "amount": "3.00"}, idempotency_key="refund-0002-409"
        )

        assert other.status_code == 422, other.text
        assert other.json()["error"] == "IdempotencyKeyReused"


class TestIdempotencyKeyHeader:
    @pytest.mark.parametrize(
        "key", ["short", "has a space-1234", "x" * 256, b"caf\xc3\xa9-order-1"]
    )
    async def test_a_malformed_key_is_invalid_not_missing(self, api: Api, key: str | bytes):
        raw_key = key if isinstance(key, bytes) else key.encode()
        response = await api.http.post(
            "/api/v1/netvalve/refund",
            json={"payment_id": str(uuid.uuid4())},
            headers=[
                (b"Authorization", f"Bearer {ADMIN_KEY}".encode()),
                (b"Idempotency-Key", raw_key),
            ],
        )

        assert response.status_code == 400, response.text
        assert response.json()["error"] == "IdempotencyKeyInvalid"
        assert "8 to 255 visible ASCII" in response.json()["detail"]
        assert (key if isinstance(key, str) else key.decode()) not in response.text

    async def test_the_rules_are_documented(self, api: Api):
        spec = (await api.http.get("/openapi.json")).json()
        refund = spec["paths"]["/api/v1/netvalve/refund"]["post"]
        header = next(p for p in refund["parameters"] if p["name"] == "Idempotency-Key")

        assert "8 to 255 visible ASCII" in header["description"]
        assert "is not 8-255 visible ASCII" in refund["responses"]["400"]["description"]
        readme = (Path(__file__).parents[3] / "README.md").read_text()
        assert "IdempotencyKeyInvalid" in readme
        assert "8 to 255 visible ASCII" in readme


class TestDatabaseOutageMidRequest:
    async def test_a_retry_at_once_after_the_outage_is_not_locked_out(
        self,
        api_factory,
        stoppable_db: StoppablePostgres,  # noqa: F811
        database_url: str,
    ):
        # Our tables on a server the test can stop; Medusa's stay on the suite's.
        api = await api_factory(
            unknown_outcome_budget_seconds=1,
            netvalve_read_timeout=10.0,
            database_url=stoppable_db.url,
            medusa_database_url=database_url,
        )
        paid = (await api.pay(await api.medusa_session())).json()
        # NetValve has made the refund and its answer is on its way back: hold it there while
        # the database stops, so the request fails after it claimed its key.
        answered, released = asyncio.Event(), asyncio.Event()

        async def hold_the_refund(response: httpx.Response) -> None:
            if response.request.url.path == "/refund":
                answered.set()
                await released.wait()

        http = api.resources.http_client
        http.event_hooks = {**http.event_hooks, "response": [hold_the_refund]}
        body = {"payment_id": paid["id"], "amount": "10.00"}
        refunding = asyncio.create_task(api.post("/refund", body, idempotency_key="outage-0001"))
        await asyncio.wait_for(answered.wait(), timeout=10)
        await stoppable_db.stop()
        released.set()
        failed = await asyncio.wait_for(refunding, timeout=20)
        await stoppable_db.start()
        assert failed.status_code == 503, failed.text

        retried = await api.post("/refund", body, idempotency_key="outage-0001")

        assert retried.status_code in {200, 202}, retried.text
        refunds = [
            t
            for t in await api.sandbox_transactions(paid["id"])
            if t["transactionType"] == "REFUND"
        ]
        assert len(refunds) == 1

    async def test_the_sweep_releases_what_the_outage_left_locked_and_nothing_else(self, api: Api):
        # What another worker's retry needs: the owning process releases without a request.
        sessionmaker = api.resources.sessionmaker
        now = datetime.now(UTC)
        async with sessionmaker.begin() as session:
            repository = IdempotencyRepository(session)
            for key in ("outage-dead-0001", "outage-live-0001"):
                assert await repository.claim("scope", key, "f" * 64, now, timedelta(hours=1))
        later = now + timedelta(seconds=1)
        await api.medusa.execute(
            "UPDATE idempotency_keys SET locked_at = $1 WHERE key = 'outage-live-0001'", later
        )
        _unreleased[("scope", "outage-dead-0001")] = now
        _unreleased[("scope", "outage-live-0001")] = now  # since taken over by a live request

        released = await release_after_outage(sessionmaker)

        rows = await api.medusa.fetch("SELECT key, locked_at FROM idempotency_keys")
        locks = {row["key"]: row["locked_at"] for row in rows}
        assert released == 2
        assert locks == {"outage-dead-0001": None, "outage-live-0001": later}
        assert not _unreleased


class TestAnEventWaitingForAnEarlierOne:
    async def test_it_is_given_up_for_an_operator_after_its_tries(
        self, make: Any, receiver: Receiver, gateway: SandboxBackend
    ):
        api = await make(webhook_max_attempts=3, netvalve_capture_mode="manual")
        authorized = (await pay(api, (await api.medusa_session()).session_id)).json()
        # Captured and refunded at NetValve; only the refund's event reaches the service, so
        # it waits for the capture the ledger has not seen.
        captured = await gateway.client.capture(authorized["transaction_id"], Decimal("44.00"))
        assert isinstance(captured, Approved)
        assert captured.transaction_id is not None
        refunded = await gateway.client.refund(captured.transaction_id, Decimal("10.00"))
        assert isinstance(refunded, Approved)
        assert refunded.transaction_id is not None
        event = await sent(receiver, refunded.transaction_id, "REFUNDED")
        exhausted = metrics.WEBHOOK_PROCESSED.labels("exhausted")._value.get()

        await deliver(api, event)
        first = await process(api, rounds=1)
        rows = await process(api, rounds=5)

        waiting = "not in the ledger yet|earlier event this one depends on"
        assert first[0]["status"] == "failed", first
        assert re.search(waiting, first[0]["last_error"]), first
        [row] = rows
        assert row["status"] == "exhausted", row
        assert row["last_error"].startswith("gave up after 3 tries"), row
        assert re.search(waiting, row["last_error"]), row
        assert metrics.WEBHOOK_PROCESSED.labels("exhausted")._value.get() == exhausted + 1
        assert (await status(api, authorized["id"]))["refunded_amount"] == "0.00"


PAN = "4012001037141112"  # a Luhn-valid test card number
NETVALVE_MASK = "401200******1112"


@pytest.fixture
def no_pan_anywhere() -> Any:
    def check(text: str) -> None:
        for form in (PAN, "4012 0010 3714 1112", "4012-0010-3714-1112"):
            assert form not in text

    return check


class TestWebhookBodiesThatCannotBeStoredAsJson:
    @pytest.mark.parametrize(
        "raw",
        [
            b'{"eventName": "PURCHASED", "data": {"transactionId": 1, "note": "\\ud800"}}',
            b'{"eventName": "PURCHASED", "data": {"transactionId": 1, "deep": '
            + b'{"a": ' * 20
            + b"1"
            + b"}" * 20
            + b"}}",
        ],
        ids=["lone-surrogate", "nested-20-deep"],
    )
    async def test_refused_with_400_and_stored_rejected_as_sent(
        self, make: Any, raw: bytes, settlement_inbox: None
    ):
        api = await make()

        response = await api.http.post(
            "/api/v1/netvalve/webhook",
            content=raw,
            headers={"Content-Type": "application/json", WEBHOOK_HEADER: WEBHOOK_SECRET},
        )

        assert response.status_code == 400, response.text
        row = await api.medusa.fetchrow("SELECT status, raw_body FROM webhook_events")
        assert (row["status"], bytes(row["raw_body"])) == ("rejected", raw)


class TestCardNumbersInWebhooks:
    async def test_masked_in_any_field_before_it_is_stored_and_never_served(
        self, make: Any, no_pan_anywhere: Any
    ):
        api = await make()
        body = {
            "eventName": "PURCHASED",
            "data": {
                "transactionId": 1796214299863,
                "clientOrderId": f"{uuid.uuid4().hex}-1",
                "traceId": str(uuid.uuid4()),
                "cardNumber": NETVALVE_MASK,
                "pan": int(PAN),
                "description": "paid with 4012 0010 3714 1112 today",
                "extra": [{"card": "4012-0010-3714-1112"}, PAN],
            },
        }
        raw = json.dumps(body).encode()

        response = await api.http.post(
            "/api/v1/netvalve/webhook",
            content=raw,
            headers={
                "Content-Type": "application/json",
                WEBHOOK_HEADER: WEBHOOK_SECRET,
                "X-Card": PAN,
            },
        )

        assert response.status_code == 200, response.text
        row = await api.medusa.fetchrow(
            "SELECT id, raw_body, payload::text, headers::text, transaction_id FROM webhook_events"
        )
        for stored in (bytes(row["raw_body"]).decode(), row["payload"], row["headers"]):
            no_pan_anywhere(stored)
        assert NETVALVE_MASK in row["payload"]
        assert NETVALVE_MASK in bytes(row["raw_body"]).decode()
        assert row["transaction_id"] == 1796214299863
        assert '"transactionId": 1796214299863' in bytes(row["raw_body"]).decode()
        served = await api.http.get(
            f"/api/v1/netvalve/webhook-events/{row['id']}",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        listed = await api.http.get(
            "/api/v1/netvalve/webhook-events", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert served.status_code == listed.status_code == 200, served.text
        for text in (served.text, listed.text):
            no_pan_anywhere(text)
        assert served.json()["payload"]["data"]["cardNumber"] == NETVALVE_MASK

    async def test_masked_in_the_raw_bytes_of_a_rejected_body(
        self, make: Any, no_pan_anywhere: Any
    ):
        api = await make()
        raw = b'{"eventName": "NOT_AN_EVENT", "data": {"pan": "4012 0010 3714 1112"}} \xff'

        response = await api.http.post(
            "/api/v1/netvalve/webhook",
            content=raw,
            headers={"Content-Type": "application/json", WEBHOOK_HEADER: WEBHOOK_SECRET},
        )

        assert response.status_code == 400, response.text
        row = await api.medusa.fetchrow("SELECT status, raw_body FROM webhook_events")
        assert row["status"] == "rejected"
        stored = bytes(row["raw_body"])
        no_pan_anywhere(stored.decode(errors="replace"))
        assert stored == raw.replace(b"4012 0010 3714 1112", NETVALVE_MASK.encode())

    async def test_a_row_stored_before_masking_is_served_masked(
        self, make: Any, no_pan_anywhere: Any
    ):
        api = await make()
        body = {"eventName": "PURCHASED", "data": {"transactionId": 1796214299865}}
        response = await api.http.post(
            "/api/v1/netvalve/webhook",
            content=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", WEBHOOK_HEADER: WEBHOOK_SECRET},
        )
        assert response.status_code == 200, response.text
        await api.medusa.execute(
            "UPDATE webhook_events SET last_error = $1, notes = $1,"
            " payload = jsonb_set(payload, '{data,pan}', to_jsonb($1::text))",
            PAN,
        )

        served = await api.http.get(
            f"/api/v1/netvalve/webhook-events/{response.json()['id']}",
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )

        assert served.status_code == 200, served.text
        no_pan_anywhere(served.text)


class TestErrorsNeverEchoTheInput:
    @pytest.mark.parametrize(
        ("path", "params"),
        [
            ("/api/v1/netvalve/status", {"payment_id": "nope-4012001037141112"}),
            ("/api/v1/netvalve/webhook-events/nope-4012001037141112", {}),
        ],
    )
    async def test_an_invalid_uuid_is_named_not_quoted(self, api: Api, path, params):
        response = await api.http.get(
            path, params=params, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )

        assert response.status_code == 422, response.text
        [issue] = response.json()["detail"]
        assert issue["type"] == "uuid_parsing"
        assert issue["msg"] == "Input should be a valid UUID"
        for part in ("nope", "`n`", "4012001037141112", "found"):
            assert part not in response.text

    async def test_an_unknown_field_is_not_named_back(self, api: Api):
        response = await api.post(
            "/refund", {"payment_id": str(uuid.uuid4()), "sk_live_4012001037141112": "x"}
        )

        assert response.status_code == 422, response.text
        assert "sk_live" not in response.text
        [issue] = response.json()["detail"]
        assert (issue["type"], issue["loc"]) == ("extra_forbidden", ["body", "(unknown field)"])


class TestRefusedCorsPreflight:
    async def test_answers_in_the_one_error_shape(self, client):
        response = await client.options(
            "/api/v1/netvalve/payment",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )

        assert response.status_code == 400
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert set(body) == {"error", "detail", "request_id"}
        assert body["error"] == "CORSPreflightRefused"
        assert body["detail"] == "Disallowed CORS origin"
        assert body["request_id"] == response.headers["x-request-id"]
        assert "access-control-allow-origin" not in response.headers
        assert "evil.example" not in response.text

    async def test_an_allowed_preflight_is_unchanged(self, client):
        response = await client.options(
            "/api/v1/netvalve/payment",
            headers={
                "Origin": "https://shop.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "idempotency-key",
            },
        )

        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://shop.example.com"
