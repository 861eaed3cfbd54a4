"""Two replicas and two workers on one PostgreSQL behave as one service (SCALE-1).

Two `event-manager serve` replicas (two web workers each, on ports of their own) and two
`event-manager worker` processes share one freshly migrated database and one SMTP mailbox. The
tests drive the replicas alternately: what one replica decides, the other honours at once (a
registration race split between them, a logout, a lockout counted over both). The two workers
race for the same jobs and the same schedules, and still send each reminder and each mail once
and run the hourly token cleanup once.

The auth throttle shared through RATE_LIMIT_STORAGE_URL is proven in tests/test_throttle_shared.py,
on two replicas of two workers each and one Redis, with replicas of its own.
"""

import asyncio
import re
import secrets
import subprocess
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from api import clock
from api.config import settings
from api.db import create_engine
from api.events.models import Event
from api.mail.service import SEND_EMAIL, SUBJECTS, queries_for, subject
from api.registrations.models import RegistrationStatus
from api.reminders.models import EventReminder
from api.users.models import AccessToken, UserRole, hash_token
from api.worker import CLEANUP_TOKENS, SCHEDULES, SEND_REMINDERS, WORKER_APPLICATION_NAME
from tests.events.test_concurrency import (
    DB_TIMEOUT_SECONDS,
    Scenario,
    all_at_once,
    assert_counters_match_rows,
    client_for,
    registration_url,
    statuses,
    stored_registrations,
    unexpected,
)
from tests.factories import DEFAULT_PASSWORD, create_user
from tests.support import (
    Mailbox,
    ServerProcess,
    TestDatabaseServer,
    free_port,
    report_figure,
    stop_processes,
)
from tests.test_concurrency import WRONG_PASSWORD, users_with_email
from tests.test_shutdown import start, wait_for_health

pytestmark = pytest.mark.security("SCALE-1")

REPLICAS = 2
WORKERS = 2
# Each process's pool: 4 web workers and 2 job workers share a PostgreSQL with other test runs.
DB_POOL_SIZE = 4
MAX_LOGIN_ATTEMPTS = 5
LOCKOUT_MINUTES = 15
SEATS = 10
CONTENDERS = 40
REMINDED = 6
# send_event_reminders jobs queued at once, each in a transaction of its own, as the schedules
# of several workers would queue them.
REMINDER_JOBS = 6
# A schedule made due is picked at the schedulers' next tick: each wakes about a second after
# every full minute (enqueue_waitlist_offer_expiry is due every minute).
SCHEDULER_SECONDS = 120
# Eight Python processes import the app at once: on a busy 2-core machine that took 60 s.
START_SECONDS = 180
SETTLE_SECONDS = 60
TOKEN_CLEANUP, TOKEN_CLEANUP_CRON = next(
    (name, expression) for name, expression, job in SCHEDULES if job == CLEANUP_TOKENS
)
TOKEN_CLEANUP_MINUTE = int(TOKEN_CLEANUP_CRON.split()[0])  # "17 * * * *": at :17 every hour
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/users/me"
VERIFY_LINK = re.compile(r"/verify-email\?token=([A-Za-z0-9._-]+)")
CONFIRMED = RegistrationStatus.CONFIRMED
WAITLISTED = RegistrationStatus.WAITLISTED

Clients = tuple[httpx.AsyncClient, httpx.AsyncClient]
T = TypeVar("T")


async def poll(
    check: Callable[[], Awaitable[T | None]], seconds: float, why: Callable[[], str]
) -> T:
    """Wait until `check()` answers something true (not None, not False), and return it; past
    `seconds`, fail with `why()`."""
    deadline = time.monotonic() + seconds
    while not (found := await check()):
        assert time.monotonic() < deadline, why()
        await asyncio.sleep(0.1)
    return found


class Processes:
    """`event-manager` commands, each in a process group of its own with its output in a file;
    stopped together."""

    def __init__(self) -> None:
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Path]:
        with tempfile.NamedTemporaryFile(prefix=f"{args[0]}-", suffix=".log", delete=False) as log:
            process = start(args, env, stdout=log, start_new_session=True)
        self.started.append((process, Path(log.name)))
        return process, Path(log.name)

    def logs(self) -> str:
        """The end of every process's output, for a failure."""
        return "\n".join(
            f"--- {process.args!r} (exit {process.poll()}):\n"
            f"{path.read_text(errors='replace')[-3000:]}"
            for process, path in self.started
        )

    def stop(self) -> None:
        stop_processes([process for process, _ in self.started])
        for _, path in self.started:
            path.unlink(missing_ok=True)


