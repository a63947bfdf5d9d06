"""Every error, whatever produced it, has one JSON shape carrying the request id."""

import logging
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from app.core.errors import AppError
from app.schemas.error import ErrorResponse

pytestmark = pytest.mark.asyncio

CARD_NUMBER = "4012000098765439"


class PaymentNotFound(AppError):
    """No payment has that id."""

    status_code = 404
    message = "No payment has that id."


class ProbeBody(BaseModel):
    amount: int
    currency: str


@pytest.fixture
def probe_app(app: FastAPI) -> FastAPI:
    """Routes that fail in each way a real route can; added to the real application."""

    @app.post("/probe/validate")
    async def validate(body: ProbeBody, limit: int = 10) -> dict[str, int]:
        return {"amount": body.amount, "limit": limit}

    @app.get("/probe/crash")
    async def crash() -> None:
        logging.getLogger("probe").info("about to fail")
        raise RuntimeError(f"boom with card {CARD_NUMBER}")

    @app.get("/probe/domain")
    async def domain() -> None:
        raise PaymentNotFound

    return app


def assert_error_shape(response, status: int, error: str) -> dict[str, Any]:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "detail", "request_id"}
    ErrorResponse.model_validate(body)
    assert body["error"] == error
    assert body["request_id"]
    assert body["request_id"] == response.headers["x-request-id"]
    return body


class TestErrorShape:
    async def test_404(self, client):
        response = await client.get("/no/such/route")

        body = assert_error_shape(response, 404, "NotFound")
        assert body["detail"] == "Not Found"

    async def test_405_keeps_the_allow_header(self, client):
        response = await client.delete("/health")

        assert_error_shape(response, 405, "MethodNotAllowed")
        assert "GET" in response.headers["allow"]

    async def test_422_lists_the_invalid_fields(self, probe_app, client):
        response = await client.post(
            "/probe/validate?limit=many", json={"amount": "ten", "currency": 5}
        )

        body = assert_error_shape(response, 422, "RequestValidationError")
        locations = {tuple(issue["loc"]) for issue in body["detail"]}
        assert locations == {("query", "limit"), ("body", "amount"), ("body", "currency")}

    async def test_422_never_echoes_the_input(self, probe_app, client):
        response = await client.post(
            "/probe/validate", json={"amount": CARD_NUMBER + "x", "currency": "EUR"}
        )

        assert_error_shape(response, 422, "RequestValidationError")
        assert CARD_NUMBER not in response.text

    async def test_malformed_json_is_a_400(self, probe_app, client):
        response = await client.post(
            "/probe/validate",
            content=b'{"amount": 1, "currency":',
            headers={"content-type": "application/json"},
        )

        assert_error_shape(response, 400, "MalformedJSON")

    async def test_500_has_the_shape_and_hides_the_cause(self, probe_app, client, captured_logs):
        response = await client.get("/probe/crash")

        body = assert_error_shape(response, 500, "InternalServerError")
        assert "boom" not in body["detail"]
        [failure] = [
            line for line in captured_logs.lines() if line["event"] == "http.unhandled_error"
        ]
        assert failure["request_id"] == body["request_id"]
        assert "RuntimeError" in failure["exception"]
        assert CARD_NUMBER not in captured_logs.text
        assert "401200******5439" in captured_logs.text

    async def test_domain_error_is_named_after_its_class(self, probe_app, client):
        response = await client.get("/probe/domain")

        body = assert_error_shape(response, 404, "PaymentNotFound")
        assert body["detail"] == "No payment has that id."

    async def test_errors_are_documented_in_openapi(self, client):
        schema = (await client.get("/openapi.json")).json()

        responses = schema["paths"]["/health/ready"]["get"]["responses"]
        assert responses["503"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/NotReadyResponse"
        )
        assert responses["500"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/ErrorResponse"
        )
