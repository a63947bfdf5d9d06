"""Service settings, read from the environment and from `.env` when present.

Every field maps to the upper-case environment variable of the same name. Invalid combinations
fail at start-up with a message that names the variable, so a misconfigured deployment never
serves traffic.
"""

import base64
import re
import uuid
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Literal, Self

from pydantic import (
    AnyHttpUrl,
    Field,
    IPvAnyNetwork,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SETTINGS_CONFIG = SettingsConfigDict(
    env_file=".env",
    env_file_encoding="utf-8",
    env_ignore_empty=True,
    extra="ignore",
    case_sensitive=False,
)

# Values that people paste from docs or `.env.example`; accepting one would send live traffic
# with a credential that cannot work, or one that everybody knows.
_PLACEHOLDER = re.compile(
    r"^(|change[-_ ]?me.*|changeit|placeholder.*|your[-_].*|<.*>|x+|test|secret|password|"
    r"example.*|dummy.*|todo|none|null)$",
    re.IGNORECASE,
)

SUPPORTED_CURRENCIES = ("EUR", "USD", "PHP")
MIN_API_KEY_LENGTH = 24
# Standard Webhooks secrets: `whsec_` and the base64 of the key (24 bytes or more, as the
# specification asks). The provider in Medusa holds the same value as its `webhookSecret`.
WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
MIN_WEBHOOK_SECRET_BYTES = 24


class AppEnvironment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    STAGING = "staging"
    PRODUCTION = "production"


class NetvalveEnvironment(StrEnum):
    SANDBOX = "sandbox"
    PRODUCTION = "production"


# Hosts from NETVALVE_API.md section 2. The back-office host is only seen in third-party code.
NETVALVE_HOSTS: dict[NetvalveEnvironment, dict[str, str]] = {
    NetvalveEnvironment.SANDBOX: {
        "api": "https://payment-api.uat.sandbox-netvalve.com",
        "hpp": "https://hpp-api.uat.sandbox-netvalve.com",
        "backoffice": "https://backoffice-api.uat.sandbox-netvalve.com",
    },
    NetvalveEnvironment.PRODUCTION: {
        "api": "https://api.netvalve.com",
        "hpp": "https://hpp-api.netvalve.com",
        "backoffice": "https://backoffice-api.netvalve.com",
    },
}


def is_placeholder(value: str) -> bool:
    return bool(_PLACEHOLDER.match(value.strip()))


def _to_asyncpg_dsn(url: str) -> str:
    """SQLAlchemy URL (`postgresql+asyncpg://`) to the plain DSN that asyncpg itself takes."""
    return re.sub(r"^postgres(?:ql)?(\+asyncpg)?://", "postgresql://", url)


class DatabaseSettings(BaseSettings):
    """The part of the settings that Alembic needs; it must not require gateway credentials."""

    model_config = SETTINGS_CONFIG

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of this service's own database (postgresql+asyncpg://...).",
    )

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("postgresql+asyncpg://"):
            raise ValueError("DATABASE_URL must start with postgresql+asyncpg://")
        return value

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ValueError(
                "DATABASE_URL is not set: point it at PostgreSQL (postgresql+asyncpg://...), "
                "or use `make run`, which starts an embedded one"
            )
        return self.database_url


class CaptureMode(StrEnum):
    SALE = "sale"  # NetValve POST /sale: authorize and capture at once
    MANUAL = "manual"  # NetValve POST /authorize, captured later through /capture


API_KEY_SETTINGS = ("storefront_api_keys", "admin_api_keys", "medusa_api_keys", "metrics_api_keys")


