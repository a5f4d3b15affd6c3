"""Opening the store's SQLite file: processes opening a new data folder at once, a lock held too long, a file
that is not a database and a read-only folder (evaluation/storefile.py)."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE
from evaluation import storefile
from evaluation.store import Store, StoreError

ROOT = Path(__file__).resolve().parents[1]
PROCESSES, THREADS = 4, 2  # openers of each new folder: 4 processes, each opening it from 2 threads at once
FOLDERS = 30  # before the fix, 1 to 11 of the 240 opens failed in 10 runs of 14 (fewer on a busier machine)
# another process in the middle of making the store (its switch to WAL, its tables): it holds the write lock a while
HOLDER = """import sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
conn.execute("COMMIT")
"""


def _open_and_save(root: str, barrier, results) -> None:
    """One process: for each new folder, wait for the others, then open the store there from two threads at once;
    then save a case in each folder and list them. The opens come one right after the other, and two threads in
    each process, so that openers meet at each new folder (processes alone met there only now and then)."""
    stores, errors = {}, []
    here = threading.Barrier(THREADS)

    def open_from_thread(i: int) -> None:
        here.wait(timeout=60)
        try:
            stores.setdefault(i, Store(Path(root) / f"data{i}"))
        except Exception as exc:  # noqa: BLE001 - reported to the test, which names it
            errors.append(f"data{i}: {type(exc).__name__}: {exc}")

    for i in range(FOLDERS):
        barrier.wait(timeout=60)
        threads = [threading.Thread(target=open_from_thread, args=(i,)) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    tone = (0.1 * np.sin(np.arange(SAMPLE_RATE // 10) * 0.3)).astype(np.float32)
    saved = []
    for i, store in stores.items():
        try:
            case = store.add_case("test_case", tone, transcript="hello", reference="hello")
            if case.id not in {c.id for c in store.list_cases()}:
                errors.append(f"data{i}: case {case.id} saved but not listed")
            saved.append((i, case.id))
        except Exception as exc:  # noqa: BLE001 - as above
            errors.append(f"data{i}: saving: {type(exc).__name__}: {exc}")
    results.put((saved, errors))


def test_processes_opening_a_new_data_folder_at_once_all_save(tmp_path):
    """Two dashboards, or a dashboard and ``python -m evaluation run``, on one new --data-dir: the second one's
    ``PRAGMA journal_mode=WAL`` failed with "database is locked" (SQLite answers it busy at once)."""
    ctx = multiprocessing.get_context("spawn")  # real processes, nothing shared but the files
    barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
    workers = [ctx.Process(target=_open_and_save, args=(str(tmp_path), barrier, results)) for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    reports = [results.get(timeout=120) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    errors = [e for _, errs in reports for e in errs]
    assert errors == [], f"{len(errors)} of {PROCESSES * THREADS * FOLDERS} opens (or saves) failed: {errors[:3]}"
    for i in range(FOLDERS):  # nothing lost: every case each process saved is in its folder, and nothing else
        want = {case_id for saved, _ in reports for j, case_id in saved if j == i}
        store = Store(tmp_path / f"data{i}")
        assert {c.id for c in store.list_cases()} == want and len(want) == PROCESSES
        assert store.journal_mode() == "wal"


def test_opening_waits_for_another_process_holding_the_write_lock(tmp_path):
    """The race, made to happen every time: another process has begun making the new store (it holds the write
    lock), and ``PRAGMA journal_mode=WAL`` failed at once with "database is locked", the busy timeout unused
    (SQLite does not wait there: it has begun reading and waiting for a writer could deadlock)."""
    db = tmp_path / "data" / "asrqa.sqlite"
    db.parent.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(db), "0.3"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        store = Store(db.parent)  # opens once the other process lets go of the lock
        assert holder.wait(timeout=30) == 0  # which it did without a hitch: its commit was not refused either
    finally:
        holder.kill()
        holder.wait()
    assert store.journal_mode() == "wal"
    case = store.add_case("flag", np.zeros(SAMPLE_RATE // 10, np.float32), transcript="a", reference="b")
    assert [c.id for c in Store(db.parent).list_cases()] == [case.id]


def test_a_store_locked_past_the_timeout_is_a_store_error_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(storefile, "BUSY_TIMEOUT_S", 0.3)
    db = tmp_path / "data" / "asrqa.sqlite"
    db.parent.mkdir()
    holder = sqlite3.connect(db, isolation_level=None)  # another program's write transaction, in rollback mode
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE notes (text TEXT)")
    holder.execute("INSERT INTO notes VALUES ('kept')")
    try:
        with pytest.raises(StoreError) as caught:
            Store(db.parent)
        assert str(caught.value) == (
            f"{db}: still locked by another process after 0.3 s; try again, or stop the program that holds it "
            "(a dashboard or a run on this data folder)"
        )
    finally:
        holder.execute("COMMIT")
        holder.close()
    store = Store(db.parent)  # once it is let go, the store opens, and what the other program wrote stays
    assert store.journal_mode() == "wal" and store.list_cases() == []
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT text FROM notes").fetchall() == [("kept",)]


def test_a_file_that_is_not_a_database_is_one_line_from_the_cli_and_the_dashboard(tmp_path, capsys):
    """Both printed a traceback ending "sqlite3.DatabaseError: file is not a database"."""
    from dashboard.__main__ import main as dashboard_main
    from evaluation.cli import main as cli_main
    from tests.browser_util import free_port

    db = tmp_path / "data" / "asrqa.sqlite"
    db.parent.mkdir()
    db.write_text("id,reference\nu1,hello\n" * 200)
    before = db.read_bytes()
    said = f"{db}: is not a SQLite database (file is not a database); move it away, or give another data folder"
    for argv in (["runs", "--data-dir", str(db.parent)], ["run", "--data-dir", str(db.parent), "--quiet"]):
        assert cli_main(argv) == 2
        assert capsys.readouterr().err == f"error: {said}\n"
    assert dashboard_main(["--data-dir", str(db.parent), "--no-preload", "--port", str(free_port())]) == 2
    assert capsys.readouterr().err == f"python -m dashboard: {said}\n"
    assert db.read_bytes() == before and sorted(p.name for p in db.parent.iterdir()) == ["asrqa.sqlite", "audio"]


def _read_only(folder: Path) -> list[str]:
    """A command prefix that runs a command with ``folder`` read-only: a read-only bind mount in a mount namespace
    of its own for root (whom permissions do not stop), the folder's write bits taken off for anyone else."""
    if os.geteuid() != 0:
        for path in (*folder.rglob("*"), folder):
            path.chmod(0o555 if path.is_dir() else 0o444)
        return []
    prefix = ["unshare", "-m", "sh", "-c", 'mount --bind -o ro "$0" "$0" && exec "$@"', str(folder)]
    probe = subprocess.run([*prefix, "true"], capture_output=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:  # a container without the right to mount
        pytest.skip("root, and no read-only bind mount in a mount namespace of its own: no read-only folder to try")
    return prefix


def test_a_store_on_a_read_only_path_is_one_line_from_the_cli_and_the_dashboard(tmp_path):
    """Both printed a traceback ending "sqlite3.OperationalError: unable to open database file"."""
    from tests.browser_util import free_port

    data = tmp_path / "archive" / "data"
    Store(data).add_case("flag", np.zeros(SAMPLE_RATE // 10, np.float32), transcript="a", reference="b")
    db = data / "asrqa.sqlite"
    before = db.read_bytes()
    prefix = _read_only(tmp_path / "archive")
    try:
        for argv, lead in (
            (["-m", "evaluation", "runs", "--data-dir", str(data)], "error: "),
            (
                ["-m", "dashboard", "--data-dir", str(data), "--no-preload", "--port", str(free_port())],
                "python -m dashboard: ",
            ),
        ):
            done = subprocess.run(
                [*prefix, sys.executable, *argv], capture_output=True, text=True, timeout=120, cwd=ROOT
            )
            assert done.returncode == 2, done.stderr
            lines = done.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"{lead}{db}: cannot be opened for writing ("), done.stderr
            assert lines[0].endswith(
                "; the store writes beside it (-wal, -shm): give a data folder that can be written"
            )
    finally:
        for path in (*(tmp_path / "archive").rglob("*"), tmp_path / "archive"):
            path.chmod(0o755 if path.is_dir() else 0o644)
    assert db.read_bytes() == before and len(Store(data).list_cases()) == 1
