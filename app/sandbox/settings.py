"""The sandbox's configuration, read from the environment and `.env` like the service's own."""

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SandboxSettings(BaseSettings):
    """The sandbox shares NETVALVE_CLIENT_ID / NETVALVE_API_KEY with the service it serves."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", env_ignore_empty=True)

    netvalve_client_id: str = "sandbox-client"
    netvalve_api_key: SecretStr = SecretStr("sandbox-api-key")
    netvalve_basic_auth_username: str | None = None
    netvalve_basic_auth_password: SecretStr | None = None
    sandbox_host: str = "127.0.0.1"
    sandbox_port: int = Field(default=8090, ge=0, le=65535)
    sandbox_latency_ms: float = Field(default=0, ge=0)
    sandbox_pending_seconds: float = Field(default=5, ge=0)
    sandbox_token_ttl_seconds: float = Field(default=300, gt=0)
    sandbox_partial_capture_enabled: bool = True
    sandbox_partial_refund_enabled: bool = True
    sandbox_webhook_url: str | None = None
    sandbox_webhook_auth_header: str | None = None
    sandbox_webhook_auth_value: SecretStr | None = None
    sandbox_webhook_duplicate_rate: float = Field(default=0, ge=0, le=1)
    sandbox_webhook_reorder: bool = False
    sandbox_webhook_retry_delays: tuple[float, ...] = (0.2, 1.0, 5.0, 15.0)
