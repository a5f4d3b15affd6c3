"""What closing the dashboard (Ctrl-C or SIGTERM) does to the validations under way: cancel them, and wait until
each has stopped after its model call in progress and marked its run cancelled, with the WER of the rows stored.

Without it the process ended with a run's thread in the middle of a model call: the run stayed "running" in the
store for ever, without figures, and the process aborted ("terminate called without an active exception", exit
-6: the model's native threads were torn down under it). ``python -m evaluation run --run-id ID`` resumes a run
so cancelled, as it resumes one cancelled from the page or the command line.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

CLOSE_WAIT_S = 20.0  # the longest a close waits for the runs (a model call on a busy CPU; docker stop gives 10 s)

_changed = threading.Condition()
_running: set[threading.Event] = set()  # the cancel switches of the runs under way


@contextlib.contextmanager
def cancelled_on_close(switch: threading.Event) -> Iterator[None]:
    """While the block runs (a run of the Validate page), closing the dashboard sets ``switch`` and waits for the
    block to end."""
    with _changed:
        _running.add(switch)
    try:
        yield
    finally:
        with _changed:
            _running.discard(switch)
            _changed.notify_all()


def cancel_runs() -> int:
    """Set the switch of every run under way (each stops after its model call in progress); returns how many."""
    with _changed:
        for switch in _running:
            switch.set()
        return len(_running)


def wait_for_runs(timeout_s: float = CLOSE_WAIT_S) -> bool:
    """Whether every run under way ended (cancelled, or finished) within ``timeout_s``."""
    with _changed:
        return _changed.wait_for(lambda: not _running, timeout_s)
