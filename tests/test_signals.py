"""SIGTERM handled as Ctrl-C (asr.signals and the run's cancel guard), with real signals sent to this process.

The command lines' end-to-end cases (a real run, real files, the real model) are in test_cli.py and
test_eval_cli.py beside their Ctrl-C cases; here the rules between: which signal gives which exit status, the
handlers put back after the block, an ignored signal left ignored, nothing installed outside the main thread.
"""

from __future__ import annotations

import os
import signal
import threading

import pytest

from asr.signals import Interrupted, exit_status, stop_signals
from evaluation.cli_guards import stop_cancels


@pytest.fixture
def default_handlers():
    """Python's own handlers while the test runs: a test run as a background job inherits SIGINT ignored."""
    before = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}
    before[signal.SIGTERM] = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    yield
    for sig, handler in before.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize(("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_either_signal_raises_a_keyboard_interrupt_with_its_exit_status(default_handlers, stop, status):
    with pytest.raises(KeyboardInterrupt) as caught, stop_signals() as received:
        os.kill(os.getpid(), stop)  # the handler runs in this thread before the next line
        threading.Event().wait(5)
    assert isinstance(caught.value, Interrupted) and caught.value.signum == stop == received.signum
    assert exit_status(caught.value) == status and exit_status(signum=stop) == status
    assert exit_status(KeyboardInterrupt()) == 130  # Python's own Ctrl-C
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # put back
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_ignored_signal_stays_ignored_and_other_threads_install_nothing(default_handlers):
    """A shell's background job inherits SIGINT ignored: Ctrl-C at the terminal is not meant for it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with stop_signals():
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        os.kill(os.getpid(), signal.SIGINT)  # ignored: nothing raised
    seen = []

    def elsewhere() -> None:
        with stop_signals():  # signal.signal would raise ValueError outside the main thread
            seen.append(signal.getsignal(signal.SIGTERM))

    worker = threading.Thread(target=elsewhere)
    worker.start()
    worker.join()
    assert seen == [signal.SIG_DFL]


def test_the_run_guard_cancels_on_the_first_sigterm_and_stops_on_the_second(default_handlers, capsys):
    """Before the run started (dataset or model loading) SIGTERM stops at once; once it started, the first sets
    the cancel (the run stops after the model call in progress) and the second stops at once."""
    cancel, started = threading.Event(), threading.Event()
    with pytest.raises(Interrupted), stop_cancels(cancel, started):
        os.kill(os.getpid(), signal.SIGTERM)
    assert not cancel.is_set()
    started.set()
    with pytest.raises(Interrupted) as caught, stop_cancels(cancel, started) as received:
        os.kill(os.getpid(), signal.SIGTERM)
        assert cancel.is_set() and received.signum == signal.SIGTERM
        assert "SIGTERM: cancelling after the model call in progress" in capsys.readouterr().err
        os.kill(os.getpid(), signal.SIGTERM)
        threading.Event().wait(5)  # interrupted by the handler
    assert exit_status(caught.value) == 143
