"""Every ORM table this service owns; importing this module fills `Base.metadata`."""

from app.db.base import Base
from app.models.webhook_event import WebhookEvent, WebhookEventStatus

__all__ = ["Base", "WebhookEvent", "WebhookEventStatus"]
