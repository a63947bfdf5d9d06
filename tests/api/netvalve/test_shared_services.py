"""The routes' services are built once per app and shared by every request, which is only sound
while they keep no per-request state: these tests hold both."""

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.requests import Request

from app.api import deps
from app.api.deps import Services
from tests.fixtures.api import STOREFRONT_KEY, Api, ApiFactory
from tests.fixtures.netvalve import build_webhook_event
from tests.fixtures.webhooks import WEBHOOK_SETTINGS, post_webhook

pytestmark = pytest.mark.asyncio

DEPENDENCIES = {
    "netvalve": deps.get_netvalve_service,
    "webhook": deps.get_webhook_service,
    "extra_charge": deps.get_extra_charge_service,
    "medusa_notification": deps.get_medusa_notification_service,
    "idempotency": deps.get_idempotency,
}


def app_of(api: Api) -> FastAPI:
    return api.http._transport.app  # type: ignore[attr-defined,no-any-return]


def services_of(api: Api) -> Services:
    services: Services = app_of(api).state.services
    return services


def _attributes(value: object) -> Iterator[tuple[str, Any]]:
    for cls in type(value).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if not name.startswith("__") and hasattr(value, name):
                yield name, getattr(value, name)
    yield from getattr(value, "__dict__", {}).items()


def state_of(root: object) -> dict[str, int]:
    """Every attribute reachable from `root` through the service's own objects (those of
    `app.*` modules), as the identity of the value it holds."""
    found: dict[str, int] = {}
    seen: set[int] = set()

    def walk(value: object, path: str) -> None:
        if id(value) in seen or not type(value).__module__.startswith("app."):
            return
        seen.add(id(value))
        for name, held in _attributes(value):
            found[f"{path}.{name}"] = id(held)
            walk(held, f"{path}.{name}")

    walk(root, "services")
    return found


class TestSharedServices:
    async def test_every_dependency_hands_out_its_apps_own_service(self, api_factory: ApiFactory):
        first, second = await api_factory(), await api_factory(netvalve_capture_mode="manual")

        for api in (first, second):
            request = Request({"type": "http", "app": app_of(api)})
            for field, dependency in DEPENDENCIES.items():
                assert await dependency(request) is getattr(services_of(api), field), field
        for field in DEPENDENCIES:
            assert getattr(services_of(first), field) is not getattr(services_of(second), field)

    async def test_requests_leave_the_shared_services_as_they_were(self, api_factory: ApiFactory):
        api = await api_factory(**WEBHOOK_SETTINGS)
        before = state_of(services_of(api))
        assert len(before) > 20  # the walk reaches into the services' own parts

        paid = await api.pay(await api.medusa_session())
        assert paid.status_code == 200, paid.text
        payment = paid.json()
        refunded = await api.post("/refund", {"payment_id": payment["id"], "amount": "1.00"})
        assert refunded.status_code == 200, refunded.text
        status = await api.get("/status", {"payment_id": payment["id"]}, key=STOREFRONT_KEY)
        assert status.status_code == 200, status.text
        hook = await post_webhook(api.http, build_webhook_event())
        assert hook.status_code == 200, hook.text

        assert state_of(services_of(api)) == before
