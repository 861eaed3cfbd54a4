"""Checks of the deployment and developer files at the top of the repository.

compose.yaml, Containerfile, .env.example, .ci/run, README.md and Makefile are read as text (or
YAML); nothing is built or started, so these tests need neither Docker nor a database.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

# The settings listed in the "Operations" section of the HTTP contract (API.md).
OPERATIONS_SETTINGS = frozenset(
    {
        "DATABASE_URL",
        "SECRET_KEY",
        "PUBLIC_BASE_URL",
        "SMTP_HOST",
        "SMTP_PORT",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "SMTP_STARTTLS",
        "MAIL_FROM",
        "ACCESS_TOKEN_EXPIRE_MINUTES",
        "MAX_LOGIN_ATTEMPTS",
        "LOCKOUT_MINUTES",
        "AUTH_RATE_LIMIT",
        "FIRST_ADMIN_EMAIL",
        "FIRST_ADMIN_PASSWORD",
    }
)
# Settings of the application beyond the contract's list.
EXTRA_SETTINGS = frozenset(
    {
        "ENVIRONMENT",
        "TEST_DATABASE_URL",
        "LOG_LEVEL",
        "RUN_WORKER_IN_PROCESS",
        "VERIFICATION_TOKEN_EXPIRE_MINUTES",
        "RESET_TOKEN_EXPIRE_MINUTES",
    }
)
# Where the contract may be found: in the repository, or beside it on a development machine.
SETTING_LINE = re.compile(r"^(?P<comment>#\s?)?(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
HEALTH_URL = "http://127.0.0.1:8000/health"


# --- helpers ----------------------------------------------------------------------------------


def read(name: str) -> str:
    return (ROOT / name).read_text(encoding="utf-8")


def env_example() -> dict[str, tuple[str, bool]]:
    """Settings of .env.example: name -> (value, commented out)."""
    settings: dict[str, tuple[str, bool]] = {}
    for line in read(".env.example").splitlines():
        match = SETTING_LINE.match(line)
        if match:
            name = match["name"]
            assert name not in settings, f"{name} appears twice in .env.example"
            settings[name] = (match["value"], match["comment"] is not None)
    return settings


def compose() -> dict[str, Any]:
    data = yaml.safe_load(read("compose.yaml"))
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert isinstance(services, dict)
    svc = services[name]
    assert isinstance(svc, dict)
    return svc


def environment(svc: dict[str, Any]) -> dict[str, str]:
    """A service's environment, whether written as a mapping or as a list of NAME=value."""
    env = svc.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    assert isinstance(env, dict)
    return {str(key): str(value) for key, value in env.items()}


def command_words(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(word) for word in command]


