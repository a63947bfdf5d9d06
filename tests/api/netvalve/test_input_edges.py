"""Input that must be refused, and answers that must be right (issue 12, section 5)."""

import asyncio
import re
import uuid
from pathlib import Path

import httpx
import pytest

from app.schemas.base import MONEY_IN_PATTERN, MONEY_OUT_PATTERN
from tests.api.netvalve.conftest import ADMIN_KEY, Api
from tests.drills.conftest import StoppablePostgres, stoppable_db, stoppable_server  # noqa: F401

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
        response = await api.http.post(
            "/api/v1/netvalve/refund",
            json={"payment_id": str(uuid.uuid4())},
            headers={"Authorization": f"Bearer {ADMIN_KEY}", "Idempotency-Key": key},
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

        http = api.http._transport.app.state.resources.http_client  # type: ignore[attr-defined]
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
