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

if TYPE_CHECKING:
    from api.users.models import User

app = typer.Typer(help="event-manager: serve the API, run migrations and jobs, manage admins.")
console = Console()
err_console = Console(stderr=True)


def _alembic_config() -> "object":
    from alembic.config import Config

    from api.config import PROJECT_ROOT

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["configure_logger"] = False  # our handler and format (api.logging)
    return config


@app.command()
def migrate(revision: Annotated[str, typer.Argument()] = "head") -> None:
    """Apply database migrations (alembic upgrade head)."""
    from alembic import command

    from api.db import get_database_url
    from api.logging import configure_logging

    configure_logging()
    get_database_url()  # starts the embedded server first when DATABASE_URL is unset
    command.upgrade(_alembic_config(), revision)  # type: ignore[arg-type]
    console.print(f"[green]Database migrated to {revision}.[/green]")


@app.command()
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

    SIGTERM or Ctrl-C stops accepting connections, lets in-flight requests and the in-process
    worker's running job finish (up to SHUTDOWN_TIMEOUT_SECONDS), then exits.
    """
    import uvicorn

    from api.config import settings
    from api.db import get_database_url
    from api.logging import configure_logging, logging_config

    configure_logging()
    url = get_database_url()
    run_worker = settings.RUN_WORKER_IN_PROCESS if worker is None else worker
    # Worker processes attach to the same database (embedded or not) through the environment.
    os.environ["DATABASE_URL"] = url
    os.environ["RUN_WORKER_IN_PROCESS"] = "true" if run_worker else "false"
    # One worker process is this one, whose settings were read already: they must agree too.
    settings.RUN_WORKER_IN_PROCESS = run_worker
    if settings.MIGRATE_ON_START if migrations is None else migrations:
        migrate("head")
    processes = workers or settings.WEB_CONCURRENCY
    metrics_dir = None
    if processes > 1 and "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        # Each worker writes its metrics there; /metrics then adds them all up.
        metrics_dir = tempfile.TemporaryDirectory(prefix="event-manager-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir.name
    console.print(f"[bold]event-manager[/bold] on http://{host}:{port}  (docs: /docs)")
    try:
        uvicorn.run(
            "api.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=processes,
            proxy_headers=True,
            # api.observability writes the access log (route template, request id).
            access_log=False,
            log_config=logging_config(),
            log_level=settings.LOG_LEVEL.lower(),
            timeout_graceful_shutdown=settings.SHUTDOWN_TIMEOUT_SECONDS,
        )
    finally:
        if metrics_dir is not None:
            metrics_dir.cleanup()


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(prompt=True, help="The admin's email")],
    password: Annotated[
        str, typer.Option(prompt=True, hide_input=True, confirmation_prompt=True, help="Password")
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


@app.command("seed-demo")
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
    from sqlalchemy.exc import ProgrammingError

    from api.demo import seed_database, summary_table

    # seed_database runs on an engine of its own, which it disposes of.
    seeding = seed_database(
        users=users, managers=managers, events=events, registrations=registrations, seed=seed
    )
    try:
        summary = asyncio.run(seeding)
    except ProgrammingError as e:
        console.print(f"[red]Seeding failed (has `event-manager migrate` run?): {e.orig}[/red]")
        raise typer.Exit(code=1) from e
    console.print(summary_table(summary))
    console.print(
        f"[green]Log in as {summary.admin_email} or any demo user with the password "
        f"{summary.password}[/green]"
    )


@app.command()
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


@app.command()
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
        err_console.print(f"[red]Invalid settings:[/red] {e}")
        raise SystemExit(2) from None
    app()


if __name__ == "__main__":
    main()
