import base64
import subprocess
import sys
from typing import Any

import pytest
from pydantic import SecretStr

from app.core.config import ConfigurationError, NetvalveEnvironment, load_settings, secret_values
from tests.conftest import PROJECT_ROOT
from tests.fixtures.environment import bare_env
from tests.fixtures.log_audit import audit_text
from tests.fixtures.settings import TEST_API_KEY

DB = "postgresql+asyncpg://app@db.internal:5432/netvalve"

LIVE: dict[str, Any] = {
    "_env_file": None,
    "database_url": DB,
    "environment": "production",
    "netvalve_environment": "production",
    "netvalve_client_id": "client-8f2e",
    "netvalve_api_key": "nv_live_3b9d2f7a1c5e4b8d",
    "netvalve_site_id": "0b5e3a54-52a4-4e0a-9d0c-3f3b7c0d9e11",
    "admin_api_keys": "adm_live_5d1f8a3c9e7b2d4f6a8c0e1b",
    "netvalve_webhook_auth_header": "X-Netvalve-Auth",
    "netvalve_webhook_auth_values": "whk_live_6f2a9d4c1e8b3f70",
}


def live(**changes: object) -> dict[str, Any]:
    values = dict(LIVE)
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return values


class TestProductionRequirements:
    def test_live_configuration_is_accepted(self):
        settings = load_settings(**live())

        assert settings.is_production()
        assert settings.netvalve_url("api") == "https://api.netvalve.com"

    @pytest.mark.parametrize(
        ("missing", "variable"),
        [("netvalve_api_key", "NETVALVE_API_KEY"), ("netvalve_client_id", "NETVALVE_CLIENT_ID")],
    )
    def test_missing_credential_is_named(self, missing, variable):
        with pytest.raises(ConfigurationError, match=f"{variable} is required"):
            load_settings(**live(**{missing: None}))

    def test_netvalve_production_needs_a_key_even_outside_production(self):
        with pytest.raises(ConfigurationError, match="NETVALVE_API_KEY is required"):
            load_settings(**live(environment="staging", netvalve_api_key=None))

    @pytest.mark.parametrize("value", ["change-me", "CHANGEME", "your-api-key", "<api key>", "xxx"])
    def test_placeholder_key_is_refused(self, value):
        with pytest.raises(ConfigurationError, match="NETVALVE_API_KEY holds a placeholder"):
            load_settings(**live(netvalve_api_key=value))

    def test_placeholder_basic_auth_password_is_refused(self):
        with pytest.raises(ConfigurationError, match="NETVALVE_BASIC_AUTH_PASSWORD"):
            load_settings(**live(netvalve_basic_auth_password="changeme"))

    def test_routing_id_is_required(self):
        with pytest.raises(ConfigurationError, match="NETVALVE_SITE_ID or one of"):
            load_settings(**live(netvalve_site_id=None))

    def test_production_service_cannot_use_the_netvalve_sandbox(self):
        with pytest.raises(ConfigurationError, match="NETVALVE_ENVIRONMENT must be production"):
            load_settings(**live(netvalve_environment="sandbox"))

    @pytest.mark.parametrize(
        "missing", ["netvalve_webhook_auth_header", "netvalve_webhook_auth_values"]
    )
    def test_webhook_authentication_is_required_outside_development(self, missing):
        with pytest.raises(ConfigurationError, match="NETVALVE_WEBHOOK_AUTH_HEADER and"):
            load_settings(**live(environment="staging", **{missing: None}))

    def test_webhook_allow_list_takes_cidrs(self):
        settings = load_settings(
            **live(netvalve_webhook_allowed_ips="203.0.113.0/24, 2001:db8::/32")
        )

        assert [str(network) for network in settings.netvalve_webhook_allowed_ips] == [
            "203.0.113.0/24",
            "2001:db8::/32",
        ]

    def test_a_bad_cidr_is_named(self):
        with pytest.raises(ConfigurationError, match="NETVALVE_WEBHOOK_ALLOWED_IPS"):
            load_settings(**live(netvalve_webhook_allowed_ips="not-an-ip"))

    def test_production_needs_an_admin_key(self):
        with pytest.raises(ConfigurationError, match="ADMIN_API_KEYS is required"):
            load_settings(**live(admin_api_keys=None))

    @pytest.mark.parametrize("keys", ["short", "change-me-change-me-change-me"])
    def test_weak_api_keys_are_refused(self, keys):
        with pytest.raises(ConfigurationError, match="STOREFRONT_API_KEYS holds a key"):
            load_settings(**live(environment="staging", storefront_api_keys=keys))

    def test_api_keys_from_a_comma_separated_variable(self, monkeypatch):
        monkeypatch.setenv(
            "STOREFRONT_API_KEYS", "sf_a_000000000000000000000001, sf_b_000000000000000000000002"
        )

        settings = load_settings(_env_file=None, database_url=DB, netvalve_environment="sandbox")

        assert [key.get_secret_value() for key in settings.storefront_api_keys] == [
            "sf_a_000000000000000000000001",
            "sf_b_000000000000000000000002",
        ]
        assert "sf_a_" not in repr(settings)

    def test_hpp_fallback_needs_its_urls(self):
        with pytest.raises(ConfigurationError, match="NETVALVE_HPP_SUCCESS_URL"):
            load_settings(**live(netvalve_hpp_fallback_enabled=True))

    def test_wildcard_cors_is_refused_in_production(self):
        with pytest.raises(ConfigurationError, match="CORS_ORIGINS"):
            load_settings(**live(cors_origins="*"))

    def test_missing_database_url_is_named(self, monkeypatch):
        monkeypatch.delenv("DATABASE_URL", raising=False)

        with pytest.raises(ConfigurationError, match="DATABASE_URL is not set"):
            load_settings(**live(database_url=None))

    def test_database_url_must_use_asyncpg(self):
        with pytest.raises(ConfigurationError, match="DATABASE_URL must start with"):
            load_settings(**live(database_url="postgresql://app@db/netvalve"))

    def test_invalid_mid_is_named_without_echoing_secrets(self):
        with pytest.raises(ConfigurationError) as raised:
            load_settings(**live(netvalve_mid_id_eur="not-a-mid"))

        message = str(raised.value)
        assert "NETVALVE_MID_ID_EUR: must be a numeric MID or a UUID" in message
        assert LIVE["netvalve_api_key"] not in message
        assert "not-a-mid" not in message


