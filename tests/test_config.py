"""Settings that refuse unsafe values."""

import pytest
from pydantic import ValidationError

from api.config import DEFAULT_SECRET, Settings


@pytest.mark.parametrize("environment", ["test", "production"])
def test_default_secret_refused_outside_development(environment: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY must be set"):
        Settings(ENVIRONMENT=environment, SECRET_KEY=DEFAULT_SECRET, _env_file=None)


def test_default_secret_accepted_in_development() -> None:
    settings = Settings(ENVIRONMENT="development", SECRET_KEY=DEFAULT_SECRET, _env_file=None)
    assert settings.SECRET_KEY == DEFAULT_SECRET


@pytest.mark.parametrize(
    ("limit", "enabled"), [("10/minute", True), ("off", False), (" OFF ", False)]
)
def test_rate_limit_off_switch(limit: str, enabled: bool) -> None:
    settings = Settings(AUTH_RATE_LIMIT=limit, _env_file=None)
    assert settings.rate_limit_enabled is enabled
