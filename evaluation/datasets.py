"""Datasets for validation: the built-in set, local folders and manifests, hub datasets and recorded cases.

Every source is turned into rows (a dict per row), and one function turns rows into :class:`Sample` objects
with the same column mapping (text, group and speaker columns, each given or recognised by name), the same
audio decoding (``asr.audio``: mono float32 at 16 kHz, whatever the file) and the same error handling: a row
with an empty reference or undecodable audio is skipped and reported with its row and column, never silently
dropped; a dataset with no usable row, or without the named columns, raises :class:`DatasetError`.

Audio columns are read with ``Audio(decode=False)`` and decoded here, so ``datasets`` needs no torchcodec.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from asr.audio import SAMPLE_RATE, AudioError, collect_warnings, load_audio
from evaluation.allowed import (
    AudioAllowed,
    RefusedAudio,
    check_audio_file,
    check_shard_files,
    refused_shard,
    shard_allowed,
)
from evaluation.rowsource import Rows
from evaluation.shards import AudioRef, read_values
from evaluation.sources import DatasetError, RowSource, open_source

if TYPE_CHECKING:
    from evaluation.store import Store

__all__ = ["DatasetError", "DatasetOptions", "LoadedDataset", "Sample", "SkippedRow", "load_dataset", "read_audio"]

logger = logging.getLogger(__name__)

TEXT_COLUMNS = ("text", "sentence", "transcript", "transcription", "normalized_text", "reference", "raw_text")
ACCENT_COLUMNS = ("accent", "accents", "l1", "variety")
SPEAKER_COLUMNS = ("speaker", "speaker_id", "client_id", "spk", "spk_id", "speaker_name")
MISSING_GROUP = "(none)"  # the group value of a row that leaves a group column empty
REFERENCE_LANGUAGE = "language"  # the column that says what language an utterance is in, when a dataset has one
RESULT_GROUPS = ("detected_language",)  # group columns the runner fills from the transcript, not the dataset


@dataclass(frozen=True)
class DatasetOptions:
    source: str  # "builtin", "builtin-real[:LANG]", "recorded", a folder or manifest path, or "hub:ID[:CONFIG[:SPLIT]]"
    text_column: str | None = None  # None: the first of TEXT_COLUMNS present
    group_columns: tuple[str, ...] = ()  # empty: the first of ACCENT_COLUMNS present, if any
    speaker_column: str | None = None  # None: the first of SPEAKER_COLUMNS present, if any
    audio_column: str | None = None  # None: the Audio-typed column, else a usual name (audio, file_name, ...)
    limit: int | None = None  # rows to read; spread evenly over a local dataset, the first ones of a stream
    min_words: int = 0  # only rows whose reference has at least this many words (0: all); the limit then spreads
    # over those, so a small sample of a set full of one-word prompts still holds sentences
    split: str | None = None  # for datasets with several splits (None: SPLIT of hub:, else "test" or the first)
    audio_allowed: AudioAllowed | None = field(default=None, compare=False, repr=False)  # the folders a row's
    # audio file (and the dataset's own files) may lie in (the dashboard's roots): see evaluation.allowed

    def validate(self) -> DatasetOptions:
        if not str(self.source).strip():
            raise DatasetError("no dataset given; use builtin, recorded, a folder, a manifest or hub:ID")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise DatasetError(f"limit must be a positive integer, not {self.limit!r}")
        if not isinstance(self.min_words, int) or self.min_words < 0:
            raise DatasetError(f"min_words must be an integer >= 0, not {self.min_words!r}")
        return self


@dataclass(frozen=True)
class Sample:
    id: str  # unique within the dataset and stable between loads (resuming relies on it)
    audio: np.ndarray | None = field(repr=False)  # mono float32 at 16 kHz; None while left in the dataset's files
    text: str  # the reference, raw (normalized only when scored)
    groups: Mapping[str, str]  # group column -> value
    speaker: str | None  # the speaker, when the dataset names one
    row: int  # the row in the source (counted from 0, as datasets does)
    audio_ref: AudioRef | None = None  # where the audio lies when the worker reads it (see read_audio)
    audio_note: str = ""  # what reading it did to the samples ("": nothing), e.g. loud float audio scaled back

    @property
    def seconds(self) -> float:
        if self.audio is None:
            raise ValueError(f"sample {self.id}: its audio is not read yet (it is read by the worker)")
        return self.audio.size / SAMPLE_RATE


@dataclass(frozen=True)
class SkippedRow:
    row: int
    column: str
    reason: str

    def message(self, dataset: str) -> str:
        return f"{dataset}: row {self.row}, column {self.column!r}: {self.reason}"


@dataclass(frozen=True)
class LoadedDataset:
    name: str
    samples: tuple[Sample, ...]
    text_column: str
    audio_column: str
    group_columns: tuple[str, ...]
    speaker_column: str | None
    skipped: tuple[SkippedRow, ...]
    rows_read: int

    @property
    def audio_seconds(self) -> float:
        """Seconds of audio read here (samples whose audio the workers read count for nothing)."""
        return sum(s.seconds for s in self.samples if s.audio is not None)

    @property
    def deferred(self) -> bool:
        """Whether the samples' audio is left in the dataset's files, for the workers to read."""
        return any(s.audio_ref is not None for s in self.samples)


def _pick(columns: Iterable[str], given: str | None, known: tuple[str, ...], what: str, name: str) -> str | None:
    columns = list(columns)
    if given:
        if given not in columns:
            raise DatasetError(f"dataset {name}: no {what} column {given!r} (columns: {', '.join(columns) or 'none'})")
        return given
    lower = {c.lower(): c for c in columns}
    return next((lower[k] for k in known if k in lower), None)


def _resolve_columns(source: RowSource, options: DatasetOptions) -> tuple[str, str, tuple[str, ...], str | None]:
    name, columns = source.name, source.columns
    text = _pick(columns, options.text_column, TEXT_COLUMNS, "text", name)
    if text is None:
        raise DatasetError(
            f"dataset {name}: no text column (looked for {', '.join(TEXT_COLUMNS)}; columns: "
            f"{', '.join(columns) or 'none'}); say which with --text-column"
        )
    audio = _pick(columns, options.audio_column, source.audio_candidates, "audio", name)
    if audio is None:
        raise DatasetError(
            f"dataset {name}: no audio column (looked for {', '.join(source.audio_candidates)}; columns: "
            f"{', '.join(columns) or 'none'}); rename the one that holds the audio to one of those"
        )
    if options.group_columns:
        groups = tuple(
            g if g in RESULT_GROUPS else _pick(columns, g, (), "group", name) or g for g in options.group_columns
        )
    elif source.default_groups:
        groups = source.default_groups
    else:
        accent = _pick(columns, None, ACCENT_COLUMNS, "group", name)
        groups = (accent,) if accent else ()
    speaker = _pick(columns, options.speaker_column, SPEAKER_COLUMNS, "speaker", name)
    reserved = {"id", "noise", "reference", "hypothesis"} & set(groups)
    if reserved:
        raise DatasetError(f"dataset {name}: {', '.join(sorted(reserved))} cannot be a group column (a result name)")
    return text, audio, groups, speaker


def _is_empty(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return not str(value).strip()


def _has_words(text: Any) -> bool:
    """Whether a reference keeps a word through the language-neutral normalizer. One of punctuation or a bracketed
    note alone ("...", "[noise]") was scored: WER n/a for the row, and its hypothesis's words, insertions against no
    reference word, raised the pooled WER of the run (400% over two rows)."""
    from evaluation.normalizer import get_normalizer

    return bool(get_normalizer("whisper-basic")(str(text)).split())


def _label(value: Any) -> str:
    if _is_empty(value):
        return MISSING_GROUP
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value) or MISSING_GROUP
    return str(value).strip()


def _sample_id(row_index: int, row: Mapping[str, Any], audio_value: Any, seen: set[str]) -> str:
    """The row's ``id`` if it has one, else the audio file's stem; made unique with the row number."""
    if not _is_empty(row.get("id")):
        base = str(row["id"])
    else:
        path = audio_value.get("path") if isinstance(audio_value, (Mapping, AudioRef)) else audio_value
        base = Path(str(path)).stem if isinstance(path, str) and path else f"row-{row_index}"
    ident = base if base not in seen else f"{base}#{row_index}"
    seen.add(ident)
    return ident


def _decode_noted(value: Any, source: RowSource, allowed: AudioAllowed | None = None) -> tuple[np.ndarray, str]:
    """The decoded audio and what decoding did to it: the engine's warnings (loud float audio scaled back into
    range), which results.csv shows in the row's ``audio_note`` rather than a log line a tester never connects
    with the row. The engine says "WHAT: detail"; the row keeps the detail (the row names its file already)."""
    with collect_warnings() as notes:
        audio = _decode(value, source, allowed)
    return audio, "; ".join(note.rsplit(": ", 1)[-1] for note in notes)


def _decode(value: Any, source: RowSource, allowed: AudioAllowed | None = None) -> np.ndarray:
    if isinstance(value, Mapping):
        if value.get("bytes"):
            return load_audio(bytes(value["bytes"]))
        if value.get("array") is not None:
            return load_audio((int(value["sampling_rate"]), np.asarray(value["array"])))
        value = value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return load_audio(bytes(value))
    if isinstance(value, str) and value.strip():
        if "://" in value:
            check_audio_file(value, allowed)
            return load_audio(_remote(source, value))
        path = Path(value).expanduser()
        if not path.is_absolute() and source.base_dir is not None:
            path = source.base_dir / path
        check_audio_file(path, allowed)
        if not path.exists():  # said "undecodable audio: P: no such file": there was nothing to decode
            raise MissingAudio(f"missing audio file {path}")
        return load_audio(path)
    if _is_empty(value):  # a manifest row without its file: it said "no audio (got str '')" or "(got float 'nan')"
        raise AudioError("the cell is empty: no audio file is named")
    raise AudioError(f"no audio (got {type(value).__name__} {str(value)[:60]!r})")


def _remote(source: RowSource, url: str) -> bytes:
    """A row's audio at a URL; one that cannot be read is that row's problem, not the run's (an ImportError for
    HTTP without fsspec's extras, a ValueError for an unknown scheme, stopped the run with a traceback)."""
    try:
        return source.read_remote(url)
    except (ImportError, ValueError, OSError) as exc:
        raise AudioError(f"cannot read {url}: {' '.join(str(exc).split())}") from exc


