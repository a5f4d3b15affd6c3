"""SIGTERM handled as Ctrl-C by the command lines: ``kill``, ``timeout``, systemd, ``docker stop`` and a CI job's
time limit send SIGTERM, and Python's default for it ends the process at once, with nothing said and nothing
cleaned up: ``python -m evaluation run`` left its run "running" in the store, ``python -m asr transcribe`` said
nothing of the files not done.

:func:`stop_signals` routes both signals to one handler while a block runs, by default :class:`Interrupted`,
the ``KeyboardInterrupt`` every entry point already handles for Ctrl-C, which carries the signal so that the exit
status can say which came: 130 (128 + SIGINT) for Ctrl-C, 143 (128 + SIGTERM) for SIGTERM, as a shell reports a
process the signal ended. A signal ignored when the block starts stays ignored: a shell's background job inherits
SIGINT ignored (so Ctrl-C at the terminal is not meant for it), and a process started with SIGTERM ignored was
meant to ignore it.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM, raised by the default handler of :func:`stop_signals`."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def exit_status(exc: BaseException | None = None, signum: int | None = None) -> int:
    """128 + the signal that stopped the command: that of ``signum``, else of ``exc`` when it is
    :class:`Interrupted`, else SIGINT's (a plain KeyboardInterrupt is Python's own Ctrl-C)."""
    if signum is None:
        signum = exc.signum if isinstance(exc, Interrupted) else signal.SIGINT
    return 128 + signum


@dataclass
class Received:
    """The first stop signal that came while the block ran (None: none yet)."""

    signum: int | None = None


def _raise(signum: int) -> None:
    raise Interrupted(signum)


@contextlib.contextmanager
def stop_signals(handler: Callable[[int], None] = _raise) -> Iterator[Received]:
    """Call ``handler(signum)`` on SIGINT and SIGTERM while the block runs (the handlers before are put back
    after it); yields what was received. ``handler`` runs in the main thread between two bytecodes, so one
    that raises stops the block where it is, as Ctrl-C does.

    Only the main thread may install signal handlers: elsewhere (a command embedded in a worker thread) this does
    nothing, and the process's own handling stands.
    """
    received = Received()
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def on_signal(signum: int, frame) -> None:
        if received.signum is None:
            received.signum = signum
        handler(signum)

    previous = {}
    for sig in STOP_SIGNALS:
        if signal.getsignal(sig) is not signal.SIG_IGN:
            previous[sig] = signal.signal(sig, on_signal)
    try:
        yield received
    finally:
        for sig, before in previous.items():
            signal.signal(sig, before if before is not None else signal.SIG_DFL)