class TestSecrets:
    def test_secrets_are_secretstr_and_hidden_in_repr(self):
        settings = load_settings(**live(netvalve_basic_auth_password="bp_live_91c2"))

        assert isinstance(settings.netvalve_api_key, SecretStr)
        assert isinstance(settings.netvalve_basic_auth_password, SecretStr)
        for text in (repr(settings), str(settings), settings.model_dump_json()):
            assert "nv_live_3b9d2f7a1c5e4b8d" not in text
            assert "bp_live_91c2" not in text


MEDUSA_HOOK = "http://medusa:9000/hooks/payment/netvalve_netvalve"
MEDUSA_KEY_B64 = base64.b64encode(bytes(range(7, 39))).decode()  # 32 bytes
MEDUSA_SECRET = f"whsec_{MEDUSA_KEY_B64}"


class TestMedusaNotificationSettings:
    def test_off_by_default(self):
        settings = load_settings(**live())

        assert settings.medusa_webhook_url is None
        assert settings.medusa_webhook_secret is None

    def test_a_url_with_a_secret_is_accepted_and_the_secret_is_redacted_in_both_forms(self):
        settings = load_settings(
            **live(medusa_webhook_url=MEDUSA_HOOK, medusa_webhook_secret=MEDUSA_SECRET)
        )

        assert str(settings.medusa_webhook_url) == MEDUSA_HOOK
        assert MEDUSA_SECRET not in repr(settings)
        assert {MEDUSA_SECRET, MEDUSA_KEY_B64} <= set(secret_values(settings))

    def test_a_url_without_a_secret_is_refused(self):
        with pytest.raises(ConfigurationError, match="MEDUSA_WEBHOOK_SECRET is required when"):
            load_settings(**live(medusa_webhook_url=MEDUSA_HOOK))

    def test_a_url_that_is_not_http_is_named(self):
        with pytest.raises(ConfigurationError, match="MEDUSA_WEBHOOK_URL"):
            load_settings(
                **live(medusa_webhook_url="ftp://medusa/hook", medusa_webhook_secret=MEDUSA_SECRET)
            )

    @pytest.mark.parametrize(
        "secret",
        [
            "change-me",
            MEDUSA_KEY_B64,  # no prefix
            "whsec_",
            "whsec_not*base64*at*all*but*long*enough*000",
            "whsec_" + base64.b64encode(b"sixteen byte key").decode(),  # too short a key
        ],
    )
    def test_a_secret_not_in_the_standard_webhooks_format_is_refused_unechoed(self, secret):
        with pytest.raises(ConfigurationError) as refused:
            load_settings(**live(medusa_webhook_url=MEDUSA_HOOK, medusa_webhook_secret=secret))

        message = str(refused.value)
        assert message.startswith("invalid configuration: MEDUSA_WEBHOOK_SECRET: must be whsec_")
        assert "\n" not in message
        assert secret == "whsec_" or secret.removeprefix("whsec_") not in message


