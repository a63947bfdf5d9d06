from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from app.main import create_app
from tests.conftest import Databases, asgi_client, started_app
from tests.fixtures.settings import TEST_API_KEY, TEST_BASIC_AUTH_PASSWORD, make_settings

pytestmark = pytest.mark.asyncio

UNREACHABLE = "postgresql+asyncpg://app:db-pass-7d41c9@127.0.0.1:1/netvalve"


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async for app in started_app(create_app(settings)):
        async with asgi_client(app) as client:
            yield client


def failing(body: dict[str, Any]) -> set[str]:
    return {name for name, check in body["checks"].items() if check["status"] == "fail"}


class TestLiveness:
    async def test_ok(self, client):
        response = await client.get("/health")

        assert response.status_code == 200
        assert response.json() == {"status": "ok"}

    async def test_ok_even_when_every_dependency_is_down(self):
        # Liveness does no I/O, so a database outage never gets the process restarted.
        settings = make_settings(UNREACHABLE, netvalve_api_key=None)
        async with client_for(settings) as client:
            response = await client.get("/health")

        assert response.status_code == 200


class TestReadiness:
    async def test_ready_when_everything_is_in_place(self, client):
        response = await client.get("/health/ready")

        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok"
        assert failing(body) == set()
        assert set(body["checks"]) == {"database", "medusa_database", "gateway_config"}

    async def test_databases_down_are_named(self, captured_logs):
        async with client_for(make_settings(UNREACHABLE)) as client:
            response = await client.get("/health/ready")

        assert response.status_code == 503
        body = response.json()
        assert body["error"] == "ServiceNotReady"
        assert body["detail"] == "Not ready: database, medusa_database"
        assert body["request_id"] == response.headers["x-request-id"]
        assert failing(body) == {"database", "medusa_database"}
        assert "db-pass-7d41c9" not in response.text
        assert "db-pass-7d41c9" not in captured_logs.text

    async def test_unmigrated_schema_is_named(self, databases: Databases, database_url):
        empty = await databases.acreate("unmigrated")
        settings = make_settings(empty, medusa_database_url=database_url)
        async with client_for(settings) as client:
            response = await client.get("/health/ready")

        assert response.status_code == 503
        body = response.json()
        assert failing(body) == {"database"}
        assert "schema not migrated" in body["checks"]["database"]["detail"]

    async def test_missing_medusa_tables_are_named(self, databases: Databases, database_url):
        empty = await databases.acreate("nomedusa")
        settings = make_settings(database_url, medusa_database_url=empty)
        async with client_for(settings) as client:
            response = await client.get("/health/ready")

        assert response.status_code == 503
        body = response.json()
        assert failing(body) == {"medusa_database"}
        assert body["checks"]["medusa_database"]["detail"].startswith(
            "Medusa tables missing: cart, cart_address"
        )
        assert "order" in body["checks"]["medusa_database"]["detail"]

    async def test_incomplete_gateway_configuration_is_named(self, database_url):
        settings = make_settings(database_url, netvalve_api_key=None, netvalve_mid_id_eur=None)
        async with client_for(settings) as client:
            response = await client.get("/health/ready")

        assert response.status_code == 503
        body = response.json()
        assert failing(body) == {"gateway_config"}
        detail = body["checks"]["gateway_config"]["detail"]
        assert "NETVALVE_API_KEY is not set" in detail
        assert "NETVALVE_SITE_ID" in detail

    async def test_no_secret_in_output_or_logs(self, database_url, captured_logs):
        settings = make_settings(database_url)
        async with client_for(settings) as client:
            ready = await client.get("/health/ready")
            docs = await client.get("/openapi.json")

        assert ready.status_code == 200
        for secret in (TEST_API_KEY, TEST_BASIC_AUTH_PASSWORD):
            assert secret not in ready.text
            assert secret not in docs.text
            assert secret not in captured_logs.text
        assert captured_logs.lines(), "the app logged nothing, so the check above proves nothing"


class TestCors:
    async def test_preflight_from_an_allowed_origin(self, client):
        response = await client.options(
            "/health",
            headers={
                "Origin": "https://shop.example.com",
                "Access-Control-Request-Method": "GET",
            },
        )

        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "https://shop.example.com"
        assert response.headers["x-request-id"]

    async def test_preflight_from_a_foreign_origin_is_refused(self, client):
        response = await client.options(
            "/health",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )

        assert response.status_code == 400
        assert "access-control-allow-origin" not in response.headers

    async def test_request_id_is_exposed_to_browsers(self, client):
        response = await client.get("/health", headers={"Origin": "https://shop.example.com"})

        assert "X-Request-ID" in response.headers["access-control-expose-headers"]
