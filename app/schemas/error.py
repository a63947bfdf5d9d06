from pydantic import BaseModel, ConfigDict, Field


class ValidationIssue(BaseModel):
    loc: list[str | int] = Field(description="Where the problem is, e.g. ['body', 'amount'].")
    msg: str = Field(description="What is wrong, in words.")
    type: str = Field(description="Machine-readable kind of problem.")


class ErrorResponse(BaseModel):
    """The one shape of every error this service returns."""

    model_config = ConfigDict(
        json_schema_extra={
            "example": {
                "error": "NotFound",
                "detail": "Not Found",
                "request_id": "5b0c6a4e2f6d4f1c9f4f6a7c8d9e0f1a",
            }
        }
    )

    error: str = Field(description="Name of the error, stable for programs to match on.")
    detail: str | list[ValidationIssue] = Field(
        description="Human-readable explanation, or the list of invalid fields for a 422."
    )
    request_id: str = Field(description="Also in the X-Request-ID header; quote it to support.")
