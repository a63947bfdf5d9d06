import logging

import pytest
import structlog
from fastapi import FastAPI

from app.core.logging import REDACTED, mask_card_numbers, redact


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