class Settings(DatabaseSettings):
    environment: AppEnvironment = AppEnvironment.PRODUCTION
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    storefront_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    admin_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    medusa_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    """Keys for the Medusa provider package: payment, capture, refund, cancel, status, HPF."""
    idempotency_key_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)
    unknown_outcome_budget_seconds: float = Field(default=3.0, ge=0, le=60)
    netvalve_webhook_auth_header: str | None = Field(default=None, pattern=r"^[A-Za-z0-9-]{1,64}$")
    netvalve_webhook_auth_values: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    netvalve_webhook_allowed_ips: Annotated[list[IPvAnyNetwork], NoDecode] = Field(
        default_factory=list
    )
    trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    netvalve_webhook_max_body_bytes: int = Field(default=65_536, ge=1024, le=10_485_760)
    netvalve_reverse_extra_charges: bool = False
    """Void or refund at once a charge NetValve approved beyond the payment's own (opt-in)."""
    webhook_worker_enabled: bool = True
    webhook_worker_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    webhook_retry_base_seconds: float = Field(default=5.0, gt=0, le=3600)
    webhook_max_attempts: int = Field(default=8, ge=1, le=100)
    reconcile_enabled: bool = True
    reconcile_interval_seconds: float = Field(default=15.0, gt=0, le=3600)
    reconcile_min_age_seconds: float = Field(default=10.0, ge=0, le=3600)
    reconcile_max_backoff_seconds: float = Field(default=900.0, gt=0, le=86_400)
    netvalve_not_found_grace_seconds: float = Field(default=60.0, ge=0, le=3600)
    """How long after sending a sale NetValve's "not found" still means "not yet"."""
    reconcile_recheck_not_found_seconds: float = Field(default=600.0, ge=0, le=86_400)
    """When a sale given up as not found is looked up once more, for a late approval."""
    rate_limit_enabled: bool = True
    rate_limit_per_minute: int = Field(default=600, ge=1, le=1_000_000)
    rate_limit_burst: int = Field(default=120, ge=1, le=1_000_000)
    shutdown_grace_seconds: float = Field(default=20.0, gt=0, le=600)
    metrics_api_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)

    # Notifications to Medusa (app/services/medusa_notifications.py): off without the URL.
    medusa_webhook_url: AnyHttpUrl | None = None
    """Medusa's route for the provider's webhooks (/hooks/payment/netvalve_netvalve)."""
    medusa_webhook_secret: SecretStr | None = None
    """Standard Webhooks secret (`whsec_` + base64), the provider's `webhookSecret` too."""
    medusa_notify_worker_enabled: bool = True
    medusa_notify_interval_seconds: float = Field(default=1.0, gt=0, le=3600)
    medusa_notify_max_attempts: int = Field(default=12, ge=1, le=100)
    medusa_notify_retry_base_seconds: float = Field(default=60.0, gt=0, le=3600)
    medusa_notify_max_backoff_seconds: float = Field(default=21_600.0, gt=0, le=86_400)
    medusa_notify_timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    # Request bounds: checked before a body is read (app/api/guard.py, app/core/server.py).
    max_request_body_bytes: int = Field(default=16_384, ge=1024, le=10_485_760)
    """The largest body any route but the webhook accepts (the webhook's is its own setting)."""
    request_read_timeout_seconds: float = Field(default=15.0, gt=0, le=600)
    """How long a client may take to send one request's headers and body before it is cut off."""

    medusa_database_url: str | None = None
    database_pool_size: int = Field(default=10, ge=1, le=200)
    database_max_overflow: int = Field(default=10, ge=0, le=200)
    database_pool_timeout_seconds: float = Field(default=30.0, gt=0, le=300)
    """How long a request waits for a pooled connection before it is answered 503."""
    medusa_pool_max_size: int = Field(default=10, ge=1, le=200)
    medusa_statement_timeout_ms: int = Field(default=5000, ge=100, le=600_000)

    netvalve_environment: NetvalveEnvironment = NetvalveEnvironment.PRODUCTION
    netvalve_client_id: str | None = None
    netvalve_api_key: SecretStr | None = None
    netvalve_site_id: str | None = None
    netvalve_mid_id_eur: str | None = None
    netvalve_mid_id_usd: str | None = None
    netvalve_mid_id_php: str | None = None
    netvalve_basic_auth_username: str | None = None
    netvalve_basic_auth_password: SecretStr | None = None
    netvalve_base_url: AnyHttpUrl | None = None
    netvalve_hpp_url: AnyHttpUrl | None = None
    netvalve_hpf_url: AnyHttpUrl | None = None
    netvalve_backoffice_url: AnyHttpUrl | None = None
    netvalve_capture_mode: CaptureMode = CaptureMode.SALE
    netvalve_hpf_script_src: AnyHttpUrl | None = None
    netvalve_hpf_script_integrity: str | None = None
    netvalve_hpp_direct_url: AnyHttpUrl | None = None
    netvalve_hpp_fallback_enabled: bool = False
    netvalve_hpp_success_url: AnyHttpUrl | None = None
    netvalve_hpp_cancel_url: AnyHttpUrl | None = None
    netvalve_hpp_failed_url: AnyHttpUrl | None = None
    netvalve_hpf_fallback_script_src: AnyHttpUrl | None = None
    netvalve_connect_timeout: float = Field(default=5.0, gt=0, le=60)
    netvalve_read_timeout: float = Field(default=30.0, gt=0, le=300)
    netvalve_max_connections: int = Field(default=100, ge=1, le=10_000)
    netvalve_max_keepalive_connections: int = Field(default=20, ge=0, le=10_000)

    @field_validator(
        "cors_origins",
        "storefront_api_keys",
        "admin_api_keys",
        "medusa_api_keys",
        "metrics_api_keys",
        "netvalve_webhook_auth_values",
        "netvalve_webhook_allowed_ips",
        "trusted_proxies",
        mode="before",
    )
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("medusa_database_url")
    @classmethod
    def _check_medusa_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^postgres(?:ql)?(\+asyncpg)?://", value):
            raise ValueError("MEDUSA_DATABASE_URL must be a postgresql:// URL")
        return value

    @field_validator("medusa_webhook_secret")
    @classmethod
    def _check_webhook_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and webhook_secret_bytes(value.get_secret_value()) is None:
            raise ValueError(
                f"must be {WEBHOOK_SECRET_PREFIX} followed by the base64 of at least "
                f"{MIN_WEBHOOK_SECRET_BYTES} random bytes (the Standard Webhooks format)"
            )
        return value

    @field_validator(
        "netvalve_site_id",
        "netvalve_mid_id_eur",
        "netvalve_mid_id_usd",
        "netvalve_mid_id_php",
        mode="after",
    )
    @classmethod
    def _check_routing_id(cls, value: str | None) -> str | None:
        # NetValve routes by a numeric midId or a UUID netvalveMidId / siteId (NETVALVE_API.md §3).
        if not value:
            return None
        if value.isdigit():
            return value
        try:
            return str(uuid.UUID(value))
        except ValueError:
            raise ValueError("must be a numeric MID or a UUID") from None

    @model_validator(mode="after")
    def _check_combinations(self) -> Self:
        self.require_database_url()
        if self.netvalve_environment is NetvalveEnvironment.PRODUCTION:
            self._require_live_credentials()
        if self.environment is AppEnvironment.PRODUCTION:
            if self.netvalve_environment is not NetvalveEnvironment.PRODUCTION:
                raise ValueError(
                    "NETVALVE_ENVIRONMENT must be production when ENVIRONMENT=production"
                )
            if "*" in self.cors_origins:
                raise ValueError("CORS_ORIGINS must not contain * when ENVIRONMENT=production")
            if not self.admin_api_keys:
                raise ValueError("ADMIN_API_KEYS is required when ENVIRONMENT=production")
        for name in API_KEY_SETTINGS:
            for key in getattr(self, name):
                secret = key.get_secret_value()
                if is_placeholder(secret) or len(secret) < MIN_API_KEY_LENGTH:
                    raise ValueError(
                        f"{name.upper()} holds a key shorter than {MIN_API_KEY_LENGTH} characters "
                        "or a placeholder"
                    )
        if self.environment not in (AppEnvironment.DEVELOPMENT, AppEnvironment.TEST) and not (
            self.netvalve_webhook_auth_header and self.netvalve_webhook_auth_values
        ):
            raise ValueError(
                "NETVALVE_WEBHOOK_AUTH_HEADER and NETVALVE_WEBHOOK_AUTH_VALUES are required "
                "outside development: without them anyone could post webhooks"
            )
        for value in self.netvalve_webhook_auth_values:
            if is_placeholder(value.get_secret_value()) or len(value.get_secret_value()) < 16:
                raise ValueError(
                    "NETVALVE_WEBHOOK_AUTH_VALUES holds a value shorter than 16 characters "
                    "or a placeholder"
                )
        if self.medusa_webhook_url is not None and self.medusa_webhook_secret is None:
            raise ValueError(
                "MEDUSA_WEBHOOK_SECRET is required when MEDUSA_WEBHOOK_URL is set: "
                "notifications to Medusa are always signed"
            )
        if self.netvalve_hpp_fallback_enabled and not (
            self.netvalve_hpp_success_url
            and self.netvalve_hpp_cancel_url
            and self.netvalve_hpp_failed_url
        ):
            raise ValueError(
                "NETVALVE_HPP_FALLBACK_ENABLED needs NETVALVE_HPP_SUCCESS_URL, "
                "NETVALVE_HPP_CANCEL_URL and NETVALVE_HPP_FAILED_URL"
            )
        return self

    def _require_live_credentials(self) -> None:
        required: dict[str, str | None] = {
            "NETVALVE_CLIENT_ID": self.netvalve_client_id,
            "NETVALVE_API_KEY": _reveal(self.netvalve_api_key),
        }
        for name, value in required.items():
            if value is None or not value.strip():
                raise ValueError(f"{name} is required when NETVALVE_ENVIRONMENT=production")
            if is_placeholder(value):
                raise ValueError(f"{name} holds a placeholder value; set the real credential")
        password = _reveal(self.netvalve_basic_auth_password)
        if password is not None and is_placeholder(password):
            raise ValueError("NETVALVE_BASIC_AUTH_PASSWORD holds a placeholder value")
        if not self.netvalve_site_id and not self.configured_mids():
            raise ValueError(
                "NETVALVE_SITE_ID or one of NETVALVE_MID_ID_EUR/_USD/_PHP is required "
                "when NETVALVE_ENVIRONMENT=production"
            )

    @property
    def medusa_dsn(self) -> str:
        """asyncpg DSN for Medusa's tables; the service's own database unless set apart."""
        return _to_asyncpg_dsn(self.medusa_database_url or self.require_database_url())

    def is_production(self) -> bool:
        return self.environment is AppEnvironment.PRODUCTION

    def configured_mids(self) -> dict[str, str]:
        mids = {
            "EUR": self.netvalve_mid_id_eur,
            "USD": self.netvalve_mid_id_usd,
            "PHP": self.netvalve_mid_id_php,
        }
        return {currency: mid for currency, mid in mids.items() if mid}

    def netvalve_url(self, kind: Literal["api", "hpp", "hpf", "backoffice"]) -> str:
        """Base URL of one NetValve host; an override variable wins over the environment."""
        overrides = {
            "api": self.netvalve_base_url,
            "hpp": self.netvalve_hpp_url,
            "hpf": self.netvalve_hpf_url or self.netvalve_base_url,
            "backoffice": self.netvalve_backoffice_url,
        }
        override = overrides[kind]
        if override is not None:
            return str(override).rstrip("/")
        host_kind = "api" if kind == "hpf" else kind
        return NETVALVE_HOSTS[self.netvalve_environment][host_kind]

    def gateway_config_problems(self) -> list[str]:
        """What keeps the gateway from being called, named by variable; empty when usable."""
        problems = []
        if not self.netvalve_client_id:
            problems.append("NETVALVE_CLIENT_ID is not set")
        if not _reveal(self.netvalve_api_key):
            problems.append("NETVALVE_API_KEY is not set")
        if not self.netvalve_site_id and not self.configured_mids():
            problems.append("no NETVALVE_SITE_ID and no NETVALVE_MID_ID_<CURRENCY>")
        return problems


