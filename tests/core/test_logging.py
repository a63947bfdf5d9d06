import base64
import logging

import pytest
import structlog
from fastapi import FastAPI
from pydantic import SecretStr

from app.core.config import secret_values
from app.core.logging import (
    REDACTED,
    configure_logging,
    mask_card_numbers,
    redact,
    register_secrets,
    registered_secrets,
)
from app.main import create_app
from tests.fixtures.gateway import UNUSED_DB
from tests.fixtures.settings import TEST_API_KEY, TEST_BASIC_AUTH_PASSWORD, make_settings


class TestRedaction:
    def test_sensitive_keys_are_blanked_at_any_depth(self):
        value = {
            "headers": {"netvalve-api-key": "k1", "Authorization": "Basic abc"},
            "items": [{"cardSecurityCode": "999", "password": "p"}],
            "transactionID": 18747,
        }

        assert redact(value) == {
            "headers": {"netvalve-api-key": REDACTED, "Authorization": REDACTED},
            "items": [{"cardSecurityCode": REDACTED, "password": REDACTED}],
            "transactionID": 18747,
        }

    @pytest.mark.parametrize(
        ("text", "masked"),
        [
            ("card 4012000098765439 declined", "card 401200******5439 declined"),
            ("pan=4012 0000 9876 5439", "pan=401200******5439"),
            ("amex 371449635392376", "amex 371449*****2376"),
        ],
    )
    def test_card_numbers_are_masked(self, text, masked):
        assert mask_card_numbers(text) == masked

    def test_other_long_numbers_are_kept(self):
        # Fails the Luhn check, so it is an id, not a card number.
        assert mask_card_numbers("trace 4012000098765438") == "trace 4012000098765438"

    @pytest.mark.parametrize(
        "identifier",
        [
            # Digit groups that read as a grouped, Luhn-valid number: 6029724721 + 8...
            "f98e7260-2972-4721-8ad6-91c8487108fc",
            "f98e7260297247218ad691c8487108fc",
        ],
    )
    def test_ids_shaped_like_uuids_are_kept_whole(self, identifier):
        assert mask_card_numbers(f"payment {identifier} settled") == f"payment {identifier} settled"

    def test_a_card_number_next_to_an_id_is_still_masked(self):
        text = "f98e7260-2972-4721-8ad6-91c8487108fc 4012000098765439"
        assert mask_card_numbers(text).endswith(" 401200******5439")

    def test_a_card_number_running_into_an_id_is_still_masked(self):
        # In other scripts' digits, right before an id that opens with eight digits: the whole
        # text holds one 24-digit run, no card number; the text before the id holds one.
        arabic = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")
        card, identifier = (
            "4012000098765439".translate(arabic),
            "12345678-1234-4234-8234-123456789abc",
        )
        masked = mask_card_numbers(f"{card}{identifier}")
        assert masked == "401200******5439".translate(arabic) + identifier


@pytest.fixture
def logging_app(app: FastAPI) -> FastAPI:
    @app.get("/probe/log")
    async def log_something() -> dict[str, str]:
        structlog.get_logger("probe").info("probe.structlog", cardNumber="4012000098765439")
        logging.getLogger("probe.stdlib").warning("stdlib line")
        return {"ok": "yes"}

    return app


class TestRequestId:
    pytestmark = pytest.mark.asyncio

    async def test_every_line_of_a_request_carries_its_id(self, logging_app, client, captured_logs):
        response = await client.get("/probe/log")

        request_id = response.headers["x-request-id"]
        # The test's own HTTP client logs too, after the request; that line is not the service's.
        lines = [line for line in captured_logs.lines() if line["logger"] != "httpx"]
        assert {line["event"] for line in lines} >= {
            "probe.structlog",
            "stdlib line",
            "http.request",
        }
        assert all(line["request_id"] == request_id for line in lines)
        assert all(line["timestamp"] and line["level"] for line in lines)

    async def test_structured_fields_are_redacted(self, logging_app, client, captured_logs):
        await client.get("/probe/log")

        [line] = [line for line in captured_logs.lines() if line["event"] == "probe.structlog"]
        assert line["cardNumber"] == REDACTED

    async def test_a_well_formed_caller_id_is_kept(self, client):
        response = await client.get("/health", headers={"X-Request-ID": "medusa-req-42"})

        assert response.headers["x-request-id"] == "medusa-req-42"

    @pytest.mark.parametrize("bad", ["a" * 200, "two words", 'id"quoted', "semi;colon"])
    async def test_a_malformed_caller_id_is_replaced(self, client, bad):
        response = await client.get("/health", headers={"X-Request-ID": bad})

        assert response.headers["x-request-id"] != bad
        assert len(response.headers["x-request-id"]) == 32

    async def test_each_request_gets_its_own_id(self, client):
        first = await client.get("/health")
        second = await client.get("/health")

        assert first.headers["x-request-id"] != second.headers["x-request-id"]


class TestRedactionByValue:
    """Secrets are redacted wherever they appear, not only under a sensitive key: an exception
    message or a third-party library's line carries no key to go by."""

    def test_an_exception_holding_the_api_key_is_logged_with_the_key_redacted(self, captured_logs):
        create_app(make_settings(UNUSED_DB))  # registers the settings' secrets, as at start-up
        try:
            raise RuntimeError(f"NetValve refused key {TEST_API_KEY} for test-client")
        except RuntimeError:
            structlog.get_logger("probe").exception("probe.failed", detail=f"key={TEST_API_KEY}")
            logging.getLogger("thirdparty.lib").exception("call with %s failed", TEST_API_KEY)

        assert TEST_API_KEY not in captured_logs.text
        structlog_line, stdlib_line = captured_logs.lines()[-2:]
        assert f"refused key {REDACTED} for test-client" in structlog_line["exception"]
        assert structlog_line["detail"] == f"key={REDACTED}"
        assert stdlib_line["event"] == f"call with {REDACTED} failed"
        assert f"refused key {REDACTED}" in stdlib_line["exception"]

    def test_every_secret_of_the_settings_is_redacted_even_in_a_repr(self, captured_logs):
        settings = make_settings(
            UNUSED_DB,
            storefront_api_keys=[SecretStr("sf_value_test_1f0e2d3c4b5a69788796")],
            netvalve_webhook_auth_values=[SecretStr("whk_value_test_00000000042")],
        )
        configure_logging("INFO", secrets=secret_values(settings))
        basic = base64.b64encode(f"merchant:{TEST_BASIC_AUTH_PASSWORD}".encode()).decode()
        secrets = [
            "sf_value_test_1f0e2d3c4b5a69788796",
            "whk_value_test_00000000042",
            TEST_BASIC_AUTH_PASSWORD,
            basic,
        ]

        logging.getLogger("probe").warning("sent %r", {"h": [f"Basic {basic}"], "b": secrets})

        assert not [secret for secret in secrets if secret in captured_logs.text]
        assert set(secret_values(settings)) >= set(secrets)

    @pytest.mark.parametrize(
        "text", ["4012-0000-9876-5439", "4012.0000.9876.5439", "4012 0000 9876 5439"]
    )
    def test_grouped_card_numbers_are_masked(self, text):
        assert mask_card_numbers(f"card {text} declined") == "card 401200******5439 declined"

    def test_short_values_are_not_taken_for_secrets(self):
        register_secrets(["abc"])

        assert "abc" not in registered_secrets()

    def test_a_weak_database_password_does_not_blank_lines_naming_the_service(self):
        settings = make_settings("postgresql+asyncpg://netvalve:netvalve@db:5432/netvalve")

        assert "netvalve" not in secret_values(settings)
