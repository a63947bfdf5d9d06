"""NetValve's webhook intake: authenticate, store the raw body, answer fast."""

import hmac
import ipaddress
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from app.api.client import client_ip
from app.api.deps import SettingsDep, WebhookServiceDep
from app.core.config import Settings
from app.core.errors import AppError
from app.schemas.webhook_event import WebhookEventRequest, WebhookReceipt
from app.services.netvalve.webhooks import WebhookMalformed, WebhookStoreUnavailable

router = APIRouter()


class WebhookUnauthenticated(AppError):
    """The configured webhook authentication header is missing or wrong."""

    status_code = 401
    message = "Webhook authentication failed."


class WebhookSourceForbidden(AppError):
    """The sender's address is not on NETVALVE_WEBHOOK_ALLOWED_IPS."""

    status_code = 403
    message = "This address may not post webhooks."


class WebhookTooLarge(AppError):
    """The body is larger than NETVALVE_WEBHOOK_MAX_BODY_BYTES."""

    status_code = 413
    message = "The webhook body is too large."


async def verify_source(request: Request, settings: SettingsDep) -> None:
    allowed = settings.netvalve_webhook_allowed_ips
    if allowed:
        try:
            ip = ipaddress.ip_address(client_ip(request, settings))
        except ValueError:
            raise WebhookSourceForbidden from None
        if not any(ip in network for network in allowed):
            raise WebhookSourceForbidden
    header = settings.netvalve_webhook_auth_header
    if not header:
        return  # development only: configuration refuses to start elsewhere without it
    presented = request.headers.get(header, "").encode()
    matched = False
    for value in settings.netvalve_webhook_auth_values:  # every value, for rotation
        matched |= hmac.compare_digest(presented, value.get_secret_value().encode())
    if not presented or not matched:
        raise WebhookUnauthenticated


async def read_body(request: Request, settings: Settings) -> bytes:
    limit = settings.netvalve_webhook_max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise WebhookTooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise WebhookTooLarge
    return bytes(body)


@router.post(
    "/webhook",
    response_model=WebhookReceipt,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": WebhookEventRequest.model_json_schema()}},
        }
    },
    responses={
        **WebhookUnauthenticated.schema(),
        **WebhookSourceForbidden.schema(),
        **WebhookTooLarge.schema(),
        **WebhookMalformed.schema(),
        **WebhookStoreUnavailable.schema(),
    },
)
async def receive_webhook(
    request: Request,
    settings: SettingsDep,
    service: WebhookServiceDep,
    _: Annotated[None, Depends(verify_source)],
) -> WebhookReceipt:
    """NetValve's webhook: stored before it is processed; 200 only once it is stored."""
    raw = await read_body(request, settings)
    return await service.receive(raw, dict(request.headers))