class MissingAudio(AudioError):
    """A row naming an audio file that is not there."""


def _skip_reason(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, (MissingAudio, RefusedAudio)) else f"undecodable audio: {exc}"


def _samples(source: RowSource, options: DatasetOptions, defer: bool) -> LoadedDataset:
    text_col, audio_col, groups, speaker_col = _resolve_columns(source, options)
    defer = defer and source.deferred is not None and audio_col in source.deferred_columns
    samples: list[Sample] = []
    skipped: list[SkippedRow] = []
    seen: set[str] = set()
    rows_read = 0
    for index, row in _selected(source, options, text_col, defer):
        rows_read += 1
        if _is_empty(row.get(text_col)) and not source.empty_text_ok:
            skipped.append(SkippedRow(index, text_col, "the reference text is empty"))
            continue
        if not source.empty_text_ok and not _has_words(row[text_col]):
            skipped.append(
                SkippedRow(index, text_col, f"the reference {str(row[text_col]).strip()!r} has no words to score")
            )
            continue
        value = row.get(audio_col)
        try:
            audio, note = (
                (None, "") if isinstance(value, AudioRef) else _decode_noted(value, source, options.audio_allowed)
            )
        except (AudioError, OSError) as exc:
            skipped.append(SkippedRow(index, audio_col, _skip_reason(exc)))
            continue
        samples.append(
            Sample(
                id=_sample_id(index, row, value, seen),
                audio=audio,
                audio_ref=value if isinstance(value, AudioRef) else None,
                text="" if _is_empty(row.get(text_col)) else str(row[text_col]).strip(),
                groups={g: _label(row.get(g)) for g in groups if g not in RESULT_GROUPS},
                speaker=None if speaker_col is None or _is_empty(row.get(speaker_col)) else str(row[speaker_col]),
                row=index,
                audio_note=note,
            )
        )
    for skip in skipped:  # DEBUG: the run's summary lists them (the CLI printed each twice, log and summary)
        logger.debug("skipped %s", skip.message(source.name))
    if not samples:
        reasons = "; ".join(s.message(source.name) for s in skipped[:3])
        if options.min_words and not rows_read:
            raise DatasetError(f"dataset {source.name}: no row has {options.min_words}+ words in {text_col!r}")
        if not rows_read:  # said "no usable rows out of 0"
            raise DatasetError(f"dataset {source.name}: it has no rows (columns: {', '.join(source.columns)})")
        raise DatasetError(
            f"dataset {source.name}: no usable rows out of {rows_read}" + (f" ({reasons})" if reasons else "")
        )
    return LoadedDataset(
        source.name, tuple(samples), text_col, audio_col, groups, speaker_col, tuple(skipped), rows_read
    )