def healthcheck_text(svc: dict[str, Any]) -> str:
    test = svc["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(str(word) for word in test)


def containerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Containerfile; continuations joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in read("Containerfile").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        full = pending + line
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Containerfile ends inside a continued line"
    return instructions


def final_stage() -> list[tuple[str, str]]:
    instructions = containerfile()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def make_recipe(target: str) -> list[str]:
    """The recipe lines (tab-indented, continuations joined) of a Makefile rule."""
    lines = read("Makefile").splitlines()
    rule = re.compile(rf"^{re.escape(target)}:(?!=)")
    starts = [i for i, line in enumerate(lines) if rule.match(line) and "export " not in line]
    assert len(starts) == 1, f"expected one rule for {target!r}, found {len(starts)}"
    recipe: list[str] = []
    current = ""
    for line in lines[starts[0] + 1 :]:
        if not line.startswith("\t"):
            break
        part = line.strip()
        if part.endswith("\\"):
            current += part[:-1].strip() + " "
            continue
        recipe.append(current + part)
        current = ""
    return recipe


# --- compose.yaml ----------------------------------------------------------------------------


def test_compose_defines_the_four_services() -> None:
    assert set(compose()["services"]) == {"db", "api", "worker", "mailpit"}


def test_compose_db_is_postgres_15_with_a_pg_isready_healthcheck() -> None:
    db = service("db")
    assert db["image"] == "postgres:15"
    assert environment(db)["POSTGRES_DB"] == "event_manager"
    check = healthcheck_text(db)
    assert "pg_isready" in check
    assert "-U postgres" in check
    assert "-d event_manager" in check


def test_compose_db_keeps_its_data_in_a_named_volume() -> None:
    volumes = service("db")["volumes"]
    assert volumes == ["db-data:/var/lib/postgresql/data"]
    assert "db-data" in compose()["volumes"]


def test_compose_api_waits_for_a_healthy_db() -> None:
    assert service("api")["depends_on"]["db"] == {"condition": "service_healthy"}


def test_compose_api_environment_has_the_required_settings() -> None:
    env = environment(service("api"))
    assert {"DATABASE_URL", "SECRET_KEY", "SMTP_HOST", "SMTP_PORT", "PUBLIC_BASE_URL"} <= set(env)
    assert env["DATABASE_URL"] == "postgresql+asyncpg://postgres:postgres@db:5432/event_manager"
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?")
    assert env["ENVIRONMENT"] == "production"
    assert env["SMTP_HOST"] == "mailpit"
    assert env["SMTP_PORT"] == "1025"
    assert env["SMTP_STARTTLS"] == "false"
    assert env["RUN_WORKER_IN_PROCESS"] == "false"


@pytest.mark.parametrize("name", ["api", "worker"])
def test_compose_environment_names_are_settings_of_env_example(name: str) -> None:
    unknown = set(environment(service(name))) - set(env_example())
    assert unknown == set()


def test_compose_api_publishes_port_8000_and_checks_health() -> None:
    api = service("api")
    assert api["build"] == {"context": ".", "dockerfile": "Containerfile"}
    assert "8000:8000" in [str(port) for port in api["ports"]]
    assert HEALTH_URL in healthcheck_text(api)


def test_compose_worker_runs_the_worker_command_from_the_api_image() -> None:
    worker = service("worker")
    assert command_words(worker["command"]) == ["event-manager", "worker"]
    assert worker["image"] == service("api")["image"]
    assert worker["depends_on"]["db"] == {"condition": "service_healthy"}
    assert worker["depends_on"]["api"]["condition"] in {"service_started", "service_healthy"}


def test_compose_mailpit_exposes_smtp_and_ui() -> None:
    mailpit = service("mailpit")
    assert str(mailpit["image"]).startswith("axllent/mailpit")
    assert {"1025:1025", "8025:8025"} <= {str(port) for port in mailpit["ports"]}


# --- Containerfile ---------------------------------------------------------------------------


def test_containerfile_is_multi_stage_on_python_3_11_slim() -> None:
    bases = [args.split()[0] for keyword, args in containerfile() if keyword == "FROM"]
    assert len(bases) >= 2
    assert set(bases) == {"python:3.11-slim"}


def test_containerfile_installs_the_locked_dependencies() -> None:
    instructions = containerfile()
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert "pip install uv==0.13.8" in runs
    assert any("uv.lock" in args.split() for args in copies)
    syncs = [args for args in runs if args.startswith("uv sync")]
    assert syncs
    assert all("--frozen" in args.split() and "--no-dev" in args.split() for args in syncs)


def test_containerfile_runs_as_a_non_root_user() -> None:
    users = [args for keyword, args in final_stage() if keyword == "USER"]
    assert users == ["app"]


def test_containerfile_exposes_8000_and_checks_health() -> None:
    stage = final_stage()
    assert ("EXPOSE", "8000") in stage
    env_words = [word for keyword, args in stage if keyword == "ENV" for word in args.split()]
    assert "PATH=/app/.venv/bin:$PATH" in env_words
    healthchecks = [args for keyword, args in stage if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert " CMD " in f" {healthchecks[0]} "
    assert HEALTH_URL in healthchecks[0]


def test_containerfile_migrates_then_serves() -> None:
    cmds = [args for keyword, args in final_stage() if keyword == "CMD"]
    assert len(cmds) == 1
    argv = json.loads(cmds[0])
    assert argv[:2] == ["sh", "-c"]
    script = argv[2]
    migrate, serve = script.split("&&")
    assert migrate.split() == ["event-manager", "migrate"]
    assert serve.split() == [
        "exec",
        "event-manager",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
    ]


# --- .env.example ----------------------------------------------------------------------------


def test_env_example_names_every_setting() -> None:
    assert set(env_example()) >= OPERATIONS_SETTINGS | EXTRA_SETTINGS


def test_env_example_settings_are_fields_of_the_settings_class() -> None:
    from api.config import Settings

    # TEST_DATABASE_URL is read by the test suite only.
    assert set(env_example()) - {"TEST_DATABASE_URL"} <= set(Settings.model_fields)


def test_env_example_defaults() -> None:
    settings = env_example()
    active = {name: value for name, (value, commented) in settings.items() if not commented}
    assert (
        active.items()
        >= {
            "ENVIRONMENT": "development",
            "LOG_LEVEL": "INFO",
            "SECRET_KEY": "changethis",
            "ACCESS_TOKEN_EXPIRE_MINUTES": "60",
            "VERIFICATION_TOKEN_EXPIRE_MINUTES": "1440",
            "RESET_TOKEN_EXPIRE_MINUTES": "60",
            "MAX_LOGIN_ATTEMPTS": "5",
            "LOCKOUT_MINUTES": "15",
            "AUTH_RATE_LIMIT": "10/minute",
            "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
            "SMTP_PORT": "587",
            "SMTP_STARTTLS": "true",
            "MAIL_FROM": "no-reply@event-manager.local",
            "RUN_WORKER_IN_PROCESS": "true",
        }.items()
    )
    # Unset by default: the embedded PostgreSQL, log-printed mail, no first admin.
    assert {name for name, (_, commented) in settings.items() if commented} >= {
        "DATABASE_URL",
        "TEST_DATABASE_URL",
        "SMTP_HOST",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "FIRST_ADMIN_EMAIL",
        "FIRST_ADMIN_PASSWORD",
    }


def test_env_example_explains_every_setting() -> None:
    lines = read(".env.example").splitlines()
    for index, line in enumerate(lines):
        match = SETTING_LINE.match(line)
        if not match:
            continue
        above = index - 1
        while above >= 0 and SETTING_LINE.match(lines[above]):
            above -= 1
        assert above >= 0, f"{match['name']} has no comment"
        assert lines[above].startswith("# "), f"{match['name']} has no comment"


# --- .ci/run ---------------------------------------------------------------------------------


def test_ci_run_is_an_executable_bash_script() -> None:
    path = ROOT / ".ci" / "run"
    assert os.access(path, os.X_OK)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] in {"#!/usr/bin/env bash", "#!/bin/bash"}
    first_command = next(line for line in lines[1:] if line.strip() and not line.startswith("#"))
    assert first_command == "set -euo pipefail"


def test_ci_run_runs_make_test_then_make_lint() -> None:
    lines = [line.strip() for line in read(".ci/run").splitlines()]
    assert lines.count("make test") == 1
    assert lines.count("make lint") == 1
    assert lines.index("make test") < lines.index("make lint")


# --- README.md -------------------------------------------------------------------------------


def test_readme_opens_with_make_run_and_make_test() -> None:
    text = read("README.md")
    first_block = re.search(r"^```[^\n]*\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    assert first_block is not None
    assert first_block.start() < text.index("\n## ")
    commands = [line.split("#", 1)[0].strip() for line in first_block[1].splitlines()]
    assert commands == ["make run", "make test"]


# --- Makefile --------------------------------------------------------------------------------


def make_dry_run(target: str) -> list[str]:
    """The commands `make -n <target>` would run (variables expanded)."""
    assert shutil.which("make") is not None, "GNU make is needed: the Makefile is the entry point"
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "MAKELEVEL"}}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", target],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.splitlines()


