"""A dataset's audio read where it is decoded: rows located in the dataset's files by the driver, read by a worker.

Why: a hub dataset of 100k utterances holds tens of GB of audio. A run on a cluster should not pull all of it
through the driver, so for datasets kept as Parquet files (the hub's own format, and its ``refs/convert/parquet``
copies) or Arrow files (``save_to_disk``), the driver reads only what plans the rows: every column but the audio,
and the audio's file name (for ids). Each row then carries an :class:`AudioRef` (file, row within it, column) and
the worker that decodes the row reads only that row's audio, from the file or URL directly (``hf://`` through the
hub's fsspec file system). This is what Ray Data's ``from_huggingface`` does for hub datasets (``read_parquet``
over the hub's Parquet files), done row by row so that a row keeps its place in the run: its batch, its resume
key, the rows ``--limit`` picks.
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from evaluation.rowsource import Rows

PARQUET = "parquet"
ARROW = "arrow"  # datasets' save_to_disk files: Arrow IPC streams, memory-mapped
AUDIO_STRUCT = ("bytes", "path")  # how datasets stores an Audio feature


@dataclass(frozen=True)
class AudioRef:
    """Where one row's audio lies; small and picklable, so it travels to the worker instead of the audio."""

    file: str  # a local path or a URL fsspec opens (hf://datasets/ID@REVISION/...)
    row: int  # the row within that file
    column: str  # the audio column
    kind: str  # PARQUET or ARROW
    path: str | None = None  # the audio's own file name as the dataset stores it (ids, messages)
    base_dir: str | None = None  # the driver's folder for a row naming its audio by a relative path (no bytes):
    # the worker reads it where the driver would have (RowSource.base_dir), not beside this file

    def get(self, key: str, default: Any = None) -> Any:
        """Reads as the undecoded value does (``value.get("path")``), so ids come out as for a loaded row."""
        return self.path if key == "path" else default


def audio_columns(schema: pa.Schema, candidates: Sequence[str]) -> list[str]:
    """The Audio-typed columns (datasets' feature metadata), else struct<bytes, path> columns with a usual name."""
    features = _features(schema)
    typed = [name for name, f in features.items() if isinstance(f, Mapping) and f.get("_type") == "Audio"]
    if typed:
        return [c for c in typed if c in schema.names]
    return [c for c in candidates if c in schema.names and _is_audio_struct(schema.field(c).type)]


def _features(schema: pa.Schema) -> Mapping[str, Any]:
    raw = (schema.metadata or {}).get(b"huggingface")
    try:
        return json.loads(raw)["info"]["features"] if raw else {}
    except (ValueError, KeyError, TypeError):
        return {}


def _is_audio_struct(kind: pa.DataType) -> bool:
    return pa.types.is_struct(kind) and {kind.field(i).name for i in range(kind.num_fields)} >= set(AUDIO_STRUCT)


def file_rows(file: str, kind: str, audio: Sequence[str], base_dir: str | None = None) -> Iterator[dict[str, Any]]:
    """One file's rows for planning: every column but the audio, each audio value an :class:`AudioRef`.

    Parquet: only the other columns' chunks and the audio's ``path`` child are read; Arrow: the file is
    memory-mapped and the audio bytes are never touched.
    """
    table = _plan_table(file, kind, audio)
    others = [c for c in table.column_names if c not in audio]
    paths = {c: pc.struct_field(table.column(c), "path").to_pylist() for c in audio}  # chunk by chunk: no bytes
    for row, values in enumerate(table.select(others).to_pylist()):
        for column in audio:
            values[column] = AudioRef(file, row, column, kind, paths[column][row], base_dir)
        yield values


def _plan_table(file: str, kind: str, audio: Sequence[str]) -> pa.Table:
    if kind == PARQUET:
        reader = _parquet(file)
        names = reader.schema_arrow.names
        return reader.read(columns=[c for c in names if c not in audio] + [f"{c}.path" for c in audio])
    return _arrow(file)


def shard_rows(
    files: Sequence[str], kind: str, audio: Sequence[str], base_dir: str | None = None
) -> Callable[[Sequence[int] | None], Rows]:
    """A dataset's rows over its files in order (row numbers counted across them), for planning."""

    def iterate(indices: Sequence[int] | None) -> Rows:
        rows = enumerate(itertools.chain.from_iterable(file_rows(f, kind, audio, base_dir) for f in files))
        if indices is None:
            yield from rows
            return
        wanted = set(indices)
        last = max(wanted, default=-1)
        for number, row in rows:
            if number in wanted:
                yield number, row
            if number >= last:
                return

    return iterate


def schema_of(file: str, kind: str) -> pa.Schema:
    """A file's columns and feature metadata (Parquet: its footer only)."""
    return _parquet(file).schema_arrow if kind == PARQUET else _arrow(file).schema


def read_values(refs: Sequence[AudioRef]) -> list[Mapping[str, Any]]:
    """The undecoded audio values (``{"bytes", "path"}``) of these rows, in order; each file opened once.

    Parquet is read by row group (the smallest unit it stores), the audio column only; Arrow by row, from the
    memory-mapped file.
    """
    values: dict[int, Mapping[str, Any]] = {}
    by_file: dict[tuple[str, str, str], list[int]] = {}
    for i, ref in enumerate(refs):
        by_file.setdefault((ref.file, ref.kind, ref.column), []).append(i)
    for (file, kind, column), indices in by_file.items():
        rows = [refs[i].row for i in indices]
        found = _parquet_rows(file, column, rows) if kind == PARQUET else _arrow_rows(file, column, rows)
        values.update(zip(indices, found, strict=True))
    return [values[i] for i in range(len(refs))]


def _parquet_rows(file: str, column: str, rows: Sequence[int]) -> list[Mapping[str, Any]]:
    reader = _parquet(file)
    starts, total = [], 0
    for group in range(reader.metadata.num_row_groups):
        starts.append(total)
        total += reader.metadata.row_group(group).num_rows
    wanted: dict[int, list[int]] = {}
    for row in rows:
        if not 0 <= row < total:
            raise IndexError(f"{file}: no row {row} (the file has {total})")
        group = max(g for g, start in enumerate(starts) if start <= row)
        wanted.setdefault(group, []).append(row)
    found: dict[int, Mapping[str, Any]] = {}
    for group, members in wanted.items():
        values = reader.read_row_group(group, columns=[column]).column(column)
        for row in members:
            found[row] = values[row - starts[group]].as_py()
    return [found[row] for row in rows]


def _arrow_rows(file: str, column: str, rows: Sequence[int]) -> list[Mapping[str, Any]]:
    return _arrow(file).column(column).take(pa.array(rows, pa.int64())).to_pylist()


@functools.lru_cache(maxsize=16)
def _parquet(file: str) -> pq.ParquetFile:
    """An open Parquet file (its footer read once per process: a hub file costs a request to open)."""
    if "://" in file:
        import fsspec

        return pq.ParquetFile(fsspec.open(file, "rb").open())
    return pq.ParquetFile(file, memory_map=True)


@functools.lru_cache(maxsize=16)
def _arrow(file: str) -> pa.Table:
    """A memory-mapped Arrow file: pages are read from disk only when a row's values are touched."""
    return pa.ipc.open_stream(pa.memory_map(file, "r")).read_all()  # the table's buffers keep the map open


__all__ = ["ARROW", "PARQUET", "AudioRef", "audio_columns", "file_rows", "read_values", "schema_of", "shard_rows"]
