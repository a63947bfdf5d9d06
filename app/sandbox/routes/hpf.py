"""Hosted payment fields and the hosted payment page: NetValve's session and order calls, the
browser's tokenisation step, the SDK it loads and a demo page."""

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.sandbox import hosted
from app.sandbox.routes.deps import Authenticated, StateDep, answer_body, base_url
from app.sandbox.routes.responses import answer

router = APIRouter()


@router.get("/hpf/initializeSession")
async def initialize_session(request: Request, state: StateDep, _: Authenticated) -> Response:
    return answer(await hosted.initialize_session(state.store, base_url(request)))


@router.post("/hpf/tokenize")
async def tokenize(request: Request, state: StateDep) -> Response:
    # The browser step NetValve's SDK performs; the payment token is the credential.
    return await answer_body(request, lambda body: hosted.tokenize(state.store, body))


@router.get("/hpf/demo", response_class=HTMLResponse)
async def demo(request: Request, state: StateDep) -> HTMLResponse:
    _, session = await hosted.initialize_session(state.store, base_url(request))
    return HTMLResponse(hosted.demo_page(session, state.settings.sandbox_token_ttl_seconds))


@router.get("/hpf/sdk.js")
async def sdk() -> Response:
    return Response(hosted.SDK_SCRIPT, media_type="text/javascript")


@router.post("/hpp/order")
async def hpp_order(request: Request, state: StateDep, _: Authenticated) -> Response:
    url = base_url(request)
    return await answer_body(request, lambda body: hosted.hpp_order(state.store, body, url))
