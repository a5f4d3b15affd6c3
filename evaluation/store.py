"""The one SQLite store shared by the dashboard and the validation runner: test cases, flags, runs, results.

Why it looks like this:
- WAL mode, a fresh connection per call and a busy timeout, so two testers (two threads or two processes)
  saving at once both land, and readers never block the writer. How the file is connected to, made and
  upgraded (safe when two processes open a new data folder at once) is ``evaluation.storefile``.
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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from asr.audio import SAMPLE_RATE, AudioSource, load_audio, write_wav
from evaluation.cases import (  # noqa: F401 - re-exported: the store is the one import for callers
    INSERT_SQL,
    Case,
    CaseConflict,
    CaseNotFound,
    SavedTake,
    check_label_names,
    clean_labels,
    column_values,
    from_row,
    in_stored_order,
    kept_from_take,
    merge_edit,
    merge_take,
    row_values,
)
from evaluation.recordstore import Recordings
from evaluation.runstore import (  # noqa: F401 - re-exported: the store is the one import for callers
    RUN_STATES,
    Run,
    RunNotFound,
    Runs,
    RunSettings,
    StoreError,
    new_run_id,
    utc_now,
)
from evaluation.storefile import connect, prepare

logger = logging.getLogger(__name__)

DB_NAME = "asrqa.sqlite"
AUDIO_DIR = "audio"
DEFAULT_DATA_DIR = Path("asrqa-data")
KINDS = ("test_case", "flag")
STATUSES = ("new", "confirmed", "fixed", "wont_fix")
STALE_TMP_S = 600  # audio nothing names (a .tmp.wav, or a file whose row was never written or was deleted)
# older than this is a crash leftover: newer ones may belong to a save in progress


class Store:
    """Cases, flags, runs and per-utterance results in ``data_dir/asrqa.sqlite``; audio in ``data_dir/audio``."""

    def __init__(self, data_dir: str | os.PathLike = DEFAULT_DATA_DIR) -> None:
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.audio_dir = self.data_dir / AUDIO_DIR
        self.db_path = self.data_dir / DB_NAME
        self.audio_dir.mkdir(parents=True, exist_ok=True)
        prepare(self._connect, self.db_path)  # WAL, tables, columns; safe when another process opens it too
        self.sweep_audio()
        self.runs = Runs(self._connect, self.db_path)  # validation runs and their per-utterance results
        self.recordings = Recordings(self._connect, self)  # scripts, record sessions and their takes

    # -- connections -------------------------------------------------------------------------------------
    def _connect(self, write: bool = False) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A connection for one call (see ``evaluation.storefile.connect``); ``write=True`` for a write transaction."""
        return connect(self.db_path, write)

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
        case = self.stage_case(
            kind,
            audio,
            transcript=transcript,
            reference=reference,
            reason=reason,
            labels=labels,
            notes=notes,
            model=model,
            backend=backend,
        )
        try:
            with self._connect(write=True) as conn:
                self.insert_case(conn, case)
        except BaseException:
            self.discard_staged(case)
            raise
        logger.info("saved %s %s (%.1f s)", kind, case.id, case.duration)
        return case

    def save_take(self, kind: str, audio: AudioSource, *, origin: str, **fields: Any) -> SavedTake:
        """Save a take (the audio and text a tester saw once) as a case of ``kind``, or update the one it was saved
        as: one flag and one test case per ``origin`` (a key the page makes once per take), whatever the order or
        overlap of the presses. Flag and Save pressed at once each kept their case's id in the tab, the last one
        back overwriting the other's, so the next press added a copy; the id is found here now, in the write
        transaction, and a UNIQUE index holds it. A case deleted since is saved anew.

        An update writes what the tester changed in ``reference``, ``notes`` and (if given) ``labels`` since the
        take's last save, never over what someone changed since on Review: that stays, and ``SavedTake.kept``
        names it (see ``merge_take``). What each save sent is kept in the row's ``take_sent`` for the next one.
        """
        if not origin:
            raise StoreError("save_take needs the take's origin key")
        check_label_names(fields.get("labels"))
        sent = {k: fields[k] for k in ("reference", "notes", "labels") if fields.get(k) is not None}
        sent = {k: clean_labels(v) if k == "labels" else str(v) for k, v in sent.items()}
        with self._connect(write=True) as conn:
            found = self._update_take(conn, kind, origin, sent)
        if not found:
            case = self.stage_case(kind, audio, origin=origin, **fields)
            try:
                with self._connect(write=True) as conn:
                    found = self._update_take(conn, kind, origin, sent)  # saved meanwhile (another thread or process)
                    if not found:
                        self.insert_case(conn, case)
                        conn.execute(
                            "UPDATE cases SET take_sent = ? WHERE id = ?", (_json(_take_fields(case)), case.id)
                        )
            except BaseException:
                self.discard_staged(case)
                raise
            if not found:
                logger.info("saved %s %s (%.1f s)", kind, case.id, case.duration)
                return SavedTake(case, added=True)
            self.discard_staged(case)
        saved = self.get_case(found)
        return SavedTake(saved, added=False, kept=tuple(kept_from_take(saved, sent, fields.get("labels") or ())))

    def _update_take(self, conn: sqlite3.Connection, kind: str, origin: str, sent: Mapping[str, Any]) -> str:
        """The id of ``origin``'s case of ``kind`` after merging ``sent`` into it, or "" when there is none."""
        row = conn.execute("SELECT * FROM cases WHERE origin = ? AND kind = ?", (origin, kind)).fetchone()
        if row is None:
            return ""
        before, stored = json.loads(row["take_sent"]) if row["take_sent"] else None, self._case(row)
        values = column_values(merge_take(before, stored, sent))  # column names are ours
        values["take_sent"] = _json({**_take_fields(stored), **(before or {}), **sent})  # stored: where none sent yet
        assignments = ", ".join(f"{column} = ?" for column in values)
        conn.execute(f"UPDATE cases SET {assignments} WHERE id = ?", [*values.values(), row["id"]])
        return row["id"]

    def stage_case(self, kind: str, audio: AudioSource, **fields: Any) -> Case:
        """Write a new case's audio into place and return the case; its row is written by ``insert_case``.

        Split so that a caller (a recording session's accepted take) can insert the row in its own transaction.
        """
        if kind not in KINDS:
            raise StoreError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        check_label_names(fields.get("labels"))
        samples = load_audio(audio)
        case_id = uuid.uuid4().hex[:16]
        final = self.audio_dir / f"{case_id}.wav"
        self._write_audio_atomically(final, samples)
        return Case(
            id=case_id,
            kind=kind,
            audio_path=str(final),
            transcript=str(fields.get("transcript") or ""),
            reference=str(fields.get("reference") or ""),
            reason=str(fields.get("reason") or ""),
            labels=clean_labels(fields.get("labels")),
            notes=str(fields.get("notes") or ""),
            model=str(fields.get("model") or ""),
            backend=str(fields.get("backend") or ""),
            status="new",
            created_at=utc_now(),
            duration=samples.size / SAMPLE_RATE,
            origin=str(fields.get("origin") or ""),
        )

    def discard_staged(self, case: Case) -> None:
        """Remove the audio of a staged case whose row was never written."""
        Path(case.audio_path).unlink(missing_ok=True)

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

    def insert_case(self, conn: sqlite3.Connection, case: Case) -> None:
        """Write a staged case's row inside the caller's write transaction."""
        conn.execute(INSERT_SQL, row_values(case))

    def _case(self, row: sqlite3.Row) -> Case:
        return from_row(row, self.audio_dir)

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
        opened: Case | None = None,
    ) -> Case:
        """Change what a reviewer may change; ``labels`` replaces the whole label set. With ``opened`` (the case as
        the editor read it), only what differs from it is written, in the same transaction as the row is read, and
        a field changed meanwhile by someone else raises ``CaseConflict`` (see ``merge_edit``)."""
        if status is not None and status not in STATUSES:
            raise StoreError(f"status must be one of {', '.join(STATUSES)}, not {status!r}")
        edits = {"status": status, "labels": labels, "reference": reference, "notes": notes}
        edits = {k: v for k, v in edits.items() if v is not None}
        with self._connect(write=True) as conn:
            row = conn.execute("SELECT * FROM cases WHERE id = ?", (case_id,)).fetchone()
            if row is None:
                raise CaseNotFound(f"no test case or flag with id {case_id!r} in {self.db_path}")
            stored = self._case(row)
            check_label_names(labels, stored.labels)
            if opened is not None:
                edits = merge_edit(opened, stored, edits)
            if edits.get("labels") is not None:  # in the order the case has them (see ``in_stored_order``)
                edits["labels"] = in_stored_order(stored.labels, edits["labels"])
            changes = column_values(edits)
            if changes:
                assignments = ", ".join(f"{column} = ?" for column in changes)  # column names are ours
                conn.execute(f"UPDATE cases SET {assignments} WHERE id = ?", [*changes.values(), case_id])
        return self.get_case(case_id)

    def delete_case(self, case_id: str) -> None:
        """Remove the row, then its audio (a crash in between leaves only an unreferenced file)."""
        case = self.get_case(case_id)
        with self._connect(write=True) as conn:
            conn.execute("DELETE FROM cases WHERE id = ?", (case_id,))
        Path(case.audio_path).unlink(missing_ok=True)

    def is_empty(self) -> bool:
        """Whether the store holds nothing at all (no row in any table, no audio file): a command that made the
        store may take it back when it stops before storing anything (see ``evaluation.cli``)."""
        with self._connect() as conn:
            tables = [row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if any(conn.execute(f'SELECT 1 FROM "{table}" LIMIT 1').fetchone() for table in tables):
                return False
        return not any(self.audio_dir.iterdir())

    def sweep_audio(self, grace_s: float = STALE_TMP_S) -> int:
        """Remove audio no case names, older than ``grace_s``: half-written ``.tmp.wav`` files and the WAVs a
        crash left between writing the file and its row (or between deleting the row and the file).

        Run when a store opens and hourly by the dashboard; returns how many files went.
        """
        cutoff = time.time() - grace_s
        with self._connect() as conn:
            named = {row[0] for row in conn.execute("SELECT audio_file FROM cases")}
        removed = 0
        for path in self.audio_dir.iterdir():
            leftover = path.name.endswith(".tmp.wav") or (path.suffix == ".wav" and path.name not in named)
            with contextlib.suppress(OSError):
                if leftover and path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        if removed:
            logger.info("removed %d audio file(s) no case names from %s", removed, self.audio_dir)
        return removed


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _take_fields(case: Case) -> dict[str, Any]:
    """The fields a take's save sends (``save_take``), as ``case`` holds them."""
    return {"reference": case.reference, "notes": case.notes, "labels": case.labels}
