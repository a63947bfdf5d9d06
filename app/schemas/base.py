import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, ClassVar

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

# Amounts are ASCII digits only: `\d` (in Python's re and in pydantic's Rust regex) and
# `Decimal()` also take full-width, Arabic-Indic or mathematical digits. The JSON Schema shows
# these same patterns.
MONEY_IN_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,12})?$"
MONEY_OUT_PATTERN = r"^[0-9]+(\.[0-9]+)?$"
# Major units as a decimal string ("44.00"): exact in JSON, unlike a float.
MoneyOut = Annotated[
    Decimal,
    PlainSerializer(lambda value: format(value, "f"), return_type=str, when_used="json"),
    Field(json_schema_extra={"type": "string", "pattern": MONEY_OUT_PATTERN}),
]
MoneyIn = Annotated[
    str,
    Field(
        pattern=MONEY_IN_PATTERN,
        description='Major units as a decimal string, e.g. "44.00"; never a float.',
        examples=["44.00"],
    ),
]
_RFC_3339 = re.compile(
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)


def _rfc_3339(value: object) -> object:
    # Pydantic alone would also take "0.5" (a Unix time) or a date without a time or offset.
    if isinstance(value, str) and not _RFC_3339.match(value):
        raise ValueError("expected an RFC 3339 date-time with an offset, e.g. 2024-11-08T12:38:58Z")
    return value


def _in_utc(value: datetime) -> datetime:
    # 9999-12-31T23:59:59-01:00 is a valid date-time that no datetime (nor asyncpg) can hold in UTC.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("the date-time is out of range") from None


# A date-time as OpenAPI's `format: date-time` means it (RFC 3339, with an offset), and no
# other; in UTC.
DateTimeIn = Annotated[AwareDatetime, BeforeValidator(_rfc_3339), AfterValidator(_in_utc)]
# Text PostgreSQL can store: anything but NUL.
PgText = Annotated[str, Field(pattern=r"^[^\x00]*$")]
# NetValve's transaction ids, as our BIGINT columns hold them: a larger one cannot exist.
MAX_TRANSACTION_ID = 2**63 - 1
TransactionId = Annotated[int, Field(gt=0, le=MAX_TRANSACTION_ID)]
MedusaId = Annotated[str, Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_]+$")]


class ApiSchema(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RequestSchema(ApiSchema):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    exactly_one_of: ClassVar[tuple[str, ...]] = ()
    """Fields of which exactly one must be given, and not null. The model's validator enforces
    it; this puts it in the JSON Schema too (`oneOf`), so clients and fuzzers know the rule."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(core_schema)
        if cls.exactly_one_of:
            target = handler.resolve_ref_schema(json_schema)
            target["oneOf"] = [
                {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                for name in cls.exactly_one_of
            ]
        return json_schema
