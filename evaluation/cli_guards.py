"""What ``python -m evaluation run`` does around a run so that nothing is lost and nothing is left behind.

Kept apart from the command line's module: Ctrl-C and SIGTERM as a cancel that keeps what was done (a signal
handler), a store the command made taken back when the run stored nothing, and folder options checked before the
run (a bad ``--out`` was found once every row was done).
"""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from asr.signals import Interrupted, Received, stop_signals
from evaluation.cli_parser import UsageError
from evaluation.store import DB_NAME, Store


@contextlib.contextmanager
def stop_cancels(cancel: threading.Event, started: threading.Event) -> Iterator[Received]:
    """Ctrl-C or SIGTERM once the run has started sets ``cancel``: the run stops after the model call in progress,
    stores every utterance finished and its figures (as a KeyboardInterrupt it lost the batch in progress, and the
    runs listing said "WER -"; SIGTERM, from ``kill``, ``timeout`` or a CI job's time limit, left it "running").
    A second signal, or one while the dataset or model loads, stops at once. Yields the signal received, for the
    exit status (see :mod:`asr.signals`)."""

    def handler(signum: int) -> None:
        if cancel.is_set() or not started.is_set():
            raise Interrupted(signum)
        cancel.set()
        said = "" if signum == signal.SIGINT else f"{signal.Signals(signum).name}: "
        again = "Ctrl-C again" if signum == signal.SIGINT else "a second SIGTERM"
        print(f"\n{said}cancelling after the model call in progress ({again} to stop at once)", file=sys.stderr)

    with stop_signals(handler) as received:
        yield received


@contextlib.contextmanager
def store_for_run(data_dir: str):
    """The run's store. One this command made is taken back when the run stops before storing anything: a run
    refused by its ``--max-wer`` check on the dataset (or by a bad dataset, a model that cannot load, Ctrl-C
    while loading) left a new folder with an empty database behind. A store that held anything is kept."""
    folder = Path(data_dir).expanduser().resolve()
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first: what opening it creates
    new = not (folder / DB_NAME).exists()
    store = Store(folder)
    try:
        yield store
    except BaseException:
        if new and store.is_empty():
            for path in (store.db_path, *(store.db_path.with_name(DB_NAME + end) for end in ("-wal", "-shm"))):
                path.unlink(missing_ok=True)
            for path in (store.audio_dir, *made):  # rmdir: only an empty folder goes
                with contextlib.suppress(OSError):
                    path.rmdir()
        raise


def a_folder(flag: str, value: str | None, holds: str) -> None:
    """A folder option that names a file is one line before any work: ``--data-dir FILE`` said "FILE/audio: Not
    a directory" (a path nobody typed), ``compare --out FILE`` "File exists" after printing the comparison."""
    if value and Path(value).expanduser().exists() and not Path(value).expanduser().is_dir():
        raise UsageError(f"{flag} {value}: is a file; give a folder for {holds}")


def writable_folder(flag: str, value: str | None, holds: str) -> None:
    """A folder option where nothing can be written (a file above it, /proc, no permission) is one line before the
    run: it was "error: P: No such file or directory" once every row was done. Tried with a folder made and removed
    again in the deepest folder that exists, so nothing is left behind."""
    if not value:
        return
    path = Path(value).expanduser()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"{flag} {value}: {existing} is a file; give a folder for {holds}")
    try:
        tempfile.TemporaryDirectory(dir=existing, prefix=".asrqa-probe-").cleanup()
    except OSError as exc:
        raise UsageError(f"{flag} {value}: cannot write in {existing} ({exc.strerror or exc})") from exc