def start_replicas(processes: Processes, env: dict[str, str], count: int) -> list[ServerProcess]:
    """`count` replicas (`event-manager serve`, no migrations, no in-process worker), each on a
    free port of its own; wait_until_serving() tells when they answer."""
    replicas = []
    for _ in range(count):
        port = free_port()
        process, log = processes.start(
            ["serve", "--port", str(port), "--no-migrate", "--no-worker"], env
        )
        replicas.append(
            ServerProcess(f"http://127.0.0.1:{port}", process, log, env["DATABASE_URL"])
        )
    return replicas


async def wait_until_serving(replicas: list[ServerProcess], processes: Processes) -> None:
    try:
        await asyncio.gather(
            *(wait_for_health(r.base_url, r.process, START_SECONDS) for r in replicas)
        )
    except AssertionError as e:
        raise AssertionError(f"a replica did not start:\n{processes.logs()}") from e


async def workers_ready(engine: AsyncEngine) -> bool:
    """Both workers are connected and their schedules stored (each worker inserts the missing
    ones as its scheduler starts)."""
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT (SELECT count(*) FROM pg_stat_activity"
                    "        WHERE datname = current_database() AND application_name = :name),"
                    "       (SELECT count(*) FROM pgqueuer_schedules)"
                ),
                {"name": WORKER_APPLICATION_NAME},
            )
        ).one()
    return tuple(row) == (WORKERS, len(SCHEDULES))


# Which worker picked which job: the queue keeps the picking worker's queue_manager_id only while
# the job runs, so a trigger on this throwaway database copies it aside (observation only).
RECORD_PICKS = (
    "CREATE TABLE test_job_pick (job_id bigint, entrypoint text, queue_manager_id uuid)",
    "CREATE FUNCTION test_record_pick() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " INSERT INTO test_job_pick VALUES (NEW.id, NEW.entrypoint, NEW.queue_manager_id);"
    " RETURN NULL; END $$",
    "CREATE TRIGGER test_record_pick AFTER UPDATE OF status ON pgqueuer FOR EACH ROW"
    " WHEN (NEW.status = 'picked' AND OLD.status <> 'picked')"
    " EXECUTE FUNCTION test_record_pick()",
)


async def record_picks(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        for statement in RECORD_PICKS:
            await connection.exec_driver_sql(statement)


async def picks_per_worker(
    engine: AsyncEngine, entrypoint: str, job_ids: list[int] | None = None
) -> list[int]:
    """How many jobs of `entrypoint` (those of `job_ids`, if given) each worker picked; the
    workers in the order they first picked a job."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT queue_manager_id, count(*) FILTER (WHERE entrypoint = :entrypoint"
                "       AND (CAST(:ids AS bigint[]) IS NULL OR job_id = ANY(:ids)))"
                " FROM test_job_pick GROUP BY queue_manager_id ORDER BY min(job_id)"
            ),
            {"entrypoint": entrypoint, "ids": job_ids},
        )
        return [int(count) for _, count in rows]


@dataclass(frozen=True)
class DueCleanup:
    """Login tokens past their lifetime and one still live, and when the token cleanup's
    schedule was made due (database time)."""

    expired: list[str]
    live: str
    due_at: datetime


async def make_token_cleanup_due(engine: AsyncEngine) -> DueCleanup:
    """Expired login tokens, and the hourly token cleanup's schedule due now."""
    lived = timedelta(minutes=settings.ACCESS_TOKEN_EXPIRE_MINUTES, seconds=30)
    async with AsyncSession(engine, expire_on_commit=False) as session:
        user = await create_user(session)
        expired = [hash_token(secrets.token_urlsafe()) for _ in range(3)]
        live = hash_token(secrets.token_urlsafe())
        session.add_all(
            [AccessToken(token=t, user_id=user.id, created_at=clock.now() - lived) for t in expired]
        )
        session.add(AccessToken(token=live, user_id=user.id))
        await session.commit()

        async def make_due() -> datetime | None:
            # Not while a run of it is under way: that run would put it back as it found it.
            due_at: datetime | None = await session.scalar(
                text(
                    "UPDATE pgqueuer_schedules SET next_run = now() - interval '1 second'"
                    " WHERE entrypoint = :name AND status = 'queued' RETURNING now()"
                ),
                {"name": TOKEN_CLEANUP},
            )
            await session.commit()
            return due_at

        due_at = await poll(make_due, 10, lambda: "the token cleanup stayed picked")
    return DueCleanup(expired, live, due_at)


@dataclass
class Service:
    replicas: list[ServerProcess]
    processes: Processes
    # This process's connections to the service's database.
    engine: AsyncEngine
    mailbox: Mailbox
    cleanup: DueCleanup


@pytest.fixture(scope="module")
def database_url(db_server: TestDatabaseServer) -> Iterator[str]:
    name = db_server.create_migrated_database("event_manager_replicas")
    try:
        yield db_server.url_for(name)
    finally:
        db_server.drop_database(name)


@pytest.fixture(scope="module")
def service_env(database_url: str, smtp_port: int) -> dict[str, str]:
    """What every process of the service reads: one database, one mailbox, one secret."""
    return {
        "DATABASE_URL": database_url,
        "ENVIRONMENT": "test",
        # Tokens signed by one replica (email verification) are checked by the other.
        "SECRET_KEY": secrets.token_urlsafe(32),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_port),
        "SMTP_STARTTLS": "false",
        "MAX_LOGIN_ATTEMPTS": str(MAX_LOGIN_ATTEMPTS),
        "LOCKOUT_MINUTES": str(LOCKOUT_MINUTES),
        "DB_POOL_SIZE": str(DB_POOL_SIZE),
        # Requests of the race queue for a pooled connection, then on the event's row lock:
        # on a busy machine they wait rather than answer 503.
        "DB_POOL_TIMEOUT_SECONDS": str(DB_TIMEOUT_SECONDS),
        "DB_COMMAND_TIMEOUT_SECONDS": str(DB_TIMEOUT_SECONDS),
    }


