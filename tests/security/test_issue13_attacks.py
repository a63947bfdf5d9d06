"""Attacks on issue 13's notifications to Medusa: each test is a way in that was open, and stays
closed."""

import asyncio
import base64
import time
import uuid
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.api.netvalve.test_medusa_notifications import (
    HOOK_PATH,
    MEDUSA_WEBHOOK_SECRET,
    notify,
    paid,
    queue,
    resources_of,
    rows,
    worker,
)
from tests.fixtures.api import ADMIN_KEY, STOREFRONT_KEY, ApiFactory
from tests.security.test_security import MEDUSA_KEY

pytestmark = pytest.mark.asyncio

PAN = "4111111111111111"
SECRET_KEY = MEDUSA_WEBHOOK_SECRET.removeprefix("whsec_")


def answering(status: int, body: bytes) -> httpx.AsyncClient:
    """The worker's client, against a Medusa that answers every POST with `body`."""

    def handler(_: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=body)

    return httpx.AsyncClient(transport=httpx.MockTransport(handler), timeout=5)


async def last_error(api: Any, row_id: uuid.UUID) -> str:
    [row] = [row for row in await rows(api) if row["id"] == row_id]
    assert (row["status"], row["attempts"]) == ("pending", 1), row
    return str(row["last_error"])


class TestWhatMedusaAnswersIsCutSafely:
    """Only the first bytes of a refusal are kept; the cut must not split a card number or the
    secret so that the part before it escapes masking and redaction."""

    @pytest.mark.parametrize("kept", [7, 10, 12])
    async def test_a_card_number_cut_by_the_snippet_leaves_no_digits_past_the_first_six(
        self, api_factory: ApiFactory, kept: int
    ):
        api = await api_factory(**notify(f"http://medusa.invalid{HOOK_PATH}"))
        row_id = await queue(api, (await paid(api))["id"])
        prefix = b'{"message":"declined card ' + b"x" * 200
        body = prefix[: 200 - kept] + PAN.encode() + b' and more"}'

        async with answering(500, body) as http:
            await worker(api, http).deliver_due()

        error = await last_error(api, row_id)
        assert error.startswith("HTTP 500: "), error
        assert PAN[:7] not in error, error

    @pytest.mark.parametrize("kept", [8, 20, 40])
    async def test_the_secret_cut_by_the_snippet_is_not_stored_in_part(
        self, api_factory: ApiFactory, kept: int
    ):
        api = await api_factory(**notify(f"http://medusa.invalid{HOOK_PATH}"))
        row_id = await queue(api, (await paid(api))["id"])
        prefix = b'{"message":"your secret is ' + b"y" * 200
        body = prefix[: 200 - kept] + MEDUSA_WEBHOOK_SECRET.encode() + b'"}'

        async with answering(401, body) as http:
            await worker(api, http).deliver_due()

        error = await last_error(api, row_id)
        assert SECRET_KEY[:8] not in error, error
        assert "whsec_" + SECRET_KEY[:2] not in error, error

    async def test_a_short_answer_is_still_kept_whole_but_masked(self, api_factory: ApiFactory):
        api = await api_factory(**notify(f"http://medusa.invalid{HOOK_PATH}"))
        row_id = await queue(api, (await paid(api))["id"])
        body = f'{{"message":"card {PAN} secret {MEDUSA_WEBHOOK_SECRET}"}}'.encode()

        async with answering(500, body) as http:
            await worker(api, http).deliver_due()

        error = await last_error(api, row_id)
        assert "411111******1111" in error, error
        assert PAN not in error, error
        assert "secret " in error, error
        assert SECRET_KEY not in error, error


class TrickleServer:
    """A Medusa (or a proxy in front of it) that answers one byte at a time, each just inside
    the client's read timeout: httpx's per-read timeouts never fire."""

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self.server: asyncio.AbstractServer | None = None
        self.posts = 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            self.posts += 1
            answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            for byte in answer:
                writer.write(bytes([byte]))
                await writer.drain()
                await asyncio.sleep(self.pause)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}{HOOK_PATH}"

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()


