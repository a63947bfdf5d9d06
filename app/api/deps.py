from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from app.core.config import Settings
from app.core.state import Resources
from app.db.medusa import MedusaRepository
from app.db.session import session_scope


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


def get_settings_dep(resources: ResourcesDep) -> Settings:
    return resources.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_db_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    async for session in session_scope(resources.sessionmaker):
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_db_session)]


def get_medusa(resources: ResourcesDep) -> MedusaRepository:
    return MedusaRepository(resources.medusa_pool)


MedusaDep = Annotated[MedusaRepository, Depends(get_medusa)]