@pytest.fixture(scope="module")
def serve_env(service_env: dict[str, str]) -> dict[str, str]:
    """The environment of every replica, one dict."""
    return {**service_env, "WEB_CONCURRENCY": "2", "AUTH_RATE_LIMIT": "off"}


@pytest.fixture(scope="module")
async def service(
    service_env: dict[str, str], serve_env: dict[str, str], process_mailbox: Mailbox
) -> AsyncIterator[Service]:
    """The replicas and the workers, started together and stopped together."""
    processes = Processes()
    engine = create_engine(
        service_env["DATABASE_URL"], pool_size=REMINDER_JOBS, timed_statements=False
    )
    try:
        await record_picks(engine)
        replicas = start_replicas(processes, serve_env, REPLICAS)
        for _ in range(WORKERS):
            processes.start(["worker"], service_env)
        await poll(lambda: workers_ready(engine), START_SECONDS, processes.logs)
        # As soon as both workers run: the wait for their schedulers' next tick (up to a minute)
        # passes while the replicas start and the other tests run.
        cleanup = await make_token_cleanup_due(engine)
        await wait_until_serving(replicas, processes)
        yield Service(replicas, processes, engine, process_mailbox, cleanup)
    finally:
        processes.stop()
        await engine.dispose()


@pytest.fixture
async def clients(service: Service) -> AsyncIterator[Clients]:
    """A client of each replica: requests alternate between them."""
    a, b = service.replicas
    async with client_for(a, CONTENDERS) as client_a, client_for(b, CONTENDERS) as client_b:
        yield client_a, client_b


def scenario(service: Service, name: str) -> Scenario:
    return Scenario(service.engine, f"{name}-{uuid.uuid4().hex[:10]}-")


async def settled(service: Service) -> None:
    """Wait until no mail or reminder job is queued or running. pgqueuer deletes a job in the
    statement that logs its success, so every mail committed before has reached the mailbox
    by then. A job held after its last failed attempt fails the test."""

    async def check() -> bool:
        async with service.engine.connect() as connection:
            found = (
                await connection.scalars(
                    text("SELECT status::text FROM pgqueuer WHERE entrypoint = ANY(:entrypoints)"),
                    {"entrypoints": [SEND_EMAIL, SEND_REMINDERS]},
                )
            ).all()
        assert "failed" not in found, service.processes.logs()
        return not found

    await poll(check, SETTLE_SECONDS, service.processes.logs)