class TestASlowMedusaCannotHoldTheWorker:
    async def test_one_send_ends_within_the_notify_timeout(self, api_factory: ApiFactory):
        trickle = TrickleServer(pause=0.1)
        async with trickle as url:
            api = await api_factory(**notify(url, medusa_notify_timeout_seconds=0.5))
            row_id = await queue(api, (await paid(api))["id"])
            timeout = httpx.Timeout(resources_of(api).settings.medusa_notify_timeout_seconds)
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as http:
                started = time.monotonic()
                await asyncio.wait_for(worker(api, http).deliver_due(), 30)
                took = time.monotonic() - started

        # The answer takes ~7 s to trickle in (70 bytes, 0.1 s apart), every read inside 0.5 s.
        assert trickle.posts == 1
        assert took < 3, took
        [row] = [row for row in await rows(api) if row["id"] == row_id]
        assert (row["status"], row["last_status_code"]) == ("pending", None), row
        assert "Timeout" in str(row["last_error"]), row


class TestIdempotencyKeysAreThePresentingKeys:
    """Held: a stored answer is replayed only to the API key that stored it."""

    async def test_a_medusa_key_does_not_get_a_storefronts_stored_answer(
        self, api_factory: ApiFactory
    ):
        api = await api_factory(medusa_api_keys=[SecretStr(MEDUSA_KEY)])
        session = await api.medusa_session()
        body = {"payment_session_id": session.session_id, "payment_token": await api.token()}

        stored = await api.post(
            "/payment", body, key=STOREFRONT_KEY, idempotency_key="payses_same_key"
        )
        again = await api.post(
            "/payment", body, key=STOREFRONT_KEY, idempotency_key="payses_same_key"
        )
        other = await api.post("/payment", body, key=MEDUSA_KEY, idempotency_key="payses_same_key")

        assert (stored.status_code, again.status_code) == (200, 200), stored.text
        assert again.headers.get("Idempotent-Replayed") == "true"
        assert other.status_code == 409, other.text
        assert other.json()["error"] == "AlreadyPaid"
        assert "Idempotent-Replayed" not in other.headers
        assert await api.ledger_counts() == (1, 1)


class TestTheOutboxApiRefusesBadInputWith4xx:
    """Held: no input to the operator's outbox API is a 500."""

    @pytest.mark.parametrize(
        "params",
        [
            {"cursor": "%%%"},
            {"cursor": "ä"},
            {"cursor": base64.urlsafe_b64encode(b"\xff\xfe|x").decode()},
            {
                "cursor": base64.urlsafe_b64encode(
                    f"9999-12-31T23:59:59-23:59|{uuid.uuid4()}".encode()
                ).decode()
            },
            {
                "cursor": base64.urlsafe_b64encode(
                    f"0001-01-01T00:00:00+23:59|{uuid.uuid4()}".encode()
                ).decode()
            },
            {"cursor": base64.urlsafe_b64encode(b"2026-01-01T00:00:00|nope").decode()},
            {"cursor": "x" * 201},
            {"limit": "0"},
            {"limit": "201"},
            {"limit": "1e9"},
            {"status": "sent"},
            {"event_type": "payment.stolen"},
            {"payment_id": "not-a-uuid"},
            {"payment_id": "\x00"},
        ],
    )
    async def test_the_list(self, api_factory: ApiFactory, params: dict[str, str]):
        api = await api_factory()
        response = await api.get("/medusa-notifications", params, key=ADMIN_KEY)
        assert response.status_code in (400, 422), response.text

    @pytest.mark.parametrize(
        "path", ["/medusa-notifications/not-a-uuid", "/medusa-notifications/%00"]
    )
    async def test_one_and_its_replay(self, api_factory: ApiFactory, path: str):
        api = await api_factory()
        assert (await api.get(path, {}, key=ADMIN_KEY)).status_code == 422
        assert (await api.post(f"{path}/replay", {}, key=ADMIN_KEY)).status_code == 422
        missing = f"/medusa-notifications/{uuid.uuid4()}"
        assert (await api.get(missing, {}, key=ADMIN_KEY)).status_code == 404
        assert (await api.post(f"{missing}/replay", {}, key=ADMIN_KEY)).status_code == 404
