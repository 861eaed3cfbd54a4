#!/usr/bin/env bash
# Proves that the test suite leaves the development database alone: a sentinel user is put into
# the development database, `make test` runs, and the sentinel must still be there afterwards.
#
# The development database is the one `make run` uses: DATABASE_URL (environment or .env) when
# set, else the embedded PostgreSQL under .data/. It is migrated first (event-manager migrate).
# The sentinel is removed again at the end, whatever happens.
#
# Usage: scripts/check_dev_db_survives.sh
#   TEST_COMMAND="..."  the command to run instead of `make test` (e.g. "make test" with options)
# Exit status: 0 the sentinel survived and the suite passed; 1 the sentinel is gone;
# otherwise the failing status of the test command (the sentinel survived).

set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TEST_COMMAND=${TEST_COMMAND:-make test}
SENTINEL="sentinel-$(date +%s)-${RANDOM}"
SENTINEL_EMAIL="${SENTINEL}@dev-db-check.invalid"

if [[ ! -x .venv/bin/python ]]; then
    make install
fi

# dev_db ACTION: runs ACTION (where | insert | count | delete) on the development database, with
# the application's own settings and engine (the embedded server is started when needed).
dev_db() {
    .venv/bin/python - "$1" "$SENTINEL" "$SENTINEL_EMAIL" <<'PY'
import asyncio
import sys
import uuid

from sqlalchemy import text
from sqlalchemy.engine import make_url

from api import embedded
from api.db import create_engine, get_database_url

action, nickname, email = sys.argv[1:4]


async def main() -> None:
    engine = create_engine(pool_size=2)
    try:
        async with engine.begin() as connection:
            if action == "where":
                print(make_url(get_database_url()).render_as_string(hide_password=True))
            elif action == "insert":
                await connection.execute(
                    text(
                        'INSERT INTO "user" (id, email, hashed_password, nickname, role,'
                        " is_active, is_superuser, is_verified, is_professional,"
                        " created_at, updated_at)"
                        " VALUES (:id, :email, 'not-a-hash', :nickname, 'ANONYMOUS',"
                        " false, false, false, false, now(), now())"
                    ),
                    {"id": uuid.uuid4(), "email": email, "nickname": nickname},
                )
            elif action == "count":
                count = await connection.scalar(
                    text('SELECT count(*) FROM "user" WHERE email = :email'), {"email": email}
                )
                print(count)
            elif action == "delete":
                await connection.execute(
                    text('DELETE FROM "user" WHERE email = :email'), {"email": email}
                )
            else:
                raise SystemExit(f"unknown action {action}")
    finally:
        await engine.dispose()
        embedded.stop()


asyncio.run(main())
PY
}

echo "==> development database: $(dev_db where)"
echo "==> migrating it"
.venv/bin/event-manager migrate

echo "==> inserting the sentinel user ${SENTINEL_EMAIL}"
dev_db insert
trap 'dev_db delete || echo "could not remove the sentinel ${SENTINEL_EMAIL}" >&2' EXIT
if [[ "$(dev_db count)" != "1" ]]; then
    echo "FAIL: the sentinel could not be read back before the tests" >&2
    exit 1
fi

echo "==> running: ${TEST_COMMAND}"
set +e
bash -c "${TEST_COMMAND}"
test_status=$?
set -e

echo "==> checking the sentinel"
if [[ "$(dev_db count)" != "1" ]]; then
    echo "FAIL: the sentinel user is gone: '${TEST_COMMAND}' touched the development database" >&2
    exit 1
fi
echo "OK: the sentinel survived '${TEST_COMMAND}'"
if [[ ${test_status} -ne 0 ]]; then
    echo "but '${TEST_COMMAND}' itself failed (status ${test_status})" >&2
fi
exit "${test_status}"