class TestRegistrationRace:
    async def test_k_registrations_split_over_both_replicas_fill_n_seats_then_the_line(
        self, service: Service, clients: Clients
    ) -> None:
        people = scenario(service, "race")
        [owner] = await people.accounts(1, role=UserRole.MANAGER)
        event, _ = await people.event(owner, SEATS)
        accounts = await people.accounts(CONTENDERS)
        waiting = CONTENDERS - SEATS

        # Even-numbered requests to replica A, odd-numbered ones to B, all released together.
        responses = await all_at_once(
            [
                clients[i % REPLICAS].post(registration_url(event), headers=account.headers)
                for i, account in enumerate(accounts)
            ]
        )

        assert statuses(responses) == {201: CONTENDERS}, [
            unexpected(replica, responses[i::REPLICAS], 201)
            for i, replica in enumerate(service.replicas)
        ]
        answers = [response.json() for response in responses]
        assert Counter(a["status"] for a in answers) == {CONFIRMED: SEATS, WAITLISTED: waiting}
        assert {a["waitlist_position"] for a in answers if a["status"] == CONFIRMED} == {None}
        positions = {a["id"]: a["waitlist_position"] for a in answers if a["status"] == WAITLISTED}
        assert sorted(positions.values()) == list(range(1, waiting + 1))
        # The rows in arrival order: the first N to take the event's lock, on either replica,
        # hold the seats; the line follows, each at the position it was told.
        rows = await stored_registrations(service.engine, event.id)
        assert {str(row.id) for row in rows} == set(positions) | {
            a["id"] for a in answers if a["status"] == CONFIRMED
        }
        assert [row.status for row in rows] == [CONFIRMED] * SEATS + [WAITLISTED] * waiting
        line = [(str(row.id), position) for position, row in enumerate(rows[SEATS:], start=1)]
        assert [(row_id, positions[row_id]) for row_id, _ in line] == line
        stored = await assert_counters_match_rows(service.engine, event.id)
        assert (stored.registered_count, stored.waitlist_count) == (SEATS, waiting)
        # Both replicas show the same event and the same line.
        for client in clients:
            shown = await client.get(f"/api/v1/events/{event.id}")
            listed = await client.get(
                registration_url(event),
                params={"status": "WAITLISTED", "size": 100},
                headers=owner.headers,
            )
            assert shown.status_code == listed.status_code == 200
            body = shown.json()
            assert (body["spots_left"], body["registered_count"], body["waitlist_count"]) == (
                0,
                SEATS,
                waiting,
            )
            assert [(i["id"], i["waitlist_position"]) for i in listed.json()["items"]] == line


class TestLogout:
    async def test_a_token_logged_out_on_one_replica_is_refused_by_the_other_at_once(
        self, service: Service, clients: Clients
    ) -> None:
        a, b = clients
        [account] = await scenario(service, "logout").accounts(1)
        login = await a.post(LOGIN, data={"username": account.email, "password": DEFAULT_PASSWORD})
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

        before = await b.get(ME, headers=headers)
        logout = await a.post("/api/v1/auth/logout", headers=headers)
        after = [await b.get(ME, headers=headers), await a.get(ME, headers=headers)]

        assert (before.status_code, before.json()["id"]) == (200, str(account.user.id))
        assert logout.status_code == 204
        assert [(r.status_code, r.json(), r.headers["WWW-Authenticate"]) for r in after] == [
            (401, {"detail": "UNAUTHORIZED"}, "Bearer")
        ] * REPLICAS


class TestLockout:
    async def test_wrong_passwords_spread_over_both_replicas_lock_the_account(
        self, service: Service, clients: Clients
    ) -> None:
        [account] = await scenario(service, "lockout").accounts(1)
        wrong = {"username": account.email, "password": WRONG_PASSWORD}
        right = {"username": account.email, "password": DEFAULT_PASSWORD}

        # A, B, A, B, A: neither replica alone sees MAX_LOGIN_ATTEMPTS of them.
        guesses = [
            await clients[i % REPLICAS].post(LOGIN, data=wrong) for i in range(MAX_LOGIN_ATTEMPTS)
        ]
        refused = [await client.post(LOGIN, data=right) for client in clients]

        assert [(r.status_code, r.json()) for r in guesses] == [
            (400, {"detail": "LOGIN_BAD_CREDENTIALS"})
        ] * MAX_LOGIN_ATTEMPTS
        assert [(r.status_code, r.json()) for r in refused] == [
            (400, {"detail": "LOGIN_ACCOUNT_LOCKED"})
        ] * REPLICAS
        [stored] = await users_with_email(service.engine, account.email)
        assert stored.failed_login_count == MAX_LOGIN_ATTEMPTS
        assert stored.locked_until is not None
        remaining = stored.locked_until - clock.now()
        lockout = timedelta(minutes=LOCKOUT_MINUTES)
        assert lockout - timedelta(minutes=1) < remaining <= lockout
        # The owner is told once.
        await settled(service)
        assert [(m["To"], m["Subject"]) for m in service.mailbox.to(account.email)] == [
            (account.email, SUBJECTS["account_locked"])
        ]


