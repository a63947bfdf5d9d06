"""Dependencies shared by the routers: the sandbox's state, the merchant's credentials, the body."""

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from app.sandbox.credentials import merchant_authenticated
from app.sandbox.routes.responses import AuthenticationRequired, WireResponse, answer
from app.sandbox.state import SandboxState
from app.sandbox.wire import INVALID_BODY, Answer, parse_body


async def get_state(request: Request) -> SandboxState:
    state: SandboxState = request.app.state.sandbox
    return state


StateDep = Annotated[SandboxState, Depends(get_state)]


async def authenticate(request: Request, state: StateDep) -> None:
    if not merchant_authenticated(state.settings, request.headers):
        raise AuthenticationRequired


Authenticated = Annotated[None, Depends(authenticate)]


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def answer_body(
    request: Request, operation: Callable[[dict[str, Any]], Awaitable[Answer]]
) -> WireResponse:
    """`operation`'s answer to the request's JSON object, or GTW_2063 if it is not one."""
    body = parse_body(await request.body())
    return answer(INVALID_BODY if body is None else await operation(body))
