"""The store's SQLite file: how each call connects, and how the file is made (WAL mode, tables) and upgraded.

Why it looks like this:
- A connection per call with a busy timeout, and ``BEGIN IMMEDIATE`` for writes: two threads or two processes
  writing at once wait for each other instead of failing, and readers never block the writer (WAL).
- Opening the store (``prepare``) is retried while SQLite says "database is locked", with a growing, jittered
  pause, for up to ``BUSY_TIMEOUT_S``. Two processes opening a brand-new data folder at once (two dashboards, a
  dashboard and ``python -m evaluation run``) failed there with that traceback: ``PRAGMA journal_mode=WAL``
  reads the file and then needs its write lock, and when another opener holds that lock SQLite answers "busy" at
  once instead of waiting on the busy handler (a reader waiting for a writer could deadlock). A retry was chosen
  over a lock file because every step is idempotent (the switch to WAL, ``IF NOT EXISTS`` tables, columns added
  only where missing, in one write transaction), so a retry can lose nothing; a lock file would be one more
  thing in the data folder to clean up (``evaluation.cli_guards.store_for_run`` takes back a store it made
  empty) and to create in a folder that cannot be written, and ``fcntl`` locks are not on every platform.
- Whatever else stops the file opening (not a SQLite database, a read-only folder) is a ``StoreError`` that
  names the file and what to do, one line for the command line and the dashboard, not a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from evaluation.recordstore import SCHEMA as RECORD_SCHEMA
from evaluation.runstore import Connect, StoreError

logger = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 30.0  # how long a writer (or a store being opened) waits for another before giving up
FIRST_PAUSE_S = 0.005  # the first pause before opening again; doubled each time up to MAX_PAUSE_S
MAX_PAUSE_S = 0.25
_JITTER = random.Random()  # its own generator: opening a store must not move a caller's seeded ``random``

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, audio_file TEXT NOT NULL, transcript TEXT NOT NULL,
    reference TEXT NOT NULL, reason TEXT NOT NULL, labels TEXT NOT NULL, notes TEXT NOT NULL,
    model TEXT NOT NULL, backend TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
    duration REAL NOT NULL, origin TEXT, take_sent TEXT
);
CREATE INDEX IF NOT EXISTS cases_created ON cases (created_at);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL,
    settings TEXT NOT NULL, summary TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE, item_id TEXT NOT NULL, noise TEXT NOT NULL,
    seq INTEGER NOT NULL, data TEXT NOT NULL, PRIMARY KEY (run_id, item_id, noise)
);
"""
ADDED_COLUMNS = ("origin", "take_sent")  # cases columns a store made before takes lacks
# one case of each kind per take: Flag and Save pressed at once (or twice) update it rather than add a copy
ORIGIN_INDEX = "CREATE UNIQUE INDEX IF NOT EXISTS cases_origin ON cases (origin, kind) WHERE origin IS NOT NULL"


@contextlib.contextmanager
def connect(db_path: Path, write: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection for one call: safe from any thread, and writes wait for each other instead of failing."""
    conn = sqlite3.connect(db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.row_factory = sqlite3.Row
        if not write:
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


def prepare(connect: Connect, db_path: Path) -> None:
    """Make or upgrade the store's file, waiting (up to ``BUSY_TIMEOUT_S``) while another process does the same.

    Raises ``StoreError`` naming ``db_path`` when it stays locked that long or cannot be opened at all.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    pause = FIRST_PAUSE_S
    while True:
        try:
            _prepare_once(connect, db_path)
            return
        except sqlite3.DatabaseError as exc:  # OperationalError ("database is locked", "unable to open") included
            if not _busy(exc):
                raise StoreError(_cannot_open(db_path, exc)) from exc
            if time.monotonic() + pause > deadline:
                raise StoreError(
                    f"{db_path}: still locked by another process after {BUSY_TIMEOUT_S:g} s; try again, or stop the "
                    "program that holds it (a dashboard or a run on this data folder)"
                ) from exc
            logger.debug("%s: locked while opening (another process opening it too?); again in %.3f s", db_path, pause)
        time.sleep(pause * _JITTER.uniform(0.5, 1.5))
        pause = min(pause * 2, MAX_PAUSE_S)


def _prepare_once(connect: Connect, db_path: Path) -> None:
    with connect() as conn:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        logger.warning("%s: SQLite refused WAL mode (got %s); concurrent writes may wait", db_path, mode)
    with connect(write=True) as conn:  # one transaction: a store is either made whole or not at all
        for statement in (SCHEMA + RECORD_SCHEMA).split(";"):  # no ";" inside a statement of ours
            if statement.strip():
                conn.execute(statement)
        have = {row["name"] for row in conn.execute("PRAGMA table_info(cases)")}
        for column in ADDED_COLUMNS:
            if column not in have:
                conn.execute(f"ALTER TABLE cases ADD COLUMN {column} TEXT")
        conn.execute(ORIGIN_INDEX)


def _busy(exc: sqlite3.DatabaseError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    return (code & 0xFF) == sqlite3.SQLITE_BUSY if code is not None else "database is locked" in str(exc)


def _cannot_open(db_path: Path, exc: sqlite3.DatabaseError) -> str:
    """One line naming the file, SQLite's reason and what to do about it."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    if code == sqlite3.SQLITE_NOTADB:
        return f"{db_path}: is not a SQLite database ({exc}); move it away, or give another data folder"
    folder = db_path.parent
    if code in (sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM) or not os.access(
        folder, os.W_OK
    ):
        return (
            f"{db_path}: cannot be opened for writing ({exc}); the store writes beside it (-wal, -shm): give a data "
            "folder that can be written"
        )
    return f"{db_path}: cannot be opened ({exc})"