async def verification_token(mailbox: Mailbox, email: str) -> str:
    """The token of the verification mail sent to `email`, once it has arrived."""

    async def arrived() -> bool:
        return bool(mailbox.to(email))

    await poll(arrived, SETTLE_SECONDS, lambda: f"no verification mail to {email}")
    [token] = VERIFY_LINK.findall(Mailbox.text(mailbox.to(email)[0]))
    return str(token)


async def queue_reminder_job(engine: AsyncEngine) -> int:
    """One send_event_reminders job, queued and committed as a worker's schedule does."""
    async with AsyncSession(engine) as session:
        [job_id] = await (await queries_for(session)).enqueue(SEND_REMINDERS, None)
        await session.commit()
    return int(job_id)


async def job_log(engine: AsyncEngine, job_ids: list[int]) -> dict[int, list[str]]:
    """Each job's statuses in pgqueuer's log, in order."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text(
                "SELECT job_id, status::text FROM pgqueuer_log WHERE job_id = ANY(:ids) ORDER BY id"
            ),
            {"ids": job_ids},
        )
        found: dict[int, list[str]] = {}
        for job_id, status in rows:
            found.setdefault(job_id, []).append(status)
    return found


RAN_ONCE = ["queued", "picked", "successful"]


class TestRemindersAndMail:
    async def test_each_reminder_and_each_mail_goes_out_once_while_both_workers_race(
        self, service: Service, clients: Clients
    ) -> None:
        people = scenario(service, "remind")
        [owner] = await people.accounts(1, role=UserRole.MANAGER)
        # A week ahead: no reminder is due while the registrants sign up.
        event, _ = await people.event(owner, REMINDED)
        emails = [f"{people.prefix}{i:02d}@example.com" for i in range(REMINDED)]

        # Each step alternates between the replicas, and each person's next step goes to the
        # other replica than the last.
        signups = await all_at_once(
            [
                clients[i % REPLICAS].post(
                    "/api/v1/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
                )
                for i, email in enumerate(emails)
            ]
        )
        assert statuses(signups) == {201: REMINDED}, [r.text for r in signups]
        tokens = [await verification_token(service.mailbox, email) for email in emails]
        verified = await all_at_once(
            [
                clients[(i + 1) % REPLICAS].post("/api/v1/auth/verify", json={"token": token})
                for i, token in enumerate(tokens)
            ]
        )
        assert [(r.status_code, r.json()["role"]) for r in verified] == [
            (200, "AUTHENTICATED")
        ] * REMINDED
        logins = await all_at_once(
            [
                clients[i % REPLICAS].post(
                    LOGIN, data={"username": email, "password": DEFAULT_PASSWORD}
                )
                for i, email in enumerate(emails)
            ]
        )
        assert statuses(logins) == {200: REMINDED}, [r.text for r in logins]
        registered = await all_at_once(
            [
                clients[(i + 1) % REPLICAS].post(
                    registration_url(event),
                    headers={"Authorization": f"Bearer {login.json()['access_token']}"},
                )
                for i, login in enumerate(logins)
            ]
        )
        assert [(r.status_code, r.json()["status"]) for r in registered] == [
            (201, CONFIRMED)
        ] * REMINDED

        # Three hours ahead: inside REMINDER_HOURS (24), the reminder is due.
        starts_at = clock.now() + timedelta(hours=3)
        async with AsyncSession(service.engine) as session:
            await session.execute(
                update(Event)
                .where(col(Event.id) == event.id)
                .values(starts_at=starts_at, ends_at=starts_at + timedelta(hours=2))
            )
            await session.commit()
        job_ids = await asyncio.gather(
            *(queue_reminder_job(service.engine) for _ in range(REMINDER_JOBS))
        )
        await settled(service)

        # Every job ran, once, and one of them claimed the event.
        assert await job_log(service.engine, job_ids) == dict.fromkeys(job_ids, RAN_ONCE)
        report_figure(
            f"SCALE-1 picked per worker: {REMINDER_JOBS} {SEND_REMINDERS} jobs"
            f" {await picks_per_worker(service.engine, SEND_REMINDERS, job_ids)}, {SEND_EMAIL}"
            f" jobs so far {await picks_per_worker(service.engine, SEND_EMAIL)}"
        )
        async with AsyncSession(service.engine) as session:
            marks = await session.execute(
                select(col(EventReminder.starts_at), col(EventReminder.hours_before)).where(
                    col(EventReminder.event_id) == event.id
                )
            )
            assert [tuple(mark) for mark in marks] == [(starts_at, 24)]
        # Each registrant got each of their mails once.
        title = {"event": {"title": event.title}}
        expected = sorted(
            [
                SUBJECTS["verify_email"],
                subject("registration_confirmed", title),
                subject("event_reminder", {**title, "hours_before": 24}),
            ]
        )
        mailbox = service.mailbox
        assert {email: sorted(m["Subject"] for m in mailbox.to(email)) for email in emails} == (
            dict.fromkeys(emails, expected)
        )
        # And no mail of the whole module went out twice.
        message_ids = Counter(m["Message-ID"] for m in mailbox.messages)
        assert [mid for mid, count in message_ids.items() if count > 1] == []
        sent = Counter((m["To"], m["Subject"]) for m in mailbox.messages)
        assert [mail for mail, count in sent.items() if count > 1] == []


def next_hourly_run(after: datetime) -> datetime:
    """The token cleanup's next time by its cron ("17 * * * *") strictly after `after`."""
    at = after.replace(minute=TOKEN_CLEANUP_MINUTE, second=0, microsecond=0)
    return at if at > after else at + timedelta(hours=1)


