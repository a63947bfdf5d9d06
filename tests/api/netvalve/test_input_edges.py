"""Input that must be refused, and answers that must be right (issue 12, section 5)."""

import re
import uuid

import pytest

from app.schemas.base import MONEY_IN_PATTERN, MONEY_OUT_PATTERN
from tests.api.netvalve.conftest import Api

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
