"""Every table model, for Alembic's autogenerate and the tests."""

from api.audit.models import AuditLog
from api.users.models import AccessToken, User

__all__ = ["AccessToken", "AuditLog", "User"]
