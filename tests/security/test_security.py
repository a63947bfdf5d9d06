"""Security: who may call what, what browsers are allowed, what every response says about
itself, and that the Medusa connection cannot write."""

import asyncpg
import httpx
import pytest
import pytest_asyncio
from pydantic import SecretStr

from app.core.headers import API_POLICY, DOCS_POLICY, STATIC_HEADERS
from tests.fixtures.api import ADMIN_KEY, STOREFRONT_KEY, Api, ApiFactory
from tests.fixtures.netvalve import build_webhook_event
from tests.fixtures.webhooks import WEBHOOK_HEADER, WEBHOOK_SETTINGS

pytestmark = pytest.mark.asyncio

METRICS_KEY = "mtr_test_9a7c5e3b1d0f2e4a6c8b0d2f"
MEDUSA_KEY = "mdp_test_3c5e7a9b1d2f4a6c8e0b2d4f"
SHOP = "https://shop.example.com"  # the CORS origin tests/fixtures/settings.py allows
# Routes anyone may call. A new route is private unless it is added here on purpose.
PUBLIC = {("GET", "/health"), ("GET", "/health/ready")}
WEBHOOK = ("POST", "/api/v1/netvalve/webhook")
STOREFRONT = {
    ("POST", "/api/v1/netvalve/hpf/session"),
    ("GET", "/api/v1/netvalve/hpf/session"),
    ("POST", "/api/v1/netvalve/payment"),
    ("GET", "/api/v1/netvalve/status"),
}
# What the Medusa provider package needs, and nothing more.
MEDUSA = STOREFRONT | {
    ("POST", "/api/v1/netvalve/capture"),
    ("POST", "/api/v1/netvalve/refund"),
    ("POST", "/api/v1/netvalve/cancel"),
}
ANY_ID = "6f1d2c3b-4a5e-4f60-8a7b-9c0d1e2f3a4b"


@pytest_asyncio.fixture
async def guarded(api_factory: ApiFactory) -> Api:
    built: Api = await api_factory(
        metrics_api_keys=[SecretStr(METRICS_KEY)],
        medusa_api_keys=[SecretStr(MEDUSA_KEY)],
        **WEBHOOK_SETTINGS,
    )
    return built


async def operations(api: Api) -> list[tuple[str, str]]:
    spec = (await api.http.get("/openapi.json")).json()
    return [
        (method.upper(), path)
        for path, methods in spec["paths"].items()
        for method in methods
        if method in {"get", "post", "patch", "delete", "put"}
    ]


