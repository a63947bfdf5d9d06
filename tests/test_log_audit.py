"""The suite's audit of what leaves its processes (tests/fixtures/log_audit.py): each check bites.

Every test plants a leak into an audit of its own (`audit_into`), so that the run's audit never
sees it, and shows that the audit reports it.
"""

import base64
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator

import asyncpg
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession

from app.dev.embedded_pg import asyncpg_dsn
from app.main import create_app
from app.models.webhook_event import WebhookEvent, WebhookEventStatus
from tests.conftest import asgi_client
from tests.fixtures.gateway import APPROVE_CARD, UNUSED_DB, SandboxBackend
from tests.fixtures.log_audit import (
    LogAudit,
    audit_database,
    audit_database_at,
    audit_into,
    audited_output,
    trie_pattern,
)
from tests.fixtures.settings import TEST_API_KEY, TEST_BASIC_AUTH_PASSWORD, make_settings
from tests.fixtures.webhooks import WEBHOOK_SECRET


@pytest.fixture
def audit() -> Iterator[LogAudit]:
    private = LogAudit()
    with audit_into(private):
        yield private
    private.close()


def run_printing(text: str) -> None:
    """A started process that prints `text`, its output captured as the suite captures it."""
    with audited_output("probe").open("wb") as output:
        subprocess.run(
            [sys.executable, "-c", "import sys; print(sys.argv[1])", text],
            stdout=output,
            stderr=subprocess.STDOUT,
            check=True,
        )


def basic_header() -> str:
    return base64.b64encode(f"merchant:{TEST_BASIC_AUTH_PASSWORD}".encode()).decode()


class TestStartedProcesses:
    def test_clean_output_passes(self, audit):
        run_printing('{"event": "payment.sale", "card": "401200******5439", "key": "[REDACTED]"}')

        assert audit.leaks() == []

    @pytest.mark.parametrize(
        "secret",
        [
            pytest.param(TEST_API_KEY, id="netvalve-api-key"),
            pytest.param(TEST_BASIC_AUTH_PASSWORD, id="basic-auth-password"),
            pytest.param(basic_header(), id="basic-auth-header"),
            pytest.param(WEBHOOK_SECRET, id="webhook-value-constant"),
        ],
    )
    def test_a_secret_in_a_started_process_output_fails_the_audit(self, audit, secret):
        run_printing(f'{{"event": "netvalve.request", "detail": "sent {secret}"}}')

        [leak] = audit.leaks()
        assert leak.startswith("0000-probe.log line 1: ")
        assert secret not in leak

    def test_every_secret_of_a_settings_object_built_in_the_suite_is_searched_for(self, audit):
        planted = f"sf_planted_{uuid.uuid4().hex}"
        make_settings(
            "postgresql+asyncpg://app:db-pass-planted-0042@127.0.0.1:1/netvalve",
            storefront_api_keys=[SecretStr(planted)],
        )

        run_printing(f"starting with {planted} and postgresql://app:db-pass-planted-0042@db")

        assert len(audit.leaks()) == 2

    def test_a_published_development_default_is_not_a_secret(self, audit):
        # docker-compose.yml's database password is `netvalve`: taken for a secret, it made
        # every line naming the service a leak (and the end-of-run scan take minutes).
        make_settings("postgresql+asyncpg://netvalve:netvalve@db:5432/netvalve")

        run_printing("netvalve_gateway_http_requests_total 3")

        assert audit.leaks() == []

    @pytest.mark.asyncio
    async def test_a_back_office_token_the_sandbox_issued_is_searched_for(
        self, audit, sandbox: SandboxBackend
    ):
        signed_in = await sandbox.admin.post(
            "/backoffice/users/sign-in",
            json={"userName": "merchant", "password": TEST_BASIC_AUTH_PASSWORD},
        )
        token = signed_in.json()["accessToken"]

        run_printing(f"GET /backoffice/hpf/script Authorization: Bearer {token}")

        assert len(audit.leaks()) == 1

    @pytest.mark.parametrize(
        "card",
        [
            APPROVE_CARD,
            "4012 0000 9876 5439",
            "4012-0000-9876-5439",
            "4012.0000.9876.5439",
            "4012 000098 765439",
        ],
    )
    def test_a_card_number_in_any_common_form_fails_the_audit(self, audit, card):
        run_printing(f"declined card {card} at 2026-12-02 12:00:00")

        [leak] = audit.leaks()
        assert "401200..." in leak


class TestServedAndStoredText:
    pytestmark = pytest.mark.asyncio

    async def test_a_secret_the_service_serves_fails_the_audit(self, audit):
        app: FastAPI = create_app(make_settings(UNUSED_DB))

        @app.get("/probe/error")
        async def error() -> dict[str, str]:
            return {"last_error": f"NetValve refused {TEST_API_KEY}"}

        async with asgi_client(app) as client:
            served = await client.get("/probe/error")

        assert served.status_code == 200
        [leak] = audit.leaks()
        assert leak.startswith("response GET http://test/probe/error: nv_tes...")

    async def test_stored_error_text_and_bodies_are_audited(self, audit, db_session: AsyncSession):
        async with db_session.begin_nested() as planted:
            db_session.add(
                WebhookEvent(
                    dedup_key=uuid.uuid4().hex,
                    raw_body=b'{"cardNumber": "4012-0000-9876-5439"}',
                    headers={},
                    status=WebhookEventStatus.REJECTED,
                    last_error=f"gateway said: bad key {TEST_API_KEY}",
                )
            )
            await db_session.flush()
            connection = await (await db_session.connection()).get_raw_connection()
            await audit_database(connection.driver_connection, "test")
            await planted.rollback()  # the run's own audit must not see them

        leaks = audit.leaks()
        assert len(leaks) == 2
        assert any(leak.startswith("test webhook_events.last_error: ") for leak in leaks)
        assert any(leak.startswith("test webhook_events.raw_body: ") for leak in leaks)

    async def test_a_database_is_audited_before_it_is_dropped(self, audit, databases):
        url = await databases.acreate("audit")
        connection = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await connection.execute("CREATE TABLE notes (body text)")
            await connection.execute("INSERT INTO notes VALUES ($1)", f"token {TEST_API_KEY}")
            await audit_database_at(asyncpg_dsn(url), "scratch")
            await connection.execute("DROP TABLE notes")  # the run's own audit must not see it
        finally:
            await connection.close()

        [leak] = audit.leaks()
        assert leak.startswith("database scratch notes.body: ")


def test_the_trie_pattern_finds_every_word_and_the_longest_first():
    words = ["sk_live_abc123", "sk_live_abc123456", "whk_value_1", "a.b*c+d"]
    pattern = re.compile(trie_pattern(words))

    found = pattern.findall("x sk_live_abc123456 y sk_live_abc123 z whk_value_1 a.b*c+d sk_live_ab")

    assert found == ["sk_live_abc123456", "sk_live_abc123", "whk_value_1", "a.b*c+d"]
    assert re.compile(trie_pattern([])).search("anything") is None
