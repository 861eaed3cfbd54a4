"""The suite never touches a developer's database.

Everything the tests run (the in-process app, the server processes, Alembic) is pointed at a
throwaway database created for this run, whatever DATABASE_URL the developer's environment or
`.env` names, and the embedded development server under .data/ is never started.
scripts/check_dev_db_survives.sh checks the same property end to end around `make test`.
"""

import os
import re
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.engine import make_url

from api import embedded
from api.config import Settings, settings
from api.db import get_database_url, get_engine, to_asyncpg_url
from tests.conftest import TEST_DATABASE_URL, TEST_DB_NAME

THROWAWAY_NAME = re.compile(r"event_manager_test_[0-9a-f]{12}")
DEVELOPER_URL = "postgresql+asyncpg://dev:dev@db.example.internal:5432/event_manager"


class TestSuiteDatabase:
    def test_is_a_throwaway_database_of_this_run(self) -> None:
        assert THROWAWAY_NAME.fullmatch(TEST_DB_NAME)
        assert make_url(TEST_DATABASE_URL).database == TEST_DB_NAME

    def test_app_settings_name_it(self) -> None:
        assert settings.DATABASE_URL == TEST_DATABASE_URL
        assert get_database_url() == to_asyncpg_url(TEST_DATABASE_URL)

    async def test_app_engine_is_connected_to_it(self) -> None:
        async with get_engine().connect() as connection:
            assert await connection.scalar(text("SELECT current_database()")) == TEST_DB_NAME

    def test_server_processes_inherit_it(self) -> None:
        # run_server starts uvicorn with this process's environment plus the test's overrides.
        assert os.environ["DATABASE_URL"] == TEST_DATABASE_URL

    def test_wins_over_a_developer_dotenv(self, tmp_path: Path) -> None:
        dotenv = tmp_path / ".env"
        dotenv.write_text(f"DATABASE_URL={DEVELOPER_URL}\nDB_POOL_SIZE=7\n")
        loaded = Settings(_env_file=dotenv)
        assert loaded.DB_POOL_SIZE == 7  # the file was read...
        assert loaded.DATABASE_URL == TEST_DATABASE_URL  # ...and its database ignored

    def test_embedded_development_server_is_not_started(self) -> None:
        assert embedded._server is None
        assert str(settings.DATA_DIR) not in TEST_DATABASE_URL
