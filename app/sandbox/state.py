"""Everything one sandbox holds while it runs, built from its settings; routes reach it through
the `StateDep` dependency (`routes/deps.py`)."""

from dataclasses import dataclass

from app.sandbox.backoffice import AccessTokens
from app.sandbox.faults import FaultRegistry
from app.sandbox.records import SandboxRules
from app.sandbox.settings import SandboxSettings
from app.sandbox.store import SandboxStore
from app.sandbox.webhooks import WebhookConfig, WebhookDispatcher


@dataclass
class SandboxState:
    settings: SandboxSettings
    store: SandboxStore
    faults: FaultRegistry
    webhooks: WebhookDispatcher
    access_tokens: AccessTokens

    @classmethod
    def from_settings(cls, settings: SandboxSettings) -> "SandboxState":
        webhooks = WebhookDispatcher(_webhook_config(settings))
        rules = SandboxRules(
            token_ttl_seconds=settings.sandbox_token_ttl_seconds,
            pending_seconds=settings.sandbox_pending_seconds,
            partial_capture_enabled=settings.sandbox_partial_capture_enabled,
            partial_refund_enabled=settings.sandbox_partial_refund_enabled,
        )
        return cls(
            settings=settings,
            store=SandboxStore(rules, webhooks.enqueue, settings.netvalve_client_id),
            faults=FaultRegistry(rules=[], latency_ms=settings.sandbox_latency_ms),
            webhooks=webhooks,
            access_tokens=AccessTokens(),
        )

    def reset(self) -> None:
        """Forget everything but the configuration and the added latency."""
        self.store.reset()
        self.faults.rules.clear()
        self.faults.drop_held()
        self.webhooks.delivered.clear()
        self.access_tokens.clear()


def _webhook_config(settings: SandboxSettings) -> WebhookConfig:
    auth_value = settings.sandbox_webhook_auth_value
    return WebhookConfig(
        url=settings.sandbox_webhook_url,
        auth_header=settings.sandbox_webhook_auth_header,
        auth_value=auth_value.get_secret_value() if auth_value else None,
        retry_delays=settings.sandbox_webhook_retry_delays,
        duplicate_rate=settings.sandbox_webhook_duplicate_rate,
        reorder=settings.sandbox_webhook_reorder,
    )
