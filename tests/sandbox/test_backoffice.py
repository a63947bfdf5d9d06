"""The sandbox's back-office endpoints (undocumented; the HPF waterfall's step 2), over a socket.

They take no netvalve-client-id / netvalve-api-key headers, so these tests call them with a
bare client: only the sign-in body and the Bearer token count.
"""

from collections.abc import AsyncIterator
from datetime import datetime

import httpx
import pytest
import pytest_asyncio

from app.sandbox.server import SandboxServer
from tests.fixtures.gateway import SandboxBackend, sandbox_settings
from tests.fixtures.settings import TEST_BASIC_AUTH_PASSWORD

pytestmark = pytest.mark.asyncio

SIGN_IN = "/backoffice/users/sign-in"
SCRIPTS = "/backoffice/hpf/script"


def credentials(password: str = TEST_BASIC_AUTH_PASSWORD) -> dict[str, str]:
    return {"userName": "merchant", "password": password, "checkForBot": "net"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def assert_authentication_failure(response: httpx.Response) -> None:
    assert response.status_code == 401
    body = response.json()
    assert body["responseCode"] == "GTW_9001"
    assert body["responseMessage"] == "Authentication failure."
    assert body["responseCodeType"] == "HARD DECLINE"
    assert {"traceID", "responseTimestamp"} <= body.keys()


@pytest_asyncio.fixture
async def portal(sandbox: SandboxBackend) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sandbox.url, timeout=5) as http:
        yield http


async def sign_in(portal: httpx.AsyncClient) -> str:
    response = await portal.post(SIGN_IN, json=credentials())
    assert response.status_code == 200, response.text
    return str(response.json()["accessToken"])


class TestSignIn:
    async def test_the_basic_auth_pair_signs_in(self, portal):
        response = await portal.post(SIGN_IN, json=credentials())

        assert response.status_code == 200
        body = response.json()
        assert body["expiresIn"] == 3600
        assert isinstance(body["accessToken"], str)
        assert len(body["accessToken"]) >= 32

    async def test_every_sign_in_issues_a_new_token(self, portal):
        first = await sign_in(portal)

        second = await sign_in(portal)

        assert first != second

    async def test_a_wrong_password_is_refused(self, portal):
        response = await portal.post(SIGN_IN, json=credentials(password="wrong"))

        assert_authentication_failure(response)

    async def test_a_wrong_user_name_is_refused(self, portal):
        body = {**credentials(), "userName": "someone-else"}

        response = await portal.post(SIGN_IN, json=body)

        assert_authentication_failure(response)

    async def test_missing_or_non_string_credentials_are_refused(self, portal):
        response = await portal.post(SIGN_IN, json={"userName": "merchant", "password": 7})

        assert_authentication_failure(response)

    async def test_a_body_that_is_not_a_json_object_is_invalid(self, portal):
        response = await portal.post(SIGN_IN, json=["merchant", TEST_BASIC_AUTH_PASSWORD])

        assert response.status_code == 400
        assert response.json()[0]["responseCode"] == "GTW_2063"

    async def test_without_basic_auth_configured_nobody_signs_in(self):
        server = SandboxServer(
            sandbox_settings(netvalve_basic_auth_username=None, netvalve_basic_auth_password=None)
        )
        url = server.start()
        try:
            async with httpx.AsyncClient(base_url=url, timeout=5) as http:
                response = await http.post(SIGN_IN, json=credentials())

            assert_authentication_failure(response)
        finally:
            server.stop()


class TestScripts:
    async def test_a_signed_in_caller_gets_two_scripts_one_default(self, sandbox, portal):
        token = await sign_in(portal)

        response = await portal.get(SCRIPTS, headers=bearer(token))

        assert response.status_code == 200
        scripts = response.json()
        assert len(scripts) == 2
        assert [script["isDefault"] for script in scripts].count(True) == 1
        for script in scripts:
            assert isinstance(script["id"], int)
            assert script["status"] == "ACTIVE"
            assert script["deleted"] is False
            assert script["netvalveScriptSrc"] == f"{sandbox.url}/hpf/sdk.js?version=1.0.0"
            assert script["clientVersion"] == "1.0.0"
            assert isinstance(script["integrity"], str)
            assert script["integrity"]
            datetime.fromisoformat(script["createdDate"])

    async def test_the_default_script_is_not_the_oldest(self, portal):
        token = await sign_in(portal)

        scripts = (await portal.get(SCRIPTS, headers=bearer(token))).json()

        default = next(script for script in scripts if script["isDefault"])
        other = next(script for script in scripts if not script["isDefault"])
        assert datetime.fromisoformat(other["createdDate"]) < datetime.fromisoformat(
            default["createdDate"]
        )
        assert default["id"] != other["id"]
        assert default["integrity"] != other["integrity"]

    async def test_the_default_script_src_serves_the_sdk(self, portal):
        token = await sign_in(portal)
        scripts = (await portal.get(SCRIPTS, headers=bearer(token))).json()
        default = next(script for script in scripts if script["isDefault"])

        sdk = await portal.get(default["netvalveScriptSrc"])

        assert sdk.status_code == 200
        assert "javascript" in sdk.headers["content-type"]

    async def test_without_a_token_the_list_is_refused(self, portal):
        response = await portal.get(SCRIPTS)

        assert_authentication_failure(response)

    async def test_an_unknown_token_is_refused(self, portal):
        response = await portal.get(SCRIPTS, headers=bearer("not-a-token-the-sandbox-issued"))

        assert_authentication_failure(response)

    async def test_the_merchant_credential_headers_are_not_a_token(self, sandbox):
        response = await sandbox.admin.get(SCRIPTS)

        assert_authentication_failure(response)

    async def test_an_expired_token_is_refused(self, portal, monkeypatch):
        monkeypatch.setattr("app.sandbox.backoffice.TOKEN_TTL_SECONDS", 0)
        token = await sign_in(portal)

        response = await portal.get(SCRIPTS, headers=bearer(token))

        assert_authentication_failure(response)

    async def test_reset_forgets_issued_tokens(self):
        # A server of its own: resetting the session sandbox would touch other tests' state.
        server = SandboxServer(sandbox_settings())
        backend = SandboxBackend(server.start())
        try:
            async with httpx.AsyncClient(base_url=backend.url, timeout=5) as http:
                token = await sign_in(http)

                await backend.admin.post("/_sandbox/reset")
                response = await http.get(SCRIPTS, headers=bearer(token))

            assert_authentication_failure(response)
        finally:
            await backend.close()
            server.stop()


class TestFaults:
    async def test_an_http_error_fault_hits_the_script_list(self, sandbox, portal):
        token = await sign_in(portal)
        await sandbox.fault(SCRIPTS, "http_error", status=502)

        failed = await portal.get(SCRIPTS, headers=bearer(token))
        recovered = await portal.get(SCRIPTS, headers=bearer(token))

        assert failed.status_code == 502
        assert "Bad Gateway" in failed.text
        assert recovered.status_code == 200
