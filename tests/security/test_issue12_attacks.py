"""Attacks on issue 12's hardening: each test is a way in that was open, and stays closed."""

import json
import logging
import multiprocessing
import os
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import NoReturn

import httpx
import pytest
import structlog
from starlette.requests import Request

import app
from app.api.client import client_ip
from app.core.cards import mask_pans, mask_pans_in_text
from app.core.logging import mask_card_numbers, register_secrets
from app.core.startup import DatabaseUnreachable, check_database
from app.db.session import Phases
from app.schemas.netvalve import CancelRequest
from app.services.idempotency import IdempotencyKeyInFlight, IdempotencyService
from app.services.netvalve.webhooks import parse
from tests.api.netvalve.test_payable_session import hpf, nothing_charged
from tests.fixtures.api import Api, ApiFactory
from tests.fixtures.gateway import UNUSED_DB
from tests.fixtures.settings import make_settings
from tests.security.test_request_bounds import Upload

# A card number with what is written after it: its expiry date or security code.
CARD_THEN_MORE = [
    ("card 4111 1111 1111 1111 12/26 declined", "card 411111******1111 12/26 declined"),
    ("4111111111111111 123", "411111******1111 123"),
    ("pan=4111111111111111-12-26", "pan=411111******1111-12-26"),
    ("5500 0000 0000 0004 01/29", "550000******0004 01/29"),
    ("cvv 123 4111111111111111", "cvv 123 411111******1111"),
]


class TestCardNumberNextToOtherDigits:
    @pytest.mark.parametrize(("text", "masked"), CARD_THEN_MORE)
    def test_logs_mask_it(self, text: str, masked: str):
        assert mask_card_numbers(text) == masked

    @pytest.mark.parametrize(("text", "masked"), CARD_THEN_MORE)
    def test_stored_webhooks_mask_it(self, text: str, masked: str):
        assert mask_pans_in_text(text) == masked
        assert mask_pans({"note": text, "transactionId": 4012000098765439}) == {
            "note": masked,
            "transactionId": 4012000098765439,
        }

    def test_ids_and_plain_numbers_are_left_whole(self):
        for text in ("trace 4012000098765438", "order 1234567 2026-12-02 13:22", "10.00 USD"):
            assert mask_card_numbers(text) == text
            assert mask_pans_in_text(text) == text


@pytest.mark.asyncio
class TestAKeyTakenOverStaysLocked:
    async def test_a_slow_first_request_does_not_unlock_the_request_that_took_over(self, api: Api):
        # Request A holds its key past STALE_AFTER (a slow NetValve, a slow database); request B
        # on another worker takes the key over and is still running when A ends with a
        # non-final answer. A's release must leave B's lock, or a third request runs alongside.
        sessionmaker = api.resources.sessionmaker
        service = IdempotencyService(sessionmaker, timedelta(hours=1))
        taken_over = datetime.now(UTC) + timedelta(minutes=3)

        async def slow_then_busy(phases: Phases) -> NoReturn:
            async with phases.phase():
                pass  # the claim commits with the operation's first phase, as a payment's does
            await api.medusa.execute(
                "UPDATE idempotency_keys SET locked_at = $1 WHERE key = 'taken-over-0001'",
                taken_over,
            )
            raise IdempotencyKeyInFlight  # any non-final answer (409)

        body = CancelRequest(transaction_id=1)
        response = await service.run(
            scope="scope",
            key="taken-over-0001",
            method="POST",
            path="/cancel",
            body=body,
            request_id="r",
            action=slow_then_busy,
        )

        assert response.status_code == 409
        rows = await api.medusa.fetch(
            "SELECT locked_at FROM idempotency_keys WHERE key = 'taken-over-0001'"
        )
        assert [row["locked_at"] for row in rows] == [taken_over]


@pytest.mark.asyncio
class TestAPaymentCollectionMedusaIsDoneWith:
    # The session still says pending, but its payment collection is already paid (by another
    # provider's session), or Medusa has closed it: charging it would take the money twice or
    # land it on a dead collection.
    @pytest.mark.parametrize(
        "status", ["authorized", "partially_authorized", "completed", "canceled"]
    )
    async def test_it_is_not_charged(self, api: Api, status: str):
        medusa = await api.medusa_session()
        await api.medusa.execute(
            "UPDATE payment_collection SET status = $2 WHERE id = $1",
            medusa.collection_id,
            status,
        )

        paid = await api.pay(medusa)
        session = await hpf(api, medusa)

        for response in (paid, session):
            assert response.status_code == 409, response.text
            assert response.json()["error"] == "PaymentSessionNotPayable"
        await nothing_charged(api)

    async def test_a_completed_collection_is_not_charged(self, api: Api):
        medusa = await api.medusa_session()
        await api.medusa.execute(
            "UPDATE payment_collection SET completed_at = now() WHERE id = $1",
            medusa.collection_id,
        )

        paid = await api.pay(medusa)

        assert paid.status_code == 409, paid.text
        assert paid.json()["error"] == "PaymentSessionNotPayable"
        await nothing_charged(api)


