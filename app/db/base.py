from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import DateTime, Enum, MetaData, func
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Explicit names keep Alembic migrations stable and reviewable across databases.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Base of the tables this service owns. Medusa's tables are never mapped here."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class TimestampMixin:
    # UPDATEs and INSERTs fetch updated_at and created_at with RETURNING, in the same statement:
    # objects stay readable after their transaction without a reload.
    __mapper_args__: ClassVar[dict[str, Any]] = {"eager_defaults": True}

    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


def string_enum(kind: type[StrEnum], name: str) -> Enum:
    """A `StrEnum` column type: the members' values in a VARCHAR with a CHECK constraint, not
    a PostgreSQL enum type."""
    return Enum(
        kind,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=24,
        values_callable=lambda members: [member.value for member in members],
    )
