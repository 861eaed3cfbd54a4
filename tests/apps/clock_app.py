"""The real app on a clock the test moves, for races against a server process that need time
to pass (OFF-1: offers that lapse).

Its "now" is the real time plus the offset, in seconds, written in the file that
TEST_CLOCK_OFFSET_FILE names (none or empty: no offset). The file is read at every call, so each
worker process of the server, and the test itself, see the same clock.
"""

import os
from datetime import datetime, timedelta
from pathlib import Path

from fastapi import FastAPI

from api import clock
from api.main import create_app as create_real_app

_real_now = clock.now


def offset_now() -> datetime:
    path = os.environ.get("TEST_CLOCK_OFFSET_FILE")
    try:
        seconds = float(Path(path).read_text() or 0) if path else 0.0
    except FileNotFoundError:
        seconds = 0.0
    return _real_now() + timedelta(seconds=seconds)


def create_app() -> FastAPI:
    clock.now = offset_now
    return create_real_app()