def test_makefile_test_target_enforces_coverage() -> None:
    recipe = make_recipe("test")
    assert recipe == ["$(UV_RUN) pytest --cov=api --cov-report=term-missing --cov-fail-under=90"]
    assert "UV_RUN := $(UV) run --frozen" in read("Makefile").splitlines()
    commands = make_dry_run("test")
    assert commands[-1].endswith(
        "uv run --frozen pytest --cov=api --cov-report=term-missing --cov-fail-under=90"
    )
    assert commands[-2].endswith("uv sync --frozen")


def test_makefile_install_syncs_from_the_lock() -> None:
    assert make_recipe("install") == ["$(UV) sync --frozen"]


def test_makefile_lint_runs_ruff_and_mypy() -> None:
    assert make_recipe("lint") == [
        "$(UV_RUN) ruff check .",
        "$(UV_RUN) ruff format --check .",
        "$(UV_RUN) mypy api tests bench",
    ]


def test_makefile_clean_removes_caches_but_never_the_data() -> None:
    recipe = make_recipe("clean")
    removed = {word for line in recipe if line.startswith("rm ") for word in line.split()[2:]}
    assert {".pytest_cache", ".mypy_cache", ".ruff_cache", "htmlcov", ".coverage"} <= removed
    assert not {word for word in removed if word.strip("./").startswith(("data", "venv", "tools"))}
    finds = [line for line in recipe if line.startswith("find ")]
    assert all("-path ./.data -prune" in line for line in finds)
