"""How `event-manager serve` runs uvicorn: on SIGTERM a process drains first, then stops.

SIGTERM marks the process draining (api.lifecycle: /ready answers 503) and it goes on accepting
and answering requests for SHUTDOWN_DRAIN_SECONDS, long enough for a load balancer's health
checks to take it out of rotation. Then uvicorn's graceful shutdown runs as before: no new
connections, requests in flight finish within SHUTDOWN_TIMEOUT_SECONDS.

SIGINT (Ctrl-C) stops at once, without the drain, and a SIGINT during the drain ends it. A
repeated SIGTERM does not: uvicorn's supervisor passes its SIGTERM on to every worker, and a
process manager that signals the whole process group (systemd's default) reaches them twice.
"""

import ctypes
import functools
import logging
import multiprocessing
import signal
import sys
import time
from socket import socket
from types import FrameType

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import multiprocess

from api import lifecycle
from api.config import settings

logger = logging.getLogger("uvicorn.error")


class DrainingServer(uvicorn.Server):
    """uvicorn's server, with the drain between a SIGTERM and the graceful shutdown.

    `interrupted` is shared with the supervisor of several workers: it got a SIGINT."""

    def __init__(self, config: uvicorn.Config, interrupted: ctypes.c_bool | None = None) -> None:
        super().__init__(config)
        self.drain_seconds = settings.SHUTDOWN_DRAIN_SECONDS
        self.drain_ends: float | None = None
        self.interrupted = interrupted

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._may_drain():
            if not lifecycle.draining:
                # Raised again once the server is done, as uvicorn does with the signals it handles.
                self._captured_signals.append(sig)
                lifecycle.begin_draining()
            return
        super().handle_exit(sig, frame)

    def _may_drain(self) -> bool:
        # A process that is not serving yet, or is stopping already, has nothing to drain.
        return (
            self.drain_seconds > 0
            and self.started
            and not self.should_exit
            and not self._interrupted()
        )

    def _interrupted(self) -> bool:
        return self.interrupted is not None and self.interrupted.value

    async def on_tick(self, counter: int) -> bool:
        # The main loop's tick, every 0.1 s: the signal handler itself only sets a flag.
        if lifecycle.draining and not self.should_exit:
            now = time.monotonic()
            if self.drain_ends is None:
                self.drain_ends = now + self.drain_seconds
                logger.info("Draining: /ready answers 503 for %d s", self.drain_seconds)
            elif now >= self.drain_ends or self._interrupted():
                self.should_exit = True
        return await super().on_tick(counter)


class DrainingProcess(multiprocess.Process):
    """A worker process of the supervisor, serving with DrainingServer."""

    def __init__(
        self,
        config: uvicorn.Config,
        sockets: list[socket],
        *,
        interrupted: ctypes.c_bool,
    ) -> None:
        self.interrupted = interrupted  # before the process object is pickled for the worker
        super().__init__(config, sockets)

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(self.config, interrupted=self.interrupted)
        return self._server


class Supervisor(multiprocess.Multiprocess):
    """uvicorn's supervisor of worker processes, whose workers drain; a SIGINT it gets stops
    them without the drain, also while they drain."""

    def __init__(self, config: uvicorn.Config, sockets: list[socket]) -> None:
        super().__init__(config, sockets)
        # Shared memory without a lock: the workers read it in their signal handlers.
        self.interrupted = multiprocessing.get_context("spawn").RawValue(ctypes.c_bool, False)

    def run(self) -> None:
        # Multiprocess makes (and remakes) its workers from its module's `Process`.
        original = multiprocess.Process
        factory = functools.partial(DrainingProcess, interrupted=self.interrupted)
        multiprocess.Process = factory  # type: ignore[misc,assignment]
        try:
            super().run()
        finally:
            multiprocess.Process = original  # type: ignore[misc]

    def handle_int(self) -> None:
        self.interrupted.value = True
        super().handle_int()

    def join_all(self) -> None:
        # Multiprocess waits for its workers without looking at signals any more; they may
        # drain for a while, and a SIGINT meanwhile must still end it.
        for process in self.processes:
            logger.info(f"Waiting for child process [{process.pid}]")
            while process.exitcode is None:
                process.process.join(timeout=0.5)
                if signal.SIGINT in self.signal_queue:
                    self.signal_queue.remove(signal.SIGINT)
                    self.handle_int()


def run(config: uvicorn.Config) -> None:
    """Serve as `uvicorn.run` does once it has built `config` (without reload), with
    DrainingServer in every process."""
    if config.workers == 1:
        config.load_app()  # an app that does not import stops here, as in uvicorn.run
    server = DrainingServer(config)
    try:
        if config.workers > 1:
            Supervisor(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    if not server.started and config.workers == 1:
        sys.exit(STARTUP_FAILURE)
