"""Bodies are bounded and keys are checked before a body is read (in-process; the memory of a
real server under huge bodies is measured in tests/multiprocess/test_edge.py)."""

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from tests.fixtures.api import ADMIN_KEY, STOREFRONT_KEY, Api, ApiFactory
from tests.fixtures.webhooks import WEBHOOK_HEADER, WEBHOOK_SECRET, WEBHOOK_SETTINGS

pytestmark = pytest.mark.asyncio

CHUNK = b"x" * 1024
PAYMENT = "/api/v1/netvalve/payment"
REFUND = "/api/v1/netvalve/refund"
WEBHOOK = "/api/v1/netvalve/webhook"
LIMIT = 4096


class Upload:
    """A streamed body of `chunks` KiB that counts how much of it the server pulled."""

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += 1
            yield CHUNK


@pytest_asyncio.fixture
async def bounded(api_factory: ApiFactory) -> Api:
    built: Api = await api_factory(
        max_request_body_bytes=LIMIT,
        netvalve_webhook_allowed_ips=["127.0.0.0/8"],
        **WEBHOOK_SETTINGS,
    )
    return built


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}


def assert_refused(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert response.headers["Connection"] == "close"


class TestKeysFirst:
    @pytest.mark.parametrize("headers", [{}, auth("sf_unknown_key_0000000000000000")])
    async def test_an_unauthenticated_body_is_not_read(self, bounded: Api, headers):
        upload = Upload(10_000)
        response = await bounded.http.post(PAYMENT, content=upload, headers=headers)
        assert_refused(response, 401, "NotAuthenticated")
        assert upload.pulled <= 1  # httpx may start the stream; the app never asked for it

    async def test_a_key_of_another_scope_is_refused_before_the_body(self, bounded: Api):
        upload = Upload(10_000)
        response = await bounded.http.post(REFUND, content=upload, headers=auth(STOREFRONT_KEY))
        assert_refused(response, 403, "InsufficientScope")
        assert upload.pulled <= 1

    async def test_the_webhook_header_is_checked_before_the_body(self, bounded: Api):
        upload = Upload(10_000)
        response = await bounded.http.post(
            WEBHOOK, content=upload, headers={WEBHOOK_HEADER: "whk_wrong_0000000000000"}
        )
        assert_refused(response, 401, "WebhookUnauthenticated")
        assert upload.pulled <= 1

    async def test_the_webhook_source_is_checked_before_the_body(self, api_factory: ApiFactory):
        api = await api_factory(netvalve_webhook_allowed_ips=["10.0.0.0/8"], **WEBHOOK_SETTINGS)
        upload = Upload(10_000)
        response = await api.http.post(WEBHOOK, content=upload)
        assert_refused(response, 403, "WebhookSourceForbidden")
        assert upload.pulled <= 1


class TestBodyLimits:
    async def test_a_declared_oversized_body_is_refused_unread(self, bounded: Api):
        # httpx declares Content-Length for bytes: the refusal comes from the header alone.
        response = await bounded.http.post(
            PAYMENT, content=b"{" + b" " * LIMIT + b"}", headers=auth(STOREFRONT_KEY)
        )
        assert_refused(response, 413, "RequestTooLarge")

    @pytest.mark.parametrize("key", [STOREFRONT_KEY, ADMIN_KEY])
    async def test_a_chunked_body_is_stopped_at_the_limit(self, bounded: Api, key: str):
        upload = Upload(60_000)  # about 60 MB, sent without a Content-Length
        response = await bounded.http.post(PAYMENT, content=upload, headers=auth(key))
        assert_refused(response, 413, "RequestTooLarge")
        assert upload.pulled <= LIMIT // len(CHUNK) + 2

    async def test_a_body_longer_than_declared_is_stopped_at_the_limit(self, bounded: Api):
        upload = Upload(1_000)
        headers = {**auth(ADMIN_KEY), "Content-Length": "100"}
        response = await bounded.http.post(REFUND, content=upload, headers=headers)
        assert_refused(response, 413, "RequestTooLarge")
        assert upload.pulled <= LIMIT // len(CHUNK) + 2

    async def test_the_webhook_has_its_own_limit(self, api_factory: ApiFactory):
        api = await api_factory(
            max_request_body_bytes=1024, netvalve_webhook_max_body_bytes=8192, **WEBHOOK_SETTINGS
        )
        header = {WEBHOOK_HEADER: WEBHOOK_SECRET}
        fits = await api.http.post(WEBHOOK, content=b"{" + b" " * 4000 + b"}", headers=header)
        assert fits.status_code == 400  # read and parsed: it is simply not an event
        await api.medusa.execute("DELETE FROM webhook_events")  # stored as rejected; not ours
        upload = Upload(100)
        response = await api.http.post(WEBHOOK, content=upload, headers=header)
        assert_refused(response, 413, "WebhookTooLarge")
        assert upload.pulled <= 8 + 2

    async def test_a_body_within_the_limit_is_served(self, bounded: Api):
        response = await bounded.http.post(PAYMENT, json={}, headers=auth(STOREFRONT_KEY))
        assert response.status_code in (400, 422)  # reached validation, as before
        assert response.headers.get("Connection") != "close"