def webhook_secret_bytes(secret: str) -> bytes | None:
    """The key a Standard Webhooks secret holds; None unless it is `whsec_` and strict base64 of
    enough bytes (the library itself would take any string, ignoring what is not base64)."""
    if not secret.startswith(WEBHOOK_SECRET_PREFIX):
        return None
    try:
        key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX), validate=True)
    except ValueError:
        return None
    return key if len(key) >= MIN_WEBHOOK_SECRET_BYTES else None


def _reveal(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


class ConfigurationError(RuntimeError):
    """Raised at start-up; its message names every offending environment variable."""


def configuration_error(exc: ValidationError) -> ConfigurationError:
    """One line naming each offending variable; never the value it holds."""
    problems = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        name = "_".join(str(part) for part in error["loc"]).upper()
        message = " ".join(str(error["msg"]).removeprefix("Value error, ").split())
        problems.append(f"{name}: {message}" if name else message)
    return ConfigurationError("invalid configuration: " + "; ".join(problems))


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise configuration_error(exc) from None


def load_database_settings() -> DatabaseSettings:
    """DATABASE_URL alone, for the entry points that need no gateway credentials (Alembic)."""
    try:
        return DatabaseSettings()
    except ValidationError as exc:
        raise configuration_error(exc) from None


@lru_cache
def get_settings() -> Settings:
    return load_settings()


def secret_values(settings: BaseSettings) -> list[str]:
    """Every secret `settings` holds, as it could appear in a log line: each `SecretStr` (in
    lists too), the Medusa webhook secret's key without its `whsec_` prefix, and the basic-auth
    header value NetValve's credentials make. For redaction by value
    (`app.core.logging.register_secrets`).

    Database passwords are left out: they are not checked for strength, and a development one
    such as `netvalve` would blank every line that names the service (SQLAlchemy masks them)."""
    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, SecretStr):
                found.append(item.get_secret_value())
    webhook_secret = getattr(settings, "medusa_webhook_secret", None)
    if isinstance(webhook_secret, SecretStr):
        # The key without its prefix is as secret as the whole value.
        found.append(webhook_secret.get_secret_value().removeprefix(WEBHOOK_SECRET_PREFIX))
    username = getattr(settings, "netvalve_basic_auth_username", None)
    password = getattr(settings, "netvalve_basic_auth_password", None)
    if username and isinstance(password, SecretStr):
        pair = f"{username}:{password.get_secret_value()}".encode()
        found.append(base64.b64encode(pair).decode())
    return [value for value in found if value]
