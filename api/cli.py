"""The `event-manager` command line."""

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

if TYPE_CHECKING:
    from api.users.models import User

app = typer.Typer(
    help="event-manager: serve the API, run migrations and jobs, manage admins.",
    epilog="Example: event-manager serve --workers 2   (then open http://127.0.0.1:8000/docs)",
)
console = Console()
err_console = Console(stderr=True)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"event-manager {version('event-manager')}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """event-manager: serve the API, run migrations and jobs, manage admins."""


def _alembic_config() -> "object":
    from alembic.config import Config

    from api.config import PROJECT_ROOT

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False  # our handler and format (api.logging)
    return config


@app.command(epilog="Example: event-manager migrate   (or: event-manager migrate <revision>)")
def migrate(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply database migrations (alembic upgrade head), on WORKER_DATABASE_URL when it is set."""
    from alembic import command

    from api.db import get_worker_database_url
    from api.logging import configure_logging

    configure_logging()
    # The direct URL (migrations/env.py): this starts the embedded server first when no URL is
    # set, and stops here when DB_PGBOUNCER has no direct URL beside it.
    get_worker_database_url()
    command.upgrade(_alembic_config(), revision)  # type: ignore[arg-type]
    console.print(f"[green]Database migrated to {revision}.[/green]")


