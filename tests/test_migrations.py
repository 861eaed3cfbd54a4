"""The Alembic history: it builds the schema the models describe, tears it down completely, builds
it again identically, and leaves no drift for `alembic check` to find.

Alembic runs its async env.py through asyncio.run: every Alembic call here runs in a worker thread
(asyncio.to_thread), away from the test's event loop.
"""

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Enum
from sqlalchemy.engine import make_url
from sqlmodel import SQLModel

import api.models  # noqa: F401  (every table on SQLModel.metadata)
from tests.conftest import TEST_DATABASE_URL, alembic_config
from tests.support import TestDatabaseServer

QUEUE_TABLES = {"pgqueuer", "pgqueuer_log", "pgqueuer_schedules", "pgqueuer_statistics"}
QUEUE_TYPES = {"pgqueuer_status"}

# A fingerprint of everything a migration can create in the public schema.
CATALOG = {
    "tables": """
        SELECT table_name FROM information_schema.tables
        WHERE table_schema = 'public' ORDER BY 1""",
    "columns": """
        SELECT table_name, column_name, data_type, character_maximum_length, is_nullable,
               column_default
        FROM information_schema.columns WHERE table_schema = 'public' ORDER BY 1, 2""",
    "indexes": """
        SELECT tablename, indexname, indexdef FROM pg_indexes
        WHERE schemaname = 'public' ORDER BY 1, 2""",
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""",
    "enums": """
        SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder)
        FROM pg_type t JOIN pg_enum e ON e.enumtypid = t.oid
        WHERE t.typnamespace = 'public'::regnamespace GROUP BY 1 ORDER BY 1""",
    "functions": """
        SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname FROM pg_trigger
        WHERE NOT tgisinternal ORDER BY 1, 2""",
    "sequences": """
        SELECT sequence_name FROM information_schema.sequences
        WHERE sequence_schema = 'public' ORDER BY 1""",
}


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def catalog(url: str) -> dict[str, list[tuple[Any, ...]]]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return {
            name: [tuple(row) for row in await connection.fetch(sql)]
            for name, sql in CATALOG.items()
        }
    finally:
        await connection.close()


async def versions(url: str) -> list[str]:
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        return [row[0] for row in await connection.fetch("SELECT version_num FROM alembic_version")]
    finally:
        await connection.close()


async def alembic(name: str, url: str, *args: str) -> None:
    await asyncio.to_thread(getattr(command, name), alembic_config(url), *args)


def script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config(TEST_DATABASE_URL))


def model_enum_names() -> set[str]:
    return {
        column.type.name
        for table in SQLModel.metadata.tables.values()
        for column in table.columns
        if isinstance(column.type, Enum) and column.type.name
    }


def drift(url: str) -> tuple[list[Any], dict[str, Any]]:
    """compare_metadata against the database, in the MigrationContext env.py configures itself
    (its include_object and compare_type), so the comparison is exactly `alembic check`'s."""
    config = alembic_config(url)
    script = ScriptDirectory.from_config(config)
    found: list[Any] = []
    options: dict[str, Any] = {}

    def compare(_heads: Any, context: MigrationContext) -> list[Any]:
        options.update(context.opts)
        found.extend(compare_metadata(context, context.opts["target_metadata"]))
        return []  # no migration step: only compare

    with EnvironmentContext(config, script, fn=compare):
        script.run_env()
    return found, options


@pytest.fixture
async def scratch_url(db_server: TestDatabaseServer) -> AsyncIterator[str]:
    """A fresh, empty database of its own, dropped afterwards."""
    name = await asyncio.to_thread(db_server.create_database, "event_manager_migr")
    try:
        yield db_server.url_for(name)
    finally:
        await asyncio.to_thread(db_server.drop_database, name)


class TestUpgrade:
    async def test_head_creates_every_model_table_and_the_queue(self, scratch_url: str) -> None:
        await alembic("upgrade", scratch_url, "head")
        schema = await catalog(scratch_url)
        tables = {table for (table,) in schema["tables"]}
        assert tables == set(SQLModel.metadata.tables) | QUEUE_TABLES | {"alembic_version"}
        assert {name for name, _ in schema["enums"]} == model_enum_names() | QUEUE_TYPES
        assert await versions(scratch_url) == [script_directory().get_current_head()]

    async def test_user_email_and_nickname_are_unique_case_insensitively(
        self, scratch_url: str
    ) -> None:
        await alembic("upgrade", scratch_url, "head")
        indexes = {
            name: definition for _, name, definition in (await catalog(scratch_url))["indexes"]
        }
        assert indexes["uq_user_email_lower"] == (
            'CREATE UNIQUE INDEX uq_user_email_lower ON public."user" USING btree '
            "(lower((email)::text))"
        )
        assert indexes["uq_user_nickname_lower"] == (
            'CREATE UNIQUE INDEX uq_user_nickname_lower ON public."user" USING btree '
            "(lower((nickname)::text))"
        )


class TestDowngrade:
    async def test_base_leaves_only_an_empty_alembic_version(self, scratch_url: str) -> None:
        await alembic("upgrade", scratch_url, "head")
        await alembic("downgrade", scratch_url, "base")
        schema = await catalog(scratch_url)
        assert schema["tables"] == [("alembic_version",)]
        assert schema["enums"] == []
        assert schema["functions"] == []
        assert schema["triggers"] == []
        assert schema["sequences"] == []
        assert [name for _, name, _ in schema["indexes"]] == ["alembic_version_pkc"]
        assert await versions(scratch_url) == []

    async def test_upgrade_again_rebuilds_the_same_schema(self, scratch_url: str) -> None:
        await alembic("upgrade", scratch_url, "head")
        first = await catalog(scratch_url)
        await alembic("downgrade", scratch_url, "base")
        await alembic("upgrade", scratch_url, "head")
        assert await catalog(scratch_url) == first
        assert await versions(scratch_url) == [script_directory().get_current_head()]

    async def test_every_revision_steps_down_and_up_again(self, scratch_url: str) -> None:
        revisions = list(reversed(list(script_directory().walk_revisions())))
        assert revisions, "no migration found"
        for revision in revisions:
            await alembic("upgrade", scratch_url, revision.revision)
            built = await catalog(scratch_url)
            await alembic("downgrade", scratch_url, "-1")
            assert await versions(scratch_url) == (
                [] if revision.down_revision is None else [str(revision.down_revision)]
            )
            await alembic("upgrade", scratch_url, revision.revision)
            assert await catalog(scratch_url) == built


class TestNoDrift:
    async def test_models_match_the_migrated_test_database(self) -> None:
        differences, options = await asyncio.to_thread(drift, TEST_DATABASE_URL)
        assert differences == []
        # The comparison ran with env.py's own settings, not a lenient default.
        assert options["compare_type"] is True
        assert options["include_object"] is not None
        assert options["target_metadata"] is SQLModel.metadata

    async def test_only_the_queue_tables_are_left_out_of_the_comparison(self) -> None:
        _, options = await asyncio.to_thread(drift, TEST_DATABASE_URL)
        include_object = options["include_object"]
        schema = await catalog(TEST_DATABASE_URL)
        excluded = {
            table
            for (table,) in schema["tables"]
            if not include_object(None, table, "table", True, None)
        }
        assert excluded == QUEUE_TABLES

    async def test_alembic_check_passes(self) -> None:
        await alembic("check", TEST_DATABASE_URL)
