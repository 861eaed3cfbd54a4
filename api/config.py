"""Settings read from the environment or `.env` (see `.env.example`)."""

import hashlib
import ipaddress
import re
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRET = "changethis"
MIN_SECRET_LENGTH = 32
# A reminder goes at most a week ahead (API-attendees.md, Reminders).
MIN_REMINDER_HOURS, MAX_REMINDER_HOURS = 1, 168
# A browser origin: scheme, host (a name, an IPv4 or a bracketed IPv6 address), optional port.
ORIGIN = re.compile(
    r"https?://(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?"
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    ENVIRONMENT: Environment = Environment.DEVELOPMENT
    LOG_LEVEL: str = "INFO"
    # `event-manager serve`: worker processes, migrations at start, grace period on SIGTERM.
    WEB_CONCURRENCY: int = Field(default=1, ge=1)
    MIGRATE_ON_START: bool = True
    SHUTDOWN_TIMEOUT_SECONDS: int = Field(default=25, ge=1)
    # On SIGTERM, /ready answers 503 for this long while every request is still served, so that
    # a load balancer takes the process out of rotation before it stops accepting (api.serving).
    # The balancer's check interval × fall count must fit in it: compose.scale.yaml's HAProxy
    # needs 1 s × 2; HAProxy's own defaults (2 s × 3) need more than 6. 0: stop at once.
    SHUTDOWN_DRAIN_SECONDS: int = Field(default=5, ge=0)

    # Unset: an embedded PostgreSQL under DATA_DIR is started (see api.embedded).
    DATABASE_URL: str | None = None
    # DATABASE_URL leads through PgBouncer (or another pooler) in transaction pooling mode, where
    # consecutive transactions of one client connection run on different server connections:
    # no named prepared statements then (api.db), and what needs a session of its own goes to
    # WORKER_DATABASE_URL, which must be set wherever it runs.
    DB_PGBOUNCER: bool = False
    # A direct connection to PostgreSQL (or through a pooler in session mode) for what cannot pass
    # a transaction pooler: the job worker's and the test clock's LISTEN, and migrations. Unset:
    # DATABASE_URL (then the embedded server); refused when DB_PGBOUNCER is true.
    WORKER_DATABASE_URL: str | None = None
    DATA_DIR: Path = PROJECT_ROOT / ".data"
    DB_POOL_SIZE: int = Field(default=20, ge=2)
    # Waiting longer for a pooled connection than this answers 503 (well within 5 s in all).
    DB_POOL_TIMEOUT_SECONDS: float = 3.0
    DB_CONNECT_TIMEOUT_SECONDS: float = 3.0
    # One statement on the request path. Connections used within the last second are not
    # pinged before use (api.db), so this bounds how long a request can hang on a database that
    # has just gone away: keep it under 5 s (REL-1).
    DB_COMMAND_TIMEOUT_SECONDS: float = 4.0

    SECRET_KEY: str = DEFAULT_SECRET
    PUBLIC_BASE_URL: str = "http://127.0.0.1:8000"
    # Origins (scheme://host[:port]) whose browser pages may call the API, comma-separated,
    # e.g. "https://app.example.com,http://localhost:5173"; "*" for any. Empty: none (no CORS).
    CORS_ORIGINS: str = ""
    ACCESS_TOKEN_EXPIRE_MINUTES: int = Field(default=60, ge=1)
    VERIFICATION_TOKEN_EXPIRE_MINUTES: int = Field(default=24 * 60, ge=1)
    RESET_TOKEN_EXPIRE_MINUTES: int = Field(default=60, ge=1)
    MAX_LOGIN_ATTEMPTS: int = Field(default=5, ge=1)
    LOCKOUT_MINUTES: int = Field(default=15, ge=0)
    AUTH_RATE_LIMIT: str = "10/minute"
    # Where the auth throttle counts: memory:// in each process on its own (N workers let a
    # client through N times AUTH_RATE_LIMIT), redis://host:port/db (rediss:// over TLS) once for
    # every worker and replica that uses the same Redis.
    RATE_LIMIT_STORAGE_URL: str = "memory://"
    # A storage slower than this lets the throttled request through (logged and counted): what a
    # black-holed Redis adds to a login at most.
    RATE_LIMIT_STORAGE_TIMEOUT_SECONDS: float = Field(default=0.5, gt=0)
    # Peers whose X-Forwarded-For and X-Forwarded-Proto are believed (the reverse proxy): comma-
    # separated addresses or networks, * for any, empty for none. The throttle, the access log
    # and the links built from the request then see the client's address and scheme.
    FORWARDED_ALLOW_IPS: str = "127.0.0.1"
    RESET_MAILS_PER_HOUR: int = Field(default=5, ge=1)
    # Argon2 cost; tests lower it, production keeps the library defaults.
    PASSWORD_HASH_TIME_COST: int = Field(default=3, ge=1)
    PASSWORD_HASH_MEMORY_KIB: int = Field(default=65536, ge=8)

    SMTP_HOST: str | None = None
    SMTP_PORT: int = 587
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_STARTTLS: bool = True
    SMTP_TIMEOUT_SECONDS: float = 10.0
    MAIL_FROM: str = "no-reply@event-manager.local"
    MAIL_MAX_ATTEMPTS: int = Field(default=8, ge=1)

    # How long an Idempotency-Key and its stored answer are kept, in hours.
    IDEMPOTENCY_KEY_TTL_HOURS: int = Field(default=24, ge=1)
    # How long a calendar feed keeps showing an event whose registration was cancelled, in days.
    CALENDAR_FEED_CANCELLED_DAYS: int = Field(default=30, ge=0)
    # Hours before an event's start at which its confirmed registrants are reminded, e.g. "24,2".
    REMINDER_HOURS: str = "24"

    # Webhooks (API-integrations.md): private targets are refused unless this is true.
    WEBHOOK_ALLOW_PRIVATE_TARGETS: bool = False
    WEBHOOK_TIMEOUT_SECONDS: float = Field(default=10, gt=0)
    # Seconds before each retry of a failed attempt (+0-10 % jitter); then the delivery FAILED.
    WEBHOOK_RETRY_SCHEDULE: str = "10,60,300,1800,7200,21600,43200"
    WEBHOOK_DISABLE_AFTER_FAILURES: int = Field(default=5, ge=1)
    WEBHOOK_DELIVERY_RETENTION_DAYS: int = Field(default=30, ge=1)

    RUN_WORKER_IN_PROCESS: bool = True
    FIRST_ADMIN_EMAIL: str | None = None
    FIRST_ADMIN_PASSWORD: str | None = None

    @field_validator("SECRET_KEY")
    @classmethod
    def _refuse_weak_secret(cls, value: str, info: ValidationInfo) -> str:
        # ENVIRONMENT is declared first, so it is validated and in info.data by now.
        if info.data.get("ENVIRONMENT", Environment.DEVELOPMENT) is Environment.DEVELOPMENT:
            return value
        if value == DEFAULT_SECRET:
            raise ValueError(
                f"SECRET_KEY is the development default {DEFAULT_SECRET!r}: set a random secret "
                "(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if len(value) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"SECRET_KEY is {len(value)} characters long: outside development it needs at "
                f"least {MIN_SECRET_LENGTH}"
            )
        return value

    @field_validator("WEBHOOK_RETRY_SCHEDULE")
    @classmethod
    def _retry_schedule(cls, value: str) -> str:
        delays = [part.strip() for part in value.split(",") if part.strip()]
        if not all(_is_delay(part) for part in delays):
            raise ValueError("WEBHOOK_RETRY_SCHEDULE is a comma-separated list of seconds")
        return ",".join(delays)

    @field_validator("CORS_ORIGINS")
    @classmethod
    def _cors_origins(cls, value: str) -> str:
        origins = [part.strip() for part in value.split(",") if part.strip()]
        # A browser sends its Origin as scheme://host[:port], lower case, with no path: an entry
        # with a path or a trailing slash would never match, so it stops the service instead.
        wrong = [origin for origin in origins if origin != "*" and not ORIGIN.fullmatch(origin)]
        if wrong:
            raise ValueError(
                "CORS_ORIGINS is a comma-separated list of origins such as "
                f"https://app.example.com or http://localhost:5173 (or *); got {wrong}"
            )
        return ",".join(origin.lower() for origin in origins)

    @field_validator("REMINDER_HOURS")
    @classmethod
    def _reminder_hours(cls, value: str) -> str:
        parts = [part.strip() for part in value.split(",")]
        if not all(
            part.isascii()
            and part.isdigit()
            and MIN_REMINDER_HOURS <= int(part) <= MAX_REMINDER_HOURS
            for part in parts
        ):
            raise ValueError(
                f"REMINDER_HOURS is a comma-separated list of whole hours, each "
                f"{MIN_REMINDER_HOURS} to {MAX_REMINDER_HOURS} (e.g. 24,2); got {value!r}"
            )
        return ",".join(str(hours) for hours in sorted({int(part) for part in parts}))

    @field_validator("RATE_LIMIT_STORAGE_URL")
    @classmethod
    def _rate_limit_storage(cls, value: str) -> str:
        value = value.strip()
        if value == "memory://" or _is_redis_url(value):
            return value
        raise ValueError(
            "RATE_LIMIT_STORAGE_URL is memory:// or redis://[:password@]host[:port][/db] "
            "(rediss:// over TLS)"
        )

    @field_validator("FORWARDED_ALLOW_IPS")
    @classmethod
    def _forwarded_allow_ips(cls, value: str) -> str:
        entries = [entry.strip() for entry in value.split(",") if entry.strip()]
        if entries == ["*"]:
            return "*"
        for entry in entries:
            try:
                ipaddress.ip_network(entry)
            except ValueError:
                raise ValueError(
                    "FORWARDED_ALLOW_IPS is *, or comma-separated IP addresses or networks "
                    f"(e.g. 127.0.0.1,10.0.0.0/8); {entry!r} is neither"
                ) from None
        return ",".join(entries)

    @property
    def reminder_hours(self) -> tuple[int, ...]:
        """The reminder offsets in hours, smallest first, each once."""
        return tuple(int(part) for part in self.REMINDER_HOURS.split(","))

    @property
    def cors_origins(self) -> list[str]:
        """The origins allowed to call the API from a browser (empty: none)."""
        return [origin for origin in self.CORS_ORIGINS.split(",") if origin]

    @property
    def webhook_retry_delays(self) -> list[float]:
        """The retry schedule in seconds (empty: a failed attempt is final)."""
        return [float(part) for part in self.WEBHOOK_RETRY_SCHEDULE.split(",") if part]

    @property
    def signing_key(self) -> str:
        """The key for verification and reset tokens; hashed to the length HS256 expects."""
        return hashlib.sha256(self.SECRET_KEY.encode()).hexdigest()

    @property
    def rate_limit_enabled(self) -> bool:
        return self.AUTH_RATE_LIMIT.strip().lower() != "off"


def _is_redis_url(text: str) -> bool:
    url = urlsplit(text)
    try:
        url.port  # noqa: B018 - a port that is not a number raises
    except ValueError:
        return False
    database = url.path.removeprefix("/")
    return (
        url.scheme in ("redis", "rediss")
        and bool(url.hostname)
        and (database == "" or (database.isascii() and database.isdigit()))
    )


def _is_delay(text: str) -> bool:
    try:
        return float(text) >= 0
    except ValueError:
        return False


settings = Settings()
