"""Password policy (NIST SP 800-63B) and hashing kept off the event loop."""

import os
from functools import lru_cache

import anyio
from anyio.to_thread import run_sync
from fastapi_users.password import PasswordHelper
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from api.config import settings

MIN_LENGTH = 8
MAX_LENGTH = 128


@lru_cache
def common_passwords() -> frozenset[str]:
    """The 30,000 most common passwords of the zxcvbn corpus."""
    return frozenset(FREQUENCY_LISTS["passwords"])


def password_problem(password: str, email: str) -> str | None:
    """Why a password is refused, or None. No composition rules, by design."""
    if len(password) < MIN_LENGTH:
        return f"Password should be at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"Password should be at most {MAX_LENGTH} characters"
    if password.lower() in common_passwords():
        return "Password is too common"
    lowered = password.casefold()
    if lowered == email.casefold() or lowered == email.partition("@")[0].casefold():
        return "Password should not be the email"
    return None


class ThreadedPasswordHelper(PasswordHelper):
    """argon2id (bcrypt still verified and upgraded), hashed in a bounded thread pool."""

    def __init__(self) -> None:
        super().__init__(
            PasswordHash(
                (
                    Argon2Hasher(
                        time_cost=settings.PASSWORD_HASH_TIME_COST,
                        memory_cost=settings.PASSWORD_HASH_MEMORY_KIB,
                    ),
                    BcryptHasher(),
                )
            )
        )
        self._limiter: anyio.CapacityLimiter | None = None

    @property
    def limiter(self) -> anyio.CapacityLimiter:
        # Created on first use: a limiter belongs to a running event loop.
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(os.cpu_count() or 2)
        return self._limiter

    async def hash_async(self, password: str) -> str:
        return await run_sync(self.hash, password, limiter=self.limiter)

    async def verify_and_update_async(self, password: str, hashed: str) -> tuple[bool, str | None]:
        return await run_sync(self.verify_and_update, password, hashed, limiter=self.limiter)


password_helper = ThreadedPasswordHelper()
