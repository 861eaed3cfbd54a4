"""Making the first admin: `event-manager create-admin` and FIRST_ADMIN_EMAIL at start-up."""

from fastapi_users import exceptions

from api.config import settings
from api.db import get_sessionmaker
from api.users.manager import UserDatabase, UserManager
from api.users.models import User, UserAdminCreate, UserRole
from api.users.service import announce_user_update, announced_fields


async def create_admin(email: str, password: str) -> tuple[User, bool]:
    """Create a verified admin, or promote the existing account. Returns (user, created)."""
    async with get_sessionmaker()() as session, session.begin():
        manager = UserManager(UserDatabase(session, User))
        existing = await manager.user_db.get_by_email(email)
        if existing is not None:
            announced = announced_fields(existing)
            await manager.user_db.update(
                existing, {"role": UserRole.ADMIN, "is_superuser": True, "is_verified": True}
            )
            await announce_user_update(session, existing, announced)
            return existing, False
        user = await manager.create(
            UserAdminCreate(email=email, password=password, role=UserRole.ADMIN), safe=False
        )
        return user, True


async def ensure_first_admin() -> None:
    """FIRST_ADMIN_EMAIL/FIRST_ADMIN_PASSWORD: create that admin once if the account is missing."""
    if not (settings.FIRST_ADMIN_EMAIL and settings.FIRST_ADMIN_PASSWORD):
        return
    async with get_sessionmaker()() as session:
        if await UserDatabase(session, User).get_by_email(settings.FIRST_ADMIN_EMAIL):
            return
    try:
        await create_admin(settings.FIRST_ADMIN_EMAIL, settings.FIRST_ADMIN_PASSWORD)
    except exceptions.UserAlreadyExists:
        pass  # another worker process created it first
