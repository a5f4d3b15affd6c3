"""The one SQLite store shared by the dashboard and the validation runner: test cases, flags, runs, results.

Why it looks like this:
- WAL mode, a fresh connection per call and a busy timeout, so two testers (two threads or two processes)
  saving at once both land, and readers never block the writer.
- Audio is written to a temporary file, flushed, then renamed into place, and only then is the row written:
  a crash leaves at worst an unreferenced file, never a row pointing at nothing.
- SQL is parameterized everywhere; labels, settings and per-utterance rows are JSON so that free label keys
  and a dataset's own group columns need no schema change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from asr.audio import SAMPLE_RATE, AudioSource, load_audio, write_wav

logger = logging.getLogger(__name__)

DB_NAME = "asrqa.sqlite"
AUDIO_DIR = "audio"
DEFAULT_DATA_DIR = Path("asrqa-data")
KINDS = ("test_case", "flag")
STATUSES = ("new", "confirmed", "fixed", "wont_fix")
RUN_STATES = ("running", "finished", "cancelled", "failed")
BUSY_TIMEOUT_S = 30.0  # how long a writer waits for another writer before giving up
STALE_TMP_S = 3600  # temporary audio older than this is a crash leftover and is removed at start-up

SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, audio_file TEXT NOT NULL, transcript TEXT NOT NULL,
    reference TEXT NOT NULL, reason TEXT NOT NULL, labels TEXT NOT NULL, notes TEXT NOT NULL,
    model TEXT NOT NULL, backend TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT NOT NULL,
    duration REAL NOT NULL
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


class StoreError(ValueError):
    """A bad argument to the store (unknown status or kind), with the value quoted."""


class CaseNotFound(KeyError):
    """No test case or flag with this id (it may have been deleted)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "case not found"