@dataclass(frozen=True)
class CleanupRuns:
    """The token cleanup jobs queued since its schedule was made due and before the hourly time
    after the first of them (a job then is the next hour's), with their statuses in pgqueuer's
    log; and its schedule as stored."""

    jobs: dict[int, list[str]]
    window_end: datetime | None
    status: str
    next_run: datetime

    @property
    def over(self) -> bool:
        """The first job succeeded and the schedule that queued it is put back."""
        first = next(iter(self.jobs.values()), [])
        return "successful" in first and self.status == "queued"


async def cleanup_runs(engine: AsyncEngine, since: datetime) -> CleanupRuns:
    async with engine.connect() as connection:
        schedule = (
            await connection.execute(
                text("SELECT status::text, next_run FROM pgqueuer_schedules WHERE entrypoint = :n"),
                {"n": TOKEN_CLEANUP},
            )
        ).one()
        queued = (
            await connection.execute(
                text(
                    "SELECT job_id, created FROM pgqueuer_log WHERE entrypoint = :job"
                    " AND status = 'queued' AND created >= :since ORDER BY id"
                ),
                {"job": CLEANUP_TOKENS, "since": since},
            )
        ).all()
    window_end = next_hourly_run(queued[0].created) if queued else None
    job_ids = [row.job_id for row in queued if window_end and row.created < window_end]
    jobs = await job_log(engine, job_ids)
    return CleanupRuns(jobs, window_end, schedule.status, schedule.next_run)


class TestScheduledCleanup:
    async def test_the_token_cleanup_made_due_runs_once(self, service: Service) -> None:
        due = service.cleanup

        async def over() -> CleanupRuns | None:
            runs = await cleanup_runs(service.engine, due.due_at)
            return runs if runs.over else None

        runs = await poll(over, SCHEDULER_SECONDS, service.processes.logs)

        # One job, queued by one worker's scheduler and run once; the schedule waits for its
        # next hourly time.
        assert list(runs.jobs.values()) == [RAN_ONCE]
        report_figure(
            f"SCALE-1 picked per worker: the {CLEANUP_TOKENS} job"
            f" {await picks_per_worker(service.engine, CLEANUP_TOKENS, list(runs.jobs))}"
        )
        assert runs.window_end is not None
        assert runs.next_run >= runs.window_end
        assert runs.next_run.minute == TOKEN_CLEANUP_MINUTE
        async with service.engine.connect() as connection:
            remaining = await connection.scalars(
                text("SELECT token FROM accesstoken WHERE token = ANY(:tokens)"),
                {"tokens": [*due.expired, due.live]},
            )
            assert remaining.all() == [due.live]
