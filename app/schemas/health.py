from typing import Literal

from pydantic import BaseModel, Field

from app.schemas.error import ErrorResponse

CheckName = Literal["database", "medusa_database", "gateway_config"]


class CheckResult(BaseModel):
    status: Literal["ok", "fail"]
    detail: str | None = Field(default=None, description="Why the check failed; never a secret.")
    latency_ms: float = Field(description="Time the check took.")


class LivenessResponse(BaseModel):
    status: Literal["ok"] = "ok"


class ReadinessResponse(BaseModel):
    status: Literal["ok"] = "ok"
    checks: dict[CheckName, CheckResult]


class NotReadyResponse(ErrorResponse):
    """The error shape, plus every check, so the failing part is named."""

    checks: dict[CheckName, CheckResult]