class RunNotFound(KeyError):
    """No validation run with this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "run not found"


@dataclass(frozen=True)
class Case:
    """A saved test case or a flagged transcript."""

    id: str
    kind: str  # "test_case" | "flag"
    audio_path: str  # absolute path of a 16 kHz mono WAV inside data_dir/audio
    transcript: str  # the model's hypothesis
    reference: str  # the reference text (test case) or the corrected transcript (flag)
    reason: str  # the flag reason ("" for test cases)
    labels: dict[str, str]  # accent, noise, device, ... (free keys)
    notes: str
    model: str
    backend: str
    status: str  # one of STATUSES
    created_at: str  # ISO 8601 UTC
    duration: float  # seconds


@dataclass(frozen=True)
class RunSettings:
    """Everything needed to reproduce a validation run; stored with it and shown next to its figures."""

    model: str
    backend: str
    dataset: str  # "builtin", "recorded", a path or "hub:ID[:CONFIG[:SPLIT]]"
    noise: tuple[str, ...]  # noise condition specs, e.g. ("clean", "white@10")
    seed: int = 0
    normalizer: str = ""  # name of the text normalizer applied at scoring time
    normalizer_version: str = ""
    limit: int | None = None  # utterances taken from the dataset (None: all)
    text_column: str | None = None
    group_columns: tuple[str, ...] = ()
    speaker_column: str | None = None  # the dataset column naming speakers (the CI resamples them)
    split: str | None = None
    packages: Mapping[str, str] = field(default_factory=dict)  # package name -> version
    created_at: str = ""  # ISO 8601 UTC; filled by create_run when empty

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["noise"] = list(self.noise)
        data["group_columns"] = list(self.group_columns)
        data["packages"] = dict(self.packages)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunSettings:
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["noise"] = tuple(values.get("noise", ()))
        values["group_columns"] = tuple(values.get("group_columns", ()))
        return cls(**values)


@dataclass(frozen=True)
class Run:
    id: str
    settings: RunSettings
    status: str  # one of RUN_STATES
    created_at: str
    finished_at: str | None
    summary: Mapping[str, Any]  # what finish_run was given (overall figures, skipped rows, ...)
    results: int  # per-utterance rows stored so far


def new_run_id() -> str:
    """A sortable, unique run id: UTC date and time plus six random hex digits."""
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store:
    """Cases, flags, runs and per-utterance results in ``data_dir/asrqa.sqlite``; audio in ``data_dir/audio``."""

    def __init__(self, data_dir: str | os.PathLike = DEFAULT_DATA_DIR) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.audio_dir = self.data_dir / AUDIO_DIR
        self.db_path = self.data_dir / DB_NAME
        self.audio_dir.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                logger.warning("%s: SQLite refused WAL mode (got %s); concurrent writes may wait", self.db_path, mode)
            conn.executescript(SCHEMA)
        self._remove_stale_tmp()

    # -- connections -------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """A connection for one call: safe from any thread, and writes wait for each other instead of failing."""
        conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
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

    def journal_mode(self) -> str:
        with self._connect() as conn:
            return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    # -- cases -------------------------------------------------------------------------------------------
    def add_case(
        self,
        kind: str,
        audio: AudioSource,
        *,
        transcript: str,
        reference: str,
        reason: str = "",
        labels: Mapping[str, str] | None = None,
        notes: str = "",
        model: str = "",
        backend: str = "",
    ) -> Case:
        """Save a test case or a flag; the audio (any form ``load_audio`` takes) is kept as 16 kHz mono WAV."""
        if kind not in KINDS:
            raise StoreError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        samples = load_audio(audio)
        case_id = uuid.uuid4().hex[:16]
        final = self.audio_dir / f"{case_id}.wav"
        self._write_audio_atomically(final, samples)
        case = Case(
            id=case_id,
            kind=kind,
            audio_path=str(final),
            transcript=str(transcript or ""),
            reference=str(reference or ""),
            reason=str(reason or ""),
            labels=_clean_labels(labels),
            notes=str(notes or ""),
            model=str(model or ""),
            backend=str(backend or ""),
            status="new",
            created_at=utc_now(),
            duration=samples.size / SAMPLE_RATE,
        )
        try:
            self._insert_case(case)
        except BaseException:
            final.unlink(missing_ok=True)
            raise
        logger.info("saved %s %s (%.1f s)", kind, case_id, case.duration)
        return case

    def _write_audio_atomically(self, final: Path, samples: np.ndarray) -> None:
        tmp = final.with_name(f".{final.stem}.tmp.wav")
        try:
            write_wav(tmp, samples)
            with open(tmp, "rb+") as f:
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _insert_case(self, case: Case) -> None:
        with self._connect(write=True) as conn:
            conn.execute(
                "INSERT INTO cases (id, kind, audio_file, transcript, reference, reason, labels, notes, model,"
                " backend, status, created_at, duration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    case.id,
                    case.kind,
                    Path(case.audio_path).name,
                    case.transcript,
                    case.reference,
                    case.reason,
                    json.dumps(case.labels, ensure_ascii=False),
                    case.notes,
                    case.model,
                    case.backend,
                    case.status,
                    case.created_at,
                    case.duration,
                ),
            )

    def _case(self, row: sqlite3.Row) -> Case:
        return Case(
            id=row["id"],
            kind=row["kind"],
            audio_path=str(self.audio_dir / row["audio_file"]),
            transcript=row["transcript"],
            reference=row["reference"],
            reason=row["reason"],
            labels=json.loads(row["labels"]),
            notes=row["notes"],
            model=row["model"],
            backend=row["backend"],
            status=row["status"],
            created_at=row["created_at"],
            duration=float(row["duration"]),
        )

    def list_cases(
        self,
        kind: str | None = None,
        status: str | None = None,
        model: str | None = None,
        label: tuple[str, str] | None = None,
    ) -> list[Case]:
        """Cases matching every filter given, newest first. ``label`` is a (key, value) pair."""
        where, params = [], []
        for column, value in (("kind", kind), ("status", status), ("model", model)):
            if value:
                where.append(f"{column} = ?")
                params.append(value)
        sql = "SELECT * FROM cases" + (" WHERE " + " AND ".join(where) if where else "")
        with self._connect() as conn:
            rows = conn.execute(sql + " ORDER BY created_at DESC, rowid DESC", params).fetchall()
        cases = [self._case(r) for r in rows]
        if label:
            key, value = label
            cases = [c for c in cases if c.labels.get(key) == value]
        return cases

    def get_case(self, case_id: str) -> Case:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM cases WHERE id = ?", (case_id,)).fetchone()
        if row is None:
            raise CaseNotFound(f"no test case or flag with id {case_id!r} in {self.db_path}")
        return self._case(row)

    def update_case(
        self,
        case_id: str,
        *,
        status: str | None = None,
        labels: Mapping[str, str] | None = None,
        reference: str | None = None,
        notes: str | None = None,
    ) -> Case:
        """Change what a reviewer may change; ``labels`` replaces the whole label set."""
        if status is not None and status not in STATUSES:
            raise StoreError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        changes: dict[str, Any] = {}
        if status is not None:
            changes["status"] = status
        if labels is not None:
            changes["labels"] = json.dumps(_clean_labels(labels), ensure_ascii=False)
        if reference is not None:
            changes["reference"] = str(reference)
        if notes is not None:
            changes["notes"] = str(notes)
        if changes:
            assignments = ", ".join(f"{column} = ?" for column in changes)  # column names are ours, not the user's
            with self._connect(write=True) as conn:
                cur = conn.execute(f"UPDATE cases SET {assignments} WHERE id = ?", [*changes.values(), case_id])
                if cur.rowcount == 0:
                    raise CaseNotFound(f"no test case or flag with id {case_id!r} in {self.db_path}")
        return self.get_case(case_id)

    def delete_case(self, case_id: str) -> None:
        """Remove the row, then its audio (a crash in between leaves only an unreferenced file)."""
        case = self.get_case(case_id)
        with self._connect(write=True) as conn:
            conn.execute("DELETE FROM cases WHERE id = ?", (case_id,))
        Path(case.audio_path).unlink(missing_ok=True)

    def export_cases(self, cases: Sequence[Case], out_dir: str | os.PathLike, fmt: str = "datasets") -> Path:
        """Write cases as a validation dataset: a ``datasets`` folder (``save_to_disk``) or CSV + WAVs."""
        from evaluation.export import export_cases

        return export_cases(cases, Path(out_dir), fmt)

    def _remove_stale_tmp(self) -> None:
        cutoff = time.time() - STALE_TMP_S
        for tmp in self.audio_dir.glob(".*.tmp.wav"):
            with contextlib.suppress(OSError):
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()

    # -- runs --------------------------------------------------------------------------------------------
    def create_run(self, settings: RunSettings, run_id: str | None = None) -> str:
        """Register a run before its first result, so an interrupted run can be found and resumed."""
        run_id = run_id or new_run_id()
        created = settings.created_at or utc_now()
        data = json.dumps({**settings.to_json(), "created_at": created}, ensure_ascii=False)
        with self._connect(write=True) as conn:
            try:
                conn.execute(
                    "INSERT INTO runs (id, created_at, finished_at, status, settings, summary)"
                    " VALUES (?, ?, NULL, 'running', ?, '{}')",
                    (run_id, created, data),
                )
            except sqlite3.IntegrityError as exc:
                raise StoreError(f"a run with id {run_id!r} already exists") from exc
        return run_id

    def add_results(self, run_id: str, rows: Sequence[Mapping[str, Any]]) -> int:
        """Store per-utterance rows (each with ``id`` and ``noise``); a row already stored is replaced."""
        if not rows:
            return 0
        with self._connect(write=True) as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise RunNotFound(f"no validation run with id {run_id!r} in {self.db_path}")
            start = conn.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM results WHERE run_id = ?", (run_id,))
            seq = start.fetchone()[0]
            conn.executemany(
                "INSERT OR REPLACE INTO results (run_id, item_id, noise, seq, data) VALUES (?, ?, ?, ?, ?)",
                [
                    (run_id, str(r["id"]), str(r["noise"]), seq + i, json.dumps(dict(r), default=_json_default))
                    for i, r in enumerate(rows)
                ],
            )
        return len(rows)

    def result_keys(self, run_id: str) -> set[tuple[str, str]]:
        """(utterance id, noise condition) pairs already stored: what a resumed run skips."""
        with self._connect() as conn:
            rows = conn.execute("SELECT item_id, noise FROM results WHERE run_id = ?", (run_id,)).fetchall()
        return {(r[0], r[1]) for r in rows}

    def finish_run(self, run_id: str, status: str = "finished", summary: Mapping[str, Any] | None = None) -> Run:
        if status not in RUN_STATES:
            raise StoreError(f"run status must be one of {', '.join(RUN_STATES)}, not {status!r}")
        with self._connect(write=True) as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE id = ?",
                (status, utc_now(), json.dumps(dict(summary or {}), default=_json_default), run_id),
            )
            if cur.rowcount == 0:
                raise RunNotFound(f"no validation run with id {run_id!r} in {self.db_path}")
        return self.get_run(run_id)

    def reopen_run(self, run_id: str) -> Run:
        """Mark an interrupted run as running again (resuming keeps its stored results)."""
        with self._connect(write=True) as conn:
            cur = conn.execute("UPDATE runs SET status = 'running', finished_at = NULL WHERE id = ?", (run_id,))
            if cur.rowcount == 0:
                raise RunNotFound(f"no validation run with id {run_id!r} in {self.db_path}")
        return self.get_run(run_id)

    def _run(self, row: sqlite3.Row) -> Run:
        return Run(
            id=row["id"],
            settings=RunSettings.from_json(json.loads(row["settings"])),
            status=row["status"],
            created_at=row["created_at"],
            finished_at=row["finished_at"],
            summary=json.loads(row["summary"]),
            results=int(row["n"]),
        )

    _RUN_SQL = "SELECT runs.*, (SELECT COUNT(*) FROM results WHERE results.run_id = runs.id) AS n FROM runs"

    def list_runs(self) -> list[Run]:
        """Every run, newest first."""
        with self._connect() as conn:
            rows = conn.execute(self._RUN_SQL + " ORDER BY created_at DESC, rowid DESC").fetchall()
        return [self._run(r) for r in rows]

    def get_run(self, run_id: str) -> Run:
        with self._connect() as conn:
            row = conn.execute(self._RUN_SQL + " WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunNotFound(f"no validation run with id {run_id!r} in {self.db_path}")
        return self._run(row)

    def run_results(self, run_id: str):
        """The run's per-utterance rows as a pandas DataFrame, in the order they were stored."""
        import pandas as pd

        self.get_run(run_id)
        with self._connect() as conn:
            rows = conn.execute("SELECT data FROM results WHERE run_id = ? ORDER BY seq", (run_id,)).fetchall()
        return pd.DataFrame([json.loads(r[0]) for r in rows])

    def delete_run(self, run_id: str) -> None:
        with self._connect(write=True) as conn:
            conn.execute("DELETE FROM results WHERE run_id = ?", (run_id,))
            if conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount == 0:
                raise RunNotFound(f"no validation run with id {run_id!r} in {self.db_path}")


def _clean_labels(labels: Mapping[str, Any] | None) -> dict[str, str]:
    """Labels are free keys with string values; empty values are dropped so filters stay meaningful."""
    out: dict[str, str] = {}
    for key, value in (labels or {}).items():
        key, text = str(key).strip(), "" if value is None else str(value).strip()
        if key and text:
            out[key] = text
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a result row")
