import pytest

from tests.fixtures.api import STOREFRONT_KEY, Api
from tests.fixtures.settings import TEST_API_KEY, TEST_BASIC_AUTH_PASSWORD

pytestmark = pytest.mark.asyncio

HPP_URLS = {
    "netvalve_hpp_success_url": "https://shop.example.com/ok",
    "netvalve_hpp_cancel_url": "https://shop.example.com/cancel",
    "netvalve_hpp_failed_url": "https://shop.example.com/failed",
}


async def start(api: Api, **params: str):
    session = await api.medusa_session()
    return await api.post(
        "/hpf/session", {"payment_session_id": session.session_id, **params}, key=STOREFRONT_KEY
    )


class TestWaterfall:
    async def test_the_api_serves_first(self, api: Api):
        response = await start(api)

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["source"] == "api"
        assert f"paymentToken={body['payment_token']}" in body["script_src"]
        assert body["reused"] is False

    async def test_get_reuses_an_unexpired_session(self, api: Api):
        medusa = await api.medusa_session()
        params = {"payment_session_id": medusa.session_id}

        first = await api.get("/hpf/session", params)
        second = await api.get("/hpf/session", params)
        posted = await api.post("/hpf/session", params, key=STOREFRONT_KEY)

        assert first.json()["reused"] is False
        assert second.json()["reused"] is True
        assert second.json()["payment_token"] == first.json()["payment_token"]
        assert posted.json()["payment_token"] != first.json()["payment_token"]

    async def test_the_back_office_serves_when_the_api_fails(self, api: Api):
        await api.sandbox.fault("/hpf/initializeSession", "http_error", status=502)

        response = await start(api)

        assert response.status_code == 200, response.text
        body = response.json()
        assert body["source"] == "backoffice"
        assert body["script_src"].endswith("/hpf/sdk.js?version=1.0.0")
        assert body["payment_token"] is None

    async def test_an_hpp_order_when_the_back_office_fails_too(self, api_factory):
        api = await api_factory(netvalve_hpp_fallback_enabled=True, **HPP_URLS)
        await api.sandbox.fault("/hpf/initializeSession", "http_error", status=503)
        await api.sandbox.fault("/backoffice/users/sign-in", "http_error", status=502)

        response = await start(api)

        assert response.status_code == 200, response.text
        assert response.json()["source"] == "hpp"
        assert response.json()["redirect_url"]

    async def test_the_static_script_last(self, api_factory):
        api = await api_factory(
            netvalve_basic_auth_username=None,
            netvalve_basic_auth_password=None,
            netvalve_hpf_fallback_script_src="https://cdn.example.com/netvalve/sdk.js",
        )
        await api.sandbox.fault("/hpf/initializeSession", "malformed")

        response = await start(api)

        assert response.json()["source"] == "static"
        assert response.json()["script_src"] == "https://cdn.example.com/netvalve/sdk.js"

    async def test_overrides_win(self, api_factory):
        api = await api_factory(netvalve_hpf_script_src="https://cdn.example.com/pinned.js")

        response = await start(api)

        assert response.json()["source"] == "override_script"

    async def test_nothing_works_gives_a_502_diagnostic_without_secrets(self, api: Api):
        await api.sandbox.fault("/hpf/initializeSession", "http_error", status=502)
        await api.sandbox.fault("/backoffice/hpf/script", "http_error", status=500)

        response = await start(api)

        assert response.status_code == 502
        body = response.json()
        assert body["error"] == "HpfUnavailable"
        assert [step["step"] for step in body["steps"]] == [
            "override",
            "api",
            "backoffice",
            "hpp",
            "static",
        ]
        assert "http_502" in body["steps"][1]["outcome"]
        for secret in (TEST_API_KEY, TEST_BASIC_AUTH_PASSWORD):
            assert secret not in response.text

    async def test_unknown_session_is_404(self, api: Api):
        response = await api.post(
            "/hpf/session", {"payment_session_id": "payses_UNKNOWN"}, key=STOREFRONT_KEY
        )

        assert response.status_code == 404

    async def test_one_reference_only(self, api: Api):
        response = await api.post(
            "/hpf/session",
            {"payment_session_id": "payses_A1", "cart_id": "cart_B2"},
            key=STOREFRONT_KEY,
        )

        assert response.status_code == 422
