"""Validation runs in the store: their settings, state and per-utterance results (mixed into ``Store``).

A run is registered before its first result and its rows are written chunk by chunk, so an interrupted run can
be found and resumed; rows are JSON so that a dataset's own group columns need no schema change.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import platform
import sqlite3
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

RUN_STATES = ("running", "finished", "cancelled", "failed")
PACKAGES = ("asr-qa", "faster-whisper", "ctranslate2", "transformers", "torch", "jiwer", "datasets", "numpy")


def package_versions() -> dict[str, str]:
    """The installed versions of what a run's figures depend on, stored in its settings (``packages``)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def noise_key(noise: str, mode: str | None = None) -> str:
    """The stored key of a row's condition: the noise spec, marked ``#streaming`` for a streaming-mode row (so the
    offline and streaming rows of one utterance and condition are two rows)."""
    return str(noise) if mode in (None, "offline") else f"{noise}#{mode}"


class StoreError(ValueError):
    """A bad argument to the store (unknown status or kind), with the value quoted."""


class RunNotFound(KeyError):
    """No validation run with this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "run not found"


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
    min_words: int = 0  # only utterances with this many reference words or more were taken (0: all)
    text_column: str | None = None
    group_columns: tuple[str, ...] = ()
    speaker_column: str | None = None  # the dataset column naming speakers (the CI resamples them)
    split: str | None = None
    executor: str = "local"  # where the rows were computed: local, ray or ray://HOST:PORT (results do not depend on it)
    mode: str = "offline"  # offline, streaming or both (evaluation.streaming)
    stream_seconds: float | None = None  # streaming: rows joined into streams this long (None: one stream per row)
    stream_sessions: int = 1  # streaming: streams at once on one worker
    stream_clock: str = ""  # streaming: what the simulated clock advanced by, modelled or measured ("": no
    # streaming rows, or a run made before the modelled clock, which was measured)
    stream_cost_model: Mapping[str, Any] = field(default_factory=dict)  # the modelled clock's coefficients
    language: str | None = None  # the language every utterance was decoded in (None: the model's own or detected)
    packages: Mapping[str, str] = field(default_factory=dict)  # package name -> version
    omp_wait: str = ""  # the OpenMP wait policy the run's process had (asr.omp_wait_setting); speed only, not text
    created_at: str = ""  # ISO 8601 UTC; filled by create_run when empty

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["noise"] = list(self.noise)
        data["group_columns"] = list(self.group_columns)
        data["packages"] = dict(self.packages)
        data["stream_cost_model"] = dict(self.stream_cost_model)
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


Connect = Callable[..., contextlib.AbstractContextManager[sqlite3.Connection]]


class Runs:
    """Validation runs and their per-utterance results: the store's ``runs`` part (``store.runs.create_run``).

    It is given the store's connection factory (one connection per call, ``write=True`` for a write
    transaction) rather than inheriting it, so the store decides how to connect and this part only what to write.
    """

    def __init__(self, connect: Connect, db_path: Path) -> None:
        self._connect = connect
        self.db_path = db_path  # named in not-found messages

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
                    (
                        run_id,
                        str(r["id"]),
                        noise_key(r["noise"], r.get("mode")),
                        seq + i,
                        json.dumps(dict(r), default=_json_default),
                    )
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


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in a result row")
