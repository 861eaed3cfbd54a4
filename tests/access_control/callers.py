"""The kinds of caller the access-control table has a column for, and the roles they hold."""

from api.users.models import UserRole

ANONYMOUS = "anonymous"
UNVERIFIED = "unverified"
USER = "user"
MANAGER = "manager"
ADMIN = "admin"
CALLERS = (ANONYMOUS, UNVERIFIED, USER, MANAGER, ADMIN)
CALLER_ROLES = {
    UNVERIFIED: UserRole.ANONYMOUS,
    USER: UserRole.AUTHENTICATED,
    MANAGER: UserRole.MANAGER,
    ADMIN: UserRole.ADMIN,
}
STAFF = {MANAGER, ADMIN}


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(CALLERS, status)
