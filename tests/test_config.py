"""Settings that refuse unsafe values, and name the setting at fault."""

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from api.config import DEFAULT_SECRET, MIN_SECRET_LENGTH, Settings
from tests.support import ROOT


def secret_error(environment: str, secret: str) -> str:
    with pytest.raises(ValidationError) as caught:
        Settings(ENVIRONMENT=environment, SECRET_KEY=secret, _env_file=None)
    errors = caught.value.errors()
    assert [error["loc"] for error in errors] == [("SECRET_KEY",)]
    return str(errors[0]["msg"])


@pytest.mark.parametrize("environment", ["test", "production"])
def test_default_secret_refused_outside_development(environment: str) -> None:
    message = secret_error(environment, DEFAULT_SECRET)
    assert message.startswith("Value error, SECRET_KEY is the development default 'changethis'")


@pytest.mark.parametrize("environment", ["test", "production"])
def test_short_secret_refused_outside_development(environment: str) -> None:
    message = secret_error(environment, "x" * (MIN_SECRET_LENGTH - 1))
    assert message == (
        "Value error, SECRET_KEY is 31 characters long: outside development it needs at least 32"
    )


def test_secret_of_the_minimum_length_accepted_in_production() -> None:
    secret = "k" * MIN_SECRET_LENGTH
    settings = Settings(ENVIRONMENT="production", SECRET_KEY=secret, _env_file=None)
    assert settings.SECRET_KEY == secret


@pytest.mark.parametrize("secret", [DEFAULT_SECRET, "short"])
def test_weak_secrets_accepted_in_development(secret: str) -> None:
    settings = Settings(ENVIRONMENT="development", SECRET_KEY=secret, _env_file=None)
    assert settings.SECRET_KEY == secret


def refused_at_start(command: str, **env: str) -> str:
    """`event-manager <command>` with `env` set: it must exit 2 naming invalid settings, without
    a traceback; what it printed."""
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", command],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Invalid settings" in result.stderr
    assert "Traceback" not in result.stderr
    return result.stderr


def test_command_line_names_the_bad_setting_and_exits_2() -> None:
    printed = refused_at_start("serve", ENVIRONMENT="production", SECRET_KEY="too-short")
    assert "SECRET_KEY is 9 characters long" in printed


@pytest.mark.parametrize(
    ("limit", "enabled"), [("10/minute", True), ("off", False), (" OFF ", False)]
)
def test_rate_limit_off_switch(limit: str, enabled: bool) -> None:
    settings = Settings(AUTH_RATE_LIMIT=limit, _env_file=None)
    assert settings.rate_limit_enabled is enabled


@pytest.mark.parametrize(
    ("value", "hours"),
    [
        ("24", (24,)),
        ("24,2", (2, 24)),
        (" 2 , 24 ", (2, 24)),
        ("24,2,24", (2, 24)),
        ("1,168", (1, 168)),
    ],
)
def test_reminder_hours(value: str, hours: tuple[int, ...]) -> None:
    assert Settings(REMINDER_HOURS=value, _env_file=None).reminder_hours == hours


def test_reminder_hours_default_one_day() -> None:
    assert Settings(_env_file=None).reminder_hours == (24,)


@pytest.mark.parametrize(
    "value", ["0", "169", "", "24,", "24,,2", "1.5", "-2", "+2", "two", "2 4", "\u0663"]
)
def test_reminder_hours_refused(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(REMINDER_HOURS=value, _env_file=None)
    [error] = caught.value.errors()
    assert error["loc"] == ("REMINDER_HOURS",)
    assert error["msg"] == (
        "Value error, REMINDER_HOURS is a comma-separated list of whole hours, each 1 to 168 "
        f"(e.g. 24,2); got {value!r}"
    )


def test_command_line_refuses_bad_reminder_hours() -> None:
    printed = refused_at_start("worker", REMINDER_HOURS="24,0")
    assert "REMINDER_HOURS is a comma-separated list of whole hours" in printed


@pytest.mark.parametrize("command", ["serve", "migrate", "worker"])
def test_a_pooler_without_a_direct_url_stops_what_would_listen_or_migrate(command: str) -> None:
    """`serve` (here it would migrate, and follow the test clock), `migrate` and `worker` need
    a connection of their own, which a transaction pooler cannot give."""
    printed = refused_at_start(command, DB_PGBOUNCER="true", WORKER_DATABASE_URL="")
    words = " ".join(printed.split())  # the console wraps long lines
    assert "DB_PGBOUNCER is true but WORKER_DATABASE_URL is unset" in words
    assert "Set WORKER_DATABASE_URL to a direct connection to PostgreSQL" in words


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("memory://", "memory://"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        (" redis://valkey ", "redis://valkey"),
        ("rediss://:secret@redis.example.com:6380/2", "rediss://:secret@redis.example.com:6380/2"),
    ],
)
def test_rate_limit_storage_url(value: str, kept: str) -> None:
    assert Settings(RATE_LIMIT_STORAGE_URL=value, _env_file=None).RATE_LIMIT_STORAGE_URL == kept


def test_rate_limit_storage_default_is_the_process_memory() -> None:
    assert Settings(_env_file=None).RATE_LIMIT_STORAGE_URL == "memory://"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "memory",
        "memory://elsewhere",
        "redis://",
        "redis://:6379/0",
        "redis://127.0.0.1:port/0",
        "redis://127.0.0.1:6379/zero",
        "memcached://127.0.0.1:11211",
        "127.0.0.1:6379",
    ],
)
def test_rate_limit_storage_url_refused(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(RATE_LIMIT_STORAGE_URL=value, _env_file=None)
    [error] = caught.value.errors()
    assert error["loc"] == ("RATE_LIMIT_STORAGE_URL",)
    assert error["msg"] == (
        "Value error, RATE_LIMIT_STORAGE_URL is memory:// or "
        "redis://[:password@]host[:port][/db] (rediss:// over TLS)"
    )


def test_command_line_refuses_a_bad_rate_limit_storage() -> None:
    printed = refused_at_start("serve", RATE_LIMIT_STORAGE_URL="redis//127.0.0.1:6379")
    assert "RATE_LIMIT_STORAGE_URL is memory:// or redis://" in printed


@pytest.mark.parametrize(
    ("value", "kept"),
    [
        ("127.0.0.1", "127.0.0.1"),
        (" 10.0.0.0/8 , ::1 ", "10.0.0.0/8,::1"),
        ("*", "*"),
        ("", ""),
    ],
)
def test_forwarded_allow_ips(value: str, kept: str) -> None:
    assert Settings(FORWARDED_ALLOW_IPS=value, _env_file=None).FORWARDED_ALLOW_IPS == kept


@pytest.mark.parametrize(
    ("value", "entry"),
    [
        ("localhost", "localhost"),
        ("10.0.0.1/8", "10.0.0.1/8"),
        ("127.0.0.1,300.1.1.1", "300.1.1.1"),
        ("*,10.0.0.1", "*"),
    ],
)
def test_forwarded_allow_ips_refused(value: str, entry: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(FORWARDED_ALLOW_IPS=value, _env_file=None)
    [error] = caught.value.errors()
    assert error["loc"] == ("FORWARDED_ALLOW_IPS",)
    assert error["msg"] == (
        "Value error, FORWARDED_ALLOW_IPS is *, or comma-separated IP addresses or networks "
        f"(e.g. 127.0.0.1,10.0.0.0/8); {entry!r} is neither"
    )
