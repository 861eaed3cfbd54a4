"""Loading users for routes; access checks live in api.users.auth."""

import uuid
from typing import Annotated

from fastapi import Depends

from api.db import SessionDep
from api.users import service as user_service
from api.users.manager import UserManager, get_user_manager
from api.users.models import User

UserManagerDep = Annotated[UserManager, Depends(get_user_manager)]


async def get_user_or_404(user_id: uuid.UUID, session: SessionDep) -> User:
    return await user_service.get_user(session, user_id)


UserDep = Annotated[User, Depends(get_user_or_404)]