def _selected(source: RowSource, options: DatasetOptions, text_col: str, defer: bool) -> Rows:
    """The rows a run takes: those with ``min_words`` reference words or more, then ``limit`` of them spread evenly.

    The word filter reads every row's text first (the audio of the chosen rows only, afterwards); on a stream it
    keeps the first long-enough rows, reading no further than the limit needs.
    """
    rows = source.deferred if defer else source.rows
    if not options.min_words:
        return _limited(rows, source.length, options.limit)

    def long_enough(row: Mapping[str, Any]) -> bool:
        return not _is_empty(row.get(text_col)) and len(str(row[text_col]).split()) >= options.min_words

    if source.length is None:
        kept = ((index, row) for index, row in rows(None) if long_enough(row))
        return itertools.islice(kept, options.limit)
    positions = [n for n, (_, row) in enumerate(source.rows(None)) if long_enough(row)]
    if options.limit is not None and len(positions) > options.limit:
        positions = [positions[i] for i in _spread(len(positions), options.limit)]
    return rows(positions) if positions else iter(())


def _spread(length: int, limit: int) -> list[int]:
    """``limit`` positions out of ``length``, evenly spaced from the first to the last (so every group shows up)."""
    return sorted({int(round(i)) for i in np.linspace(0, length - 1, limit)})


