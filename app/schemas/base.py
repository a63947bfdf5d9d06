from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# Major units as a decimal string ("44.00"): exact in JSON, unlike a float.
MoneyOut = Annotated[
    Decimal,
    PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json"),
    Field(json_schema_extra={"type": "string", "pattern": r"^\d+(\.\d+)?$"}),
]
MoneyIn = Annotated[
    str,
    Field(
        pattern=r"^\d{1,12}(\.\d{1,12})?$",
        description='Major units as a decimal string, e.g. "44.00"; never a float.',
        examples=["44.00"],
    ),
]
MedusaId = Annotated[str, Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]


class ApiSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RequestSchema(ApiSchema):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
