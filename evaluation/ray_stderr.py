"""The driver's stderr without the one line of Ray's own that reads as the failure of a run that succeeded.

Ray 2.60's core worker logs at ERROR, once per process, when an actor that may restart is created with arguments
in the object store: ``[... E ...] core_worker.cc:2465: Actor with class name: 'MapWorker(MapBatches(RayRowWorker))'
and ID: '...' has constructor arguments in the object store and max_restarts > 0. If the arguments in the object
store go out of scope or are lost, the actor restart will fail. See https://github.com/ray-project/ray/issues/53727
for more details.`` The arguments are Ray Data's, not ours: every actor pool's ``_MapWorker`` is created with its
DataContext and its map function as ObjectRefs (``ActorPoolMapOperator._start_actor``), which the driver holds for
the whole execution, so a restarted actor finds them (the test that kills an actor mid-run restarts it); Ray Data's
own issue ray-project/ray#57733 (open) reports the line for the smallest ``map_batches`` of a class.

Ray's C++ logger writes every ERROR record to fd 2 and has no setting that routes one elsewhere: raising
``RAY_BACKEND_LOG_LEVEL`` above ERROR would hide every error of the driver's core worker. So while a run's actors
start, fd 2 is a pipe read by a small child process that copies everything to the real stderr, byte for byte and
at once, except that record, matched whole (its text and a Ray Data map worker's class name). A child rather than a
thread, so that what the driver wrote before an abort still reaches the terminal; in its own session, so that
Ctrl-C reaches the driver alone. The record stays in the session's ``logs/python-core-driver-*.log``.
"""

from __future__ import annotations

import logging
import os
import re
import select
import subprocess
import sys
import threading

logger = logging.getLogger(__name__)

NOISE = (
    rb"\[[^\]\n]*\] core_worker\.cc:\d+: Actor with class name: 'MapWorker\([^'\n]*\)' and ID: '[0-9a-f]+' has "
    rb"constructor arguments in the object store and max_restarts > 0\. If the arguments in the object store go out "
    rb"of scope or are lost, the actor restart will fail\. See https://github\.com/ray-project/ray/issues/53727 for "
    rb"more details\.\n"
)
DROPPED = 3  # the filter's exit status once it dropped the record (Ray prints it once per process)
HOLD_S = 0.1  # a partial line that may begin a record waits this long for its end, then goes out as it is

_lock = threading.Lock()
_users = 0
_saved_fd: int | None = None
_child: subprocess.Popen | None = None
_done = False  # the record was dropped (or the actors started without it): Ray will not print it again here


def filter_command() -> list[str]:
    """The filter process: this file run as a script (the standard library only), its stdin what the driver
    writes to fd 2, its stdout the real stderr."""
    return [sys.executable, "-I", "-S", os.path.abspath(__file__)]  # -I: nothing of this package shadows the stdlib


def filter_stream(read_fd: int = 0, write_fd: int = 1) -> bool:
    """Copy ``read_fd`` to ``write_fd`` until end of file, less every :data:`NOISE` record; True if one was dropped.

    Records are matched whole, wherever they begin (Ray's follows a progress bar's unfinished line as often as not);
    the end of a chunk from its last ``[`` (where a record may begin) waits up to :data:`HOLD_S` for the rest,
    anything before it (a progress bar's ``\\r`` line) goes out at once.
    """
    noise, pending, dropped = re.compile(NOISE), b"", False
    out = _Writer(write_fd)
    while True:
        if pending and not select.select([read_fd], [], [], HOLD_S)[0]:
            out.write(pending)
            pending = b""
            continue
        chunk = os.read(read_fd, 65536)
        if not chunk:
            break
        data = pending + chunk
        cut = data.rfind(b"\n") + 1
        kept, count = noise.subn(b"", data[:cut])
        dropped = dropped or count > 0
        tail = data[cut:]
        start = tail.rfind(b"[")  # a record begins at its only "[", after a progress bar's line as often as not
        start = start if 0 <= start and len(tail) - start < 4096 else len(tail)
        out.write(kept + tail[:start])
        pending = tail[start:]
    out.write(pending)
    return dropped


class _Writer:
    def __init__(self, fd: int) -> None:
        self.fd, self.broken = fd, False

    def write(self, data: bytes) -> None:
        while data and not self.broken:
            try:
                data = data[os.write(self.fd, data) :]
            except OSError:  # the real stderr is gone: keep draining, so the driver's writes never block
                self.broken = True


class QuietActorStart:
    """fd 2 through the filter from creation to :meth:`release` (idempotent), shared by concurrent runs."""

    def __init__(self, hold: bool = True) -> None:
        self._held = hold and _acquire()

    @classmethod
    def idle(cls) -> QuietActorStart:
        """One that holds nothing (before a run starts its actors)."""
        return cls(hold=False)

    def release(self, actors_started: bool = False) -> None:
        """``actors_started``: the run's actors exist, so the once-per-process record is behind us."""
        if self._held:
            self._held = False
            _release(actors_started)


def _acquire() -> bool:
    global _users, _saved_fd, _child
    with _lock:
        if _done:
            return False
        _users += 1
        if _users > 1:
            return True
        opened: list[int] = []
        try:
            _flush()
            opened.append(saved := os.dup(2))
            read, write = os.pipe()
            opened += [read, write]
            child = subprocess.Popen(filter_command(), stdin=read, stdout=saved, start_new_session=True)
        except OSError as exc:  # no fd 2 (a service without a stderr), no process to spare: Ray's line stays
            logger.debug("stderr filter not started: %s", exc)
            for fd in opened:
                os.close(fd)
            _users -= 1
            return False
        os.close(read)
        os.dup2(write, 2)
        os.close(write)
        _saved_fd, _child = saved, child
        return True


def _release(actors_started: bool) -> None:
    global _users, _saved_fd, _child, _done
    with _lock:
        _users -= 1
        if _users or _child is None or _saved_fd is None:
            return
        _flush()
        os.dup2(_saved_fd, 2)  # the pipe's last write end closes here: the filter drains it and exits
        os.close(_saved_fd)
        try:
            dropped = _child.wait(timeout=5) == DROPPED
        except subprocess.TimeoutExpired:  # a process started meanwhile holds the pipe: it ends with that one
            dropped = False
        _done = _done or dropped or actors_started
        _saved_fd, _child = None, None


def _flush() -> None:
    if sys.stderr is not None:  # (None in a process started without one)
        sys.stderr.flush()


__all__ = ["NOISE", "QuietActorStart", "filter_command", "filter_stream"]

if __name__ == "__main__":  # the filter process (filter_command)
    sys.exit(DROPPED if filter_stream() else 0)