@app.command(epilog="Example: event-manager serve --host 0.0.0.0 --port 8000 --workers 2")
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Worker processes [default: WEB_CONCURRENCY]")
    ] = None,
    worker: Annotated[
        bool | None,
        typer.Option(
            "--worker/--no-worker",
            help="Run the mail/job worker in-process [default: RUN_WORKER_IN_PROCESS]",
        ),
    ] = None,
    migrations: Annotated[
        bool | None,
        typer.Option(
            "--migrate/--no-migrate",
            help="Apply migrations before serving [default: MIGRATE_ON_START]",
        ),
    ] = None,
) -> None:
    """Serve the API (starting the embedded PostgreSQL when DATABASE_URL is unset).

    SIGTERM first drains: /ready answers 503 for SHUTDOWN_DRAIN_SECONDS while requests are still
    served, so that a load balancer moves away. Then (or at once on Ctrl-C) the server stops
    accepting connections, lets in-flight requests and the in-process worker's running job
    finish (up to SHUTDOWN_TIMEOUT_SECONDS), and exits.
    """
    import uvicorn

    from api import serving
    from api.config import settings
    from api.db import get_database_url, get_worker_database_url
    from api.logging import configure_logging, logging_config
    from api.testing import service as testing_service

    configure_logging()
    url = get_database_url()
    run_worker = settings.RUN_WORKER_IN_PROCESS if worker is None else worker
    migrating = settings.MIGRATE_ON_START if migrations is None else migrations
    # Worker processes attach to the same database (embedded or not) through the environment.
    os.environ["DATABASE_URL"] = url
    # The direct URL, for those that LISTEN (the job worker, the test clock) or migrate: checked
    # here, before any process starts, so that a pooler without it stops the command with the
    # reason rather than each worker process failing at startup.
    if settings.WORKER_DATABASE_URL or run_worker or migrating or testing_service.is_enabled():
        os.environ["WORKER_DATABASE_URL"] = get_worker_database_url()
    os.environ["RUN_WORKER_IN_PROCESS"] = "true" if run_worker else "false"
    # One worker process is this one, whose settings were read already: they must agree too.
    settings.RUN_WORKER_IN_PROCESS = run_worker
    if migrating:
        migrate("head")
    processes = workers or settings.WEB_CONCURRENCY
    if processes > 1:
        _warn_of_a_throttle_per_process(processes)
    metrics_dir = None
    if processes > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Each worker writes its metrics there; /metrics then adds them all up.
        metrics_dir = tempfile.TemporaryDirectory(prefix="event-manager-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name
    console.print(f"[bold]event-manager[/bold] on http://{host}:{port}  (docs: /docs)")
    try:
        config = uvicorn.Config(
            "api.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=processes,
            # X-Forwarded-For and -Proto are believed from these peers only.
            proxy_headers=True,
            forwarded_allow_ips=settings.FORWARDED_ALLOW_IPS,
            # api.observability writes the access log (route template, request id).
            access_log=False,
            log_config=logging_config(),
            log_level=settings.LOG_LEVEL.lower(),
            timeout_graceful_shutdown=settings.SHUTDOWN_TIMEOUT_SECONDS,
        )
        serving.run(config)
    finally:
        if metrics_dir is not None:
            metrics_dir.cleanup()


def _warn_of_a_throttle_per_process(processes: int) -> None:
    """With memory:// every worker process counts AUTH_RATE_LIMIT on its own."""
    import structlog

    from api.config import settings

    if not settings.rate_limit_enabled or settings.RATE_LIMIT_STORAGE_URL != "memory://":
        return
    structlog.get_logger("api.cli").warning(
        "rate_limit_per_process",
        workers=processes,
        storage=settings.RATE_LIMIT_STORAGE_URL,
    )
    console.print(
        f"[yellow]Warning: RATE_LIMIT_STORAGE_URL is memory://, so each of the {processes} "
        f"worker processes counts AUTH_RATE_LIMIT on its own: a client gets up to {processes} "
        "times the limit. Point it at a Redis (redis://host:6379/0) to share one budget."
        "[/yellow]",
        soft_wrap=True,  # one line, whatever the terminal's width
    )


@app.command(
    "create-admin",
    epilog="Example: event-manager create-admin --email admin@example.com (asks for the password)",
)
def create_admin(
    email: Annotated[str, typer.Option(prompt=True, help="The admin's email")],
    password: Annotated[
        str,
        typer.Option(
            prompt=True,
            hide_input=True,
            confirmation_prompt=True,
            help="The password; asked for (hidden, twice) when not given, which keeps it out of "
            "the shell history",
        ),
    ],
) -> None:
    """Create a verified ADMIN account (or promote an existing one)."""
    from fastapi_users.exceptions import InvalidPasswordException

    from api.db import dispose_engine
    from api.users.bootstrap import create_admin as create

    async def run() -> "tuple[User, bool]":
        try:
            return await create(email, password)
        finally:
            await dispose_engine()

    try:
        user, created = asyncio.run(run())
    except InvalidPasswordException as e:
        console.print(f"[red]Password refused: {e.reason}[/red]")
        raise typer.Exit(code=1) from e
    verb = "Created" if created else "Promoted"
    console.print(f"[green]{verb} admin {user.email} ({user.id}).[/green]")


@app.command(
    "seed-demo",
    epilog="Example: event-manager seed-demo --users 100 --events 40 --seed 7",
)
def seed_demo(
    users: Annotated[int, typer.Option(min=0, help="Verified users to add")] = 40,
    managers: Annotated[int, typer.Option(min=0, help="Managers to add")] = 5,
    events: Annotated[int, typer.Option(min=0, help="Events to add")] = 30,
    registrations: Annotated[
        int | None,
        typer.Option(min=0, help="About this many registrations (default: ~12 per user)"),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed of the fake data")] = 42,
) -> None:
    """Add fake users, events and registrations for a demo (run `migrate` first)."""
    from rich.progress import Progress
    from sqlalchemy.exc import ProgrammingError

    from api.demo import seed_database, summary_table

    # Redrawn when the seed reports, with no refresh thread; shown only on a terminal.
    with Progress(
        console=console, transient=True, auto_refresh=False, disable=not console.is_terminal
    ) as progress:
        task = progress.add_task("Seeding the demo data", total=events or None)
        # seed_database runs on an engine of its own, which it disposes of.
        seeding = seed_database(
            users=users,
            managers=managers,
            events=events,
            registrations=registrations,
            seed=seed,
            on_progress=lambda done: progress.update(task, completed=done, refresh=True),
        )
        try:
            summary = asyncio.run(seeding)
        except ProgrammingError as e:
            progress.stop()  # the bar is transient: the message stays alone
            console.print(f"[red]Seeding failed (has `event-manager migrate` run?): {e.orig}[/red]")
            raise typer.Exit(code=1) from e
    console.print(summary_table(summary))
    console.print(
        f"[green]Log in as {summary.admin_email} or any demo user with the password "
        f"{summary.password}[/green]"
    )


@app.command(epilog="Example: event-manager openapi --output openapi.json")
def openapi(
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="File to write [default: standard output]"),
    ] = None,
) -> None:
    """Write the OpenAPI document the service serves at /openapi.json (for client generators)."""
    from api.main import create_app

    document = json.dumps(create_app().openapi(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(document)
        return
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(document, encoding="utf-8")
    console.print(f"[green]Wrote the OpenAPI document to {output}.[/green]")


@app.command(epilog="Example: event-manager worker   (beside: event-manager serve --no-worker)")
def worker() -> None:
    """Run the durable job worker (mail delivery, cleanup) until SIGINT/SIGTERM."""
    from api.logging import configure_logging
    from api.worker import run_forever

    configure_logging()
    asyncio.run(run_forever())


def main() -> None:
    """Entry point: settings are checked first, so a bad one is named, not a traceback."""
    try:
        from api.config import settings  # noqa: F401 - validates the environment and .env
    except ValidationError as e:
        # Escaped: a message may hold brackets ("redis://host[:port]") that are not markup.
        err_console.print(f"[red]Invalid settings:[/red] {escape(str(e))}", soft_wrap=True)
        raise SystemExit(2) from None
    from api.db import DirectUrlMissing

    try:
        app()
    except DirectUrlMissing as e:
        # Settings that only conflict for the command run: named as the others are.
        err_console.print(f"[red]Invalid settings:[/red] {escape(str(e))}", soft_wrap=True)
        raise SystemExit(2) from None


if __name__ == "__main__":
    main()
