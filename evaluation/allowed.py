"""Which files a dataset's audio may be read from: one check wherever a run opens audio, the driver or a worker.

The dashboard reads datasets only under its roots (``dashboard/roots.py``), and a row naming an audio file outside
them is skipped unread (``DatasetOptions.audio_allowed``; the command line sets none and reads any file). A run
opens audio in two places: the driver, decoding each row's bytes, file or URL as it loads the dataset; and, on a
Ray cluster, the worker that reads a row's audio from the dataset's own Parquet or Arrow files
(:func:`evaluation.datasets.read_audio`). Both pass the same predicate through the same functions here: the
files themselves (a symlink in the dataset's folder may point anywhere) and any file a row of them names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from asr.audio import AudioError
from evaluation.rowsource import DatasetError

AudioAllowed = Callable[[Path], bool]  # true for a file that may be read (the predicate resolves symlinks, ../)
ROOTS = "this dashboard reads only its data folder, the built-in sets and folders named with --dataset-root DIR"


class RefusedAudio(AudioError):
    """A row naming an audio file outside the folders the caller reads (the message says nothing of existence)."""


def check_audio_file(path: Path | str, allowed: AudioAllowed | None) -> None:
    """Refuse, before anything is read, a file outside ``allowed``: ``../``, an absolute path, a symlink out of the
    dataset's root (``allowed`` resolves it) or a URL; the same words whether the file is there or not."""
    if allowed is not None and ("://" in str(path) or not allowed(Path(path))):
        raise RefusedAudio(f"audio file {path} refused: {ROOTS}")


def shard_allowed(file: str, allowed: AudioAllowed | None) -> bool:
    """Whether a dataset's own Parquet or Arrow file may be opened: the page checked the dataset's folder, but a
    file in it may be a symlink out of the root. Files on the hub (``hf://``) are a hub dataset's own, which the
    page allows by its id."""
    return allowed is None or "://" in file or allowed(Path(file))


def refused_shard(file: str) -> str:
    return f"file {file} refused: {ROOTS}"


def check_shard_files(dataset: str, files: Iterable[str], allowed: AudioAllowed | None) -> None:
    """Refuse a dataset any of whose Parquet or Arrow files (the ones a cluster's workers open) is not allowed."""
    for file in files:
        if not shard_allowed(file, allowed):
            raise DatasetError(f"dataset {dataset}: {refused_shard(file)}")


__all__ = ["AudioAllowed", "RefusedAudio", "check_audio_file", "check_shard_files", "refused_shard", "shard_allowed"]