class TestDerivedValues:
    def test_medusa_url_defaults_to_database_url_as_asyncpg_dsn(self):
        settings = load_settings(**live())

        assert settings.medusa_dsn == "postgresql://app@db.internal:5432/netvalve"

    def test_medusa_url_can_point_elsewhere(self):
        settings = load_settings(**live(medusa_database_url="postgres://ro@medusa/medusa"))

        assert settings.medusa_dsn == "postgresql://ro@medusa/medusa"

    def test_hosts_follow_the_netvalve_environment(self):
        settings = load_settings(**live(environment="staging", netvalve_environment="sandbox"))

        assert settings.netvalve_environment is NetvalveEnvironment.SANDBOX
        assert settings.netvalve_url("api") == "https://payment-api.uat.sandbox-netvalve.com"
        assert settings.netvalve_url("hpp") == "https://hpp-api.uat.sandbox-netvalve.com"
        assert settings.netvalve_url("hpf") == settings.netvalve_url("api")

    def test_overrides_take_precedence(self):
        settings = load_settings(
            **live(
                netvalve_base_url="http://127.0.0.1:9100/",
                netvalve_hpp_url="http://127.0.0.1:9101",
                netvalve_hpf_url="http://127.0.0.1:9102",
                netvalve_backoffice_url="http://127.0.0.1:9103",
            )
        )

        assert settings.netvalve_url("api") == "http://127.0.0.1:9100"
        assert settings.netvalve_url("hpp") == "http://127.0.0.1:9101"
        assert settings.netvalve_url("hpf") == "http://127.0.0.1:9102"
        assert settings.netvalve_url("backoffice") == "http://127.0.0.1:9103"

    def test_cors_origins_from_a_comma_separated_variable(self, monkeypatch):
        monkeypatch.setenv("CORS_ORIGINS", "https://shop.example.com, https://admin.example.com")

        settings = load_settings(_env_file=None, database_url=DB, netvalve_environment="sandbox")

        assert settings.cors_origins == ["https://shop.example.com", "https://admin.example.com"]

    def test_mids_accept_numbers_and_uuids(self):
        settings = load_settings(
            **live(
                netvalve_mid_id_usd="42", netvalve_mid_id_php="0B5E3A54-52A4-4E0A-9D0C-3F3B7C0D9E11"
            )
        )

        assert settings.configured_mids() == {
            "USD": "42",
            "PHP": "0b5e3a54-52a4-4e0a-9d0c-3f3b7c0d9e11",
        }


class TestStartup:
    def test_production_without_api_key_fails_at_once_with_a_clear_message(self):
        env = bare_env(
            NETVALVE_ENVIRONMENT="production",
            NETVALVE_CLIENT_ID="client-8f2e",
            NETVALVE_SITE_ID=LIVE["netvalve_site_id"],
            DATABASE_URL=DB,
        )

        started = subprocess.run(
            [sys.executable, "-m", "uvicorn", "--factory", "app.main:create_app", "--port", "0"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        audit_text("service start-up", started.stdout + started.stderr)

        assert started.returncode != 0
        assert "NETVALVE_API_KEY is required when NETVALVE_ENVIRONMENT=production" in (
            started.stderr
        )
        assert "Traceback" not in started.stderr
        assert "Uvicorn running" not in started.stdout + started.stderr

    def test_startup_error_never_prints_a_secret(self):
        env = bare_env(
            NETVALVE_ENVIRONMENT="production",
            NETVALVE_CLIENT_ID="client-8f2e",
            NETVALVE_API_KEY=TEST_API_KEY,
            NETVALVE_MID_ID_EUR="bogus",
            DATABASE_URL=DB,
        )

        started = subprocess.run(
            [sys.executable, "-c", "from app.main import create_app; create_app()"],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        audit_text("service start-up", started.stdout + started.stderr)

        assert started.returncode == 1
        assert "NETVALVE_MID_ID_EUR" in started.stderr
        assert TEST_API_KEY not in started.stdout + started.stderr
