"""What every dataset source yields: a :class:`RowSource` of raw rows, and the one error a dataset raises.

Kept apart from :mod:`evaluation.sources` (which picks the source for a name) so that a source defined in its
own module, such as :mod:`evaluation.probes`, builds on these types without importing the module that
dispatches to it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AUDIO_NAMES = ("audio", "audio_filepath", "file_name", "audio_path", "path", "file", "filename", "wav")

Rows = Iterator[tuple[int, Mapping[str, Any]]]


class DatasetError(ValueError):
    """A dataset that cannot be used at all (missing, no such column, nothing usable), with what to do."""


@dataclass(frozen=True)
class RowSource:
    name: str  # what messages call the dataset
    columns: tuple[str, ...]
    iterate: Callable[[Sequence[int] | None], Rows]  # all rows, or only these row numbers
    length: int | None  # None for a stream
    base_dir: Path | None = None  # relative audio paths are relative to this folder
    audio_candidates: tuple[str, ...] = AUDIO_NAMES  # audio column names, best first
    default_groups: tuple[str, ...] = ()  # group columns when none are named (empty: the accent column, if any)
    empty_text_ok: bool = False  # an empty reference is a row to score (the probes: nothing should be heard)
    # The same rows with each audio value of these columns an evaluation.shards.AudioRef, nothing of the audio
    # read (Parquet or Arrow files): a cluster's workers then read each row's audio themselves. None: no such.
    deferred: Callable[[Sequence[int] | None], Rows] | None = None
    deferred_columns: tuple[str, ...] = ()
    shard_files: tuple[str, ...] = ()  # the files ``deferred`` reads (a worker opens them: see evaluation.allowed)

    def rows(self, indices: Sequence[int] | None) -> Rows:
        return self.iterate(indices)

    def read_remote(self, url: str) -> bytes:
        """Audio stored at a URL (hub datasets that keep audio as files): read through datasets' fsspec."""
        from datasets.utils.file_utils import xopen

        with xopen(url, "rb") as f:
            return f.read()