async def call(api: Api, method: str, path: str, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return await api.http.request(
        method, path.replace("{event_id}", ANY_ID), json={}, headers=headers
    )


def assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, (response.request.url, response.text)
    body = response.json()
    assert set(body) >= {"error", "detail", "request_id"}
    assert body["request_id"] == response.headers["X-Request-ID"]


class TestEveryRoute:
    async def test_the_public_routes_are_exactly_the_expected_ones(self, guarded: Api):
        public = set()
        for method, path in await operations(guarded):
            if (method, path) == WEBHOOK:
                continue
            response = await call(guarded, method, path, key=None)
            if response.status_code != 401:
                public.add((method, path))
            else:
                assert_error(response, 401)
                assert response.headers["WWW-Authenticate"] == "Bearer"
        assert public == PUBLIC

    @pytest.mark.parametrize("key", ["not-a-key", "", STOREFRONT_KEY + "x", ADMIN_KEY[:-1]])
    async def test_an_unknown_key_is_401_everywhere(self, guarded: Api, key: str):
        for method, path in await operations(guarded):
            if (method, path) in PUBLIC | {WEBHOOK}:
                continue
            headers = {"Authorization": f"Bearer {key}"}
            response = await guarded.http.request(
                method, path.replace("{event_id}", ANY_ID), json={}, headers=headers
            )
            assert_error(response, 401)

    async def test_the_storefront_key_is_refused_on_every_admin_route(self, guarded: Api):
        admin_only = [
            op for op in await operations(guarded) if op not in STOREFRONT | PUBLIC | {WEBHOOK}
        ]
        assert len(admin_only) >= 8  # capture, refund, cancel, metrics, the webhook-event API
        for method, path in admin_only:
            assert_error(await call(guarded, method, path, STOREFRONT_KEY), 403)

    async def test_a_metrics_key_reads_metrics_and_nothing_else(self, guarded: Api):
        for method, path in await operations(guarded):
            if (method, path) in PUBLIC | {WEBHOOK}:
                continue
            response = await call(guarded, method, path, METRICS_KEY)
            if path == "/metrics":
                assert response.status_code == 200
            else:
                assert_error(response, 403)

    async def test_the_medusa_key_may_call_exactly_what_the_provider_needs(self, guarded: Api):
        allowed, refused = set(), set()
        for method, path in await operations(guarded):
            if (method, path) in PUBLIC | {WEBHOOK}:
                continue
            response = await call(guarded, method, path, MEDUSA_KEY)
            if response.status_code == 403:
                assert_error(response, 403)
                refused.add((method, path))
            else:
                # Past the key: refused for its (empty) body or unknown ids, never for scope.
                assert response.status_code in (404, 422), (path, response.text)
                allowed.add((method, path))
        assert allowed == MEDUSA
        assert ("GET", "/metrics") in refused
        assert {path for _, path in refused} >= {
            "/api/v1/netvalve/webhook-events",
            "/api/v1/netvalve/extra-charges",
        }

    async def test_the_webhook_needs_its_header_not_an_api_key(self, guarded: Api):
        body = build_webhook_event()
        without = await guarded.http.post("/api/v1/netvalve/webhook", json=body)
        with_api_key = await guarded.http.post(
            "/api/v1/netvalve/webhook",
            json=body,
            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
        )
        wrong = await guarded.http.post(
            "/api/v1/netvalve/webhook",
            json=body,
            headers={WEBHOOK_HEADER: "whk_wrong_0000000000000"},
        )

        for response in (without, with_api_key, wrong):
            assert_error(response, 401)
        assert await guarded.medusa.fetchval("SELECT count(*) FROM webhook_events") == 0


class TestRateLimit:
    async def test_a_storefront_caller_over_its_burst_gets_429_with_retry_after(
        self, api_factory: ApiFactory
    ):
        api: Api = await api_factory(
            rate_limit_enabled=True, rate_limit_per_minute=6, rate_limit_burst=3
        )
        query = {"payment_id": ANY_ID}

        answers = [await api.get("/status", query) for _ in range(4)]

        assert [a.status_code for a in answers] == [404, 404, 404, 429]
        assert_error(answers[-1], 429)
        assert answers[-1].headers["Retry-After"] == "10"  # 6 a minute: one token per 10 s
        # Another key from the same address has a bucket of its own ...
        assert (await api.get("/status", query, key=ADMIN_KEY)).status_code == 404
        # ... and admin-only routes are not limited.
        for _ in range(5):
            refused = await api.post("/cancel", {"payment_id": ANY_ID}, key=ADMIN_KEY)
            assert refused.status_code == 404

    async def test_the_medusa_server_is_not_limited_per_address(self, api_factory: ApiFactory):
        # Every shopper's checkout reaches this service from the one Medusa server: a
        # per-address bucket would turn a busy shop into 429s at cart completion.
        api: Api = await api_factory(
            rate_limit_enabled=True,
            rate_limit_per_minute=6,
            rate_limit_burst=3,
            medusa_api_keys=[SecretStr(MEDUSA_KEY)],
        )
        query = {"payment_id": ANY_ID}

        answers = [await api.get("/status", query, key=MEDUSA_KEY) for _ in range(10)]

        assert {a.status_code for a in answers} == {404}
        assert (await api.get("/status", query)).status_code == 404  # the storefront's own

    async def test_the_client_address_is_part_of_the_bucket_behind_a_trusted_proxy(
        self, api_factory: ApiFactory
    ):
        api: Api = await api_factory(
            rate_limit_enabled=True,
            rate_limit_per_minute=6,
            rate_limit_burst=1,
            trusted_proxies=["127.0.0.1/32"],
        )

        async def from_address(address: str) -> int:
            response = await api.http.get(
                "/api/v1/netvalve/status",
                params={"payment_id": ANY_ID},
                headers={
                    "Authorization": f"Bearer {STOREFRONT_KEY}",
                    "X-Forwarded-For": address,
                },
            )
            return response.status_code

        assert [await from_address("203.0.113.7") for _ in range(2)] == [404, 429]
        assert await from_address("198.51.100.9") == 404


class TestBrowsers:
    async def test_a_preflight_from_the_shop_is_allowed(self, guarded: Api):
        response = await guarded.http.options(
            "/api/v1/netvalve/payment",
            headers={
                "Origin": SHOP,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
            },
        )

        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == SHOP
        allowed = response.headers["Access-Control-Allow-Headers"].lower()
        assert {"authorization", "content-type", "idempotency-key"} <= {
            header.strip() for header in allowed.split(",")
        }
        assert "Access-Control-Allow-Credentials" not in response.headers

    async def test_a_preflight_from_a_foreign_origin_is_refused(self, guarded: Api):
        response = await guarded.http.options(
            "/api/v1/netvalve/payment",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )

        assert response.status_code == 400
        assert "Access-Control-Allow-Origin" not in response.headers

    async def test_a_foreign_origin_gets_no_cors_grant_on_a_real_request(self, guarded: Api):
        response = await guarded.http.get("/health", headers={"Origin": "https://evil.example"})

        assert response.status_code == 200
        assert "Access-Control-Allow-Origin" not in response.headers

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("GET", "/health", 200),
            ("GET", "/api/v1/netvalve/status?payment_id=" + ANY_ID, 401),
            ("GET", "/no/such/route", 404),
            ("POST", "/health", 405),
            ("OPTIONS", "/api/v1/netvalve/payment", 400),
        ],
    )
    async def test_every_response_carries_the_security_headers(
        self, guarded: Api, method: str, path: str, status: int
    ):
        headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
        response = await guarded.http.request(method, path, headers=headers)

        assert response.status_code == status
        for name, value in STATIC_HEADERS.items():
            assert response.headers[name] == value
        assert response.headers["Content-Security-Policy"] == API_POLICY

    async def test_swagger_ui_may_load_its_assets_and_nothing_else(self, guarded: Api):
        response = await guarded.http.get("/docs")

        assert response.status_code == 200
        assert response.headers["Content-Security-Policy"] == DOCS_POLICY
        assert "frame-ancestors 'none'" in DOCS_POLICY
        assert response.headers["X-Frame-Options"] == "DENY"


class TestMedusaIsReadOnly:
    @pytest.mark.parametrize(
        "statement",
        [
            "INSERT INTO cart (id, currency_code) VALUES ('cart_SECURITY', 'eur')",
            "UPDATE payment_session SET status = 'authorized'",
            "DELETE FROM payment_collection",
            "DROP TABLE payment_session",
        ],
    )
    async def test_the_running_service_connection_refuses_writes(self, api: Api, statement: str):
        await api.medusa_session()
        pool = api.resources.medusa_pool

        async with pool.acquire() as connection:
            with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
                await connection.execute(statement)

        assert await api.medusa.fetchval("SELECT count(*) FROM payment_session") == 1
        assert await api.medusa.fetchval("SELECT count(*) FROM cart") == 1
