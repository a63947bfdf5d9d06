from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.deps import ResourcesDep
from app.core.errors import request_id_of
from app.schemas.health import LivenessResponse, NotReadyResponse, ReadinessResponse
from app.services import health_service

router = APIRouter(prefix="/health", tags=["health"])


@router.get("", response_model=LivenessResponse)
async def get_liveness() -> LivenessResponse:
    """Liveness: the process is up and serving. Does no I/O."""
    return LivenessResponse()


@router.get(
    "/ready",
    response_model=ReadinessResponse,
    responses={503: {"model": NotReadyResponse, "description": "A dependency is not ready."}},
)
async def get_readiness(
    request: Request, resources: ResourcesDep
) -> ReadinessResponse | JSONResponse:
    """Readiness: our database (migrated), Medusa's database and the gateway configuration."""
    checks = await health_service.check_readiness(resources)
    failing = [name for name, result in checks.items() if result.status == "fail"]
    if not failing:
        return ReadinessResponse(checks=checks)
    body = NotReadyResponse(
        error="ServiceNotReady",
        detail="Not ready: " + ", ".join(failing),
        request_id=request_id_of(request),
        checks=checks,
    )
    return JSONResponse(body.model_dump(mode="json"), status_code=503)