def _limited(rows: Callable[[Any], Rows], length: int | None, limit: int | None) -> Rows:
    """Evenly spaced rows of a dataset of known length (so every group shows up), else the first ones."""
    if limit is None:
        yield from rows(None)
        return
    if length is not None and length > limit:
        yield from rows(_spread(length, limit))
        return
    for n, item in enumerate(rows(None)):
        if n >= limit:
            return
        yield item


def load_dataset(options: DatasetOptions, store: Store | None = None, defer_audio: bool = False) -> LoadedDataset:
    """Load every usable sample of ``options.source`` (the store is needed for ``recorded``).

    ``defer_audio``: where the dataset keeps its audio in Parquet or Arrow files, leave it there (each sample an
    ``audio_ref``, its ``audio`` None) for the worker that decodes the row to read with :func:`read_audio`; rows
    whose audio cannot be decoded are then skipped by the worker, with the same message.
    """
    options = options.validate()
    source = open_source(options.source, split=options.split, store=store)
    check_shard_files(source.name, source.shard_files, options.audio_allowed)  # the files a worker would open
    loaded = _samples(source, options, defer_audio)
    logger.info(
        "dataset %s: %d samples (%.0f s), %d rows skipped",
        loaded.name,
        len(loaded.samples),
        loaded.audio_seconds,
        len(loaded.skipped),
    )
    return loaded


def read_audio(samples: Sequence[Sample], allowed: AudioAllowed | None = None) -> tuple[list[Sample], list[SkippedRow]]:
    """Samples whose audio was left in the dataset's files, with it read and decoded; the undecodable skipped.

    The one place such audio is read (in the worker that decodes the rows); samples already holding audio pass
    through. A skipped row gets the message the driver gives one it cannot decode, a file outside ``allowed``
    too (the driver's ``DatasetOptions.audio_allowed``: the files and what their rows name, checked before opening).
    """
    refs = [s.audio_ref for s in samples if s.audio is None and s.audio_ref is not None]
    values = iter(read_values([r for r in refs if shard_allowed(r.file, allowed)]))
    ready: list[Sample] = []
    skipped: list[SkippedRow] = []
    for sample in samples:
        ref = sample.audio_ref
        if sample.audio is not None or ref is None:
            ready.append(sample)
            continue
        if not shard_allowed(ref.file, allowed):  # (the driver refuses such a dataset before shipping a row of it)
            skipped.append(SkippedRow(sample.row, ref.column, refused_shard(ref.file)))
            continue
        value = next(values)
        base = Path(ref.base_dir) if ref.base_dir else None  # the driver's, for a relative path (see hubsource)
        where = RowSource(ref.file, (), lambda indices: iter(()), None, base_dir=base)
        try:
            audio, note = _decode_noted(value, where, allowed)
            ready.append(dataclasses.replace(sample, audio=audio, audio_note=note))
        except (AudioError, OSError) as exc:
            skipped.append(SkippedRow(sample.row, ref.column, _skip_reason(exc)))
    return ready, skipped