class TestASecretWithCharactersALineEscapes:
    # A password may hold quotes, backslashes or non-ASCII letters; inside an exception or
    # bytes logged as they are, the line carries them escaped, which the plain value misses.
    SECRET = "pa\"ss\\w'ord-\u00e9t\u00e9-2026"

    def test_it_is_redacted_in_a_repr_too(self, captured_logs):
        register_secrets([self.SECRET])
        url = f"https://merchant:{self.SECRET}@gateway.example".encode()

        structlog.get_logger("probe").warning(
            "probe.failed", error=RuntimeError(f"refused {self.SECRET}"), url=url
        )
        logging.getLogger("thirdparty.lib").warning("sent %r", {"password": [self.SECRET]})

        decoded = json.dumps(captured_logs.lines(), ensure_ascii=False)
        forms = [self.SECRET, repr(self.SECRET)[1:-1], repr(self.SECRET.encode())[2:-1]]
        for form in forms:
            assert form not in captured_logs.text
            assert form not in decoded
            assert json.dumps(form)[1:-1] not in captured_logs.text
        assert captured_logs.text.count("[REDACTED]") >= 3


class TestACardNumberSentAsAJsonNumberWithAFraction:
    def test_the_stored_payload_masks_it(self):
        parsed = parse(
            b'{"eventName": "PURCHASED", "data": {"transactionId": 7,'
            b' "note": 4111111111111111.0, "other": 4.111111111111111E15, "amount": 10.50}}'
        )
        assert not isinstance(parsed, str)

        masked = mask_pans(parsed.data)

        assert masked == {
            "transactionId": 7,
            "note": "411111******1111",
            "other": "411111******1111",
            "amount": Decimal("10.50"),
        }


@pytest.mark.asyncio
class TestADeletedCart:
    async def test_its_session_is_not_charged(self, api: Api):
        medusa = await api.medusa_session()
        await api.medusa.execute("UPDATE cart SET deleted_at = now() WHERE id = $1", medusa.cart_id)

        paid = await api.pay(medusa)
        session = await hpf(api, medusa)

        for response in (paid, session):
            assert response.status_code == 409, response.text
            assert response.json()["error"] == "PaymentSessionNotPayable"
        await nothing_charged(api)


class TestADatabaseUrlAsyncpgCannotRead:
    @pytest.mark.parametrize(
        "url",
        [
            "postgresql+asyncpg://u:s3cret-passw0rd@db:abc/netvalve",
            "postgresql+asyncpg://u:s3cret-passw0rd@[::1/netvalve",
        ],
    )
    def test_is_one_line_without_the_password(self, url: str):
        with pytest.raises(DatabaseUnreachable) as refused:
            check_database(url)

        assert "DATABASE_URL" in str(refused.value)
        assert "s3cret" not in str(refused.value)


@pytest.mark.asyncio
class TestBehindAPathPrefix:
    # Served under a prefix (uvicorn --root-path, a proxy's sub-path), scope["path"] carries the
    # prefix while the router matches without it: the guard must see the route all the same.
    async def test_an_unauthenticated_body_is_not_read(self, api_factory: ApiFactory):
        api = await api_factory(max_request_body_bytes=4096)
        app = api.http._transport.app
        transport = httpx.ASGITransport(app=app, root_path="/gateway")
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            upload = Upload(10_000)
            response = await http.post("/gateway/api/v1/netvalve/payment", content=upload)

        assert response.status_code == 401, response.text
        assert response.json()["error"] == "NotAuthenticated"
        assert upload.pulled <= 1


@pytest.fixture
def a_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """This process as a uvicorn worker whose temporary directory is `tmp_path`; the variable
    it sets is removed afterwards."""
    monkeypatch.setenv(app.MULTIPROCESS_ENV, "")  # restored to its state before the test
    monkeypatch.delenv(app.MULTIPROCESS_ENV)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    supervisor = SimpleNamespace(pid=os.getpid())
    monkeypatch.setattr(multiprocessing, "parent_process", lambda: supervisor)
    return tmp_path


class TestASharedMetricsDirectoryNotOurOwn:
    @pytest.mark.parametrize("kind", ["world-writable", "symlink"])
    def test_is_not_used(self, a_worker: Path, kind: str):
        planted = a_worker / "planted"
        planted.mkdir()
        if kind == "symlink":
            (a_worker / app.METRICS_ROOT).symlink_to(planted)
        else:
            (a_worker / app.METRICS_ROOT).mkdir()
            (a_worker / app.METRICS_ROOT).chmod(0o777)

        app._share_metrics_between_workers()

        assert app.MULTIPROCESS_ENV not in os.environ
        assert not any(planted.iterdir())

    def test_our_own_is_used(self, a_worker: Path):
        app._share_metrics_between_workers()

        assert os.environ[app.MULTIPROCESS_ENV].startswith(str(a_worker / app.METRICS_ROOT))


class TestXForwardedForSentTwice:
    # A proxy that adds its own X-Forwarded-For line instead of appending to the client's: the
    # header is one list (RFC 9110, 5.3), so the client's forged first line is not the answer.
    def test_the_last_line_the_trusted_proxy_added_counts(self):
        settings = make_settings(UNUSED_DB, trusted_proxies=["127.0.0.0/8"])
        request = Request(
            {
                "type": "http",
                "method": "POST",
                "path": "/",
                "headers": [
                    (b"x-forwarded-for", b"10.9.9.9"),  # the client's, forged
                    (b"x-forwarded-for", b"203.0.113.7"),  # the proxy's
                ],
                "client": ("127.0.0.1", 50000),
            }
        )

        assert client_ip(request, settings) == "203.0.113.7"
