"""NetValve's back-office portal API (undocumented; NETVALVE_API.md §9, waterfall step 2). It
takes no merchant credential headers: sign-in takes the basic-auth pair, the rest a bearer token."""

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from app.sandbox import backoffice
from app.sandbox.credentials import portal_credentials_match
from app.sandbox.routes.deps import StateDep, base_url
from app.sandbox.routes.responses import (
    AuthenticationRequired,
    WireResponse,
    answer,
    authentication_failure,
)
from app.sandbox.wire import INVALID_BODY, parse_body

router = APIRouter()


@router.post("/backoffice/users/sign-in")
async def backoffice_sign_in(request: Request, state: StateDep) -> Response:
    # The portal's login with the basic-auth pair; `checkForBot` is accepted and ignored.
    body = parse_body(await request.body())
    if body is None:
        return answer(INVALID_BODY)
    if not portal_credentials_match(state.settings, body):
        return authentication_failure()
    token = state.access_tokens.issue()
    return WireResponse({"accessToken": token, "expiresIn": backoffice.TOKEN_TTL_SECONDS})


async def signed_in(request: Request, state: StateDep) -> None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not state.access_tokens.valid(token.strip()):
        raise AuthenticationRequired


SignedIn = Annotated[None, Depends(signed_in)]


@router.get("/backoffice/hpf/script")
async def backoffice_scripts(request: Request, _: SignedIn) -> Response:
    return WireResponse(backoffice.scripts(base_url(request)))
