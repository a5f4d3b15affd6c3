"""The validation runner: dataset x noise conditions through the engine, scored, stored, summarized.

The dashboard's Validate page and ``python -m evaluation run`` both call :func:`run_validation`. Utterances
go through ``asr.transcribe.transcribe_many`` (the same VAD, packing and batching as the other pages) in
chunks; each chunk's rows are stored before the next starts, so a run that is cancelled, interrupted or killed
is resumed by running it again with the same run id: utterances already stored are skipped.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import logging
import platform
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from asr.backends import DEFAULT_BACKEND, get_backend
from asr.models import default_model
from asr.results import BACKENDS, DecodeOptions, Transcript
from asr.transcribe import transcribe_many
from evaluation.datasets import DatasetError, DatasetOptions, LoadedDataset, Sample, SkippedRow, load_dataset
from evaluation.metrics import is_runaway, score
from evaluation.noise import Mixed, Mixer, NoiseCondition, parse_conditions
from evaluation.normalizer import DEFAULT_NORMALIZER, NORMALIZERS, Normalizer, get_normalizer
from evaluation.report import Summary, summarize
from evaluation.sources import canonical_source
from evaluation.store import RunSettings, Store, StoreError, utc_now
from evaluation.tables import N_BOOTSTRAP

logger = logging.getLogger(__name__)

Progress = Callable[[int, int, str], None]  # (items done, items in all, what is happening)
PACKAGES = ("asr-qa", "faster-whisper", "ctranslate2", "transformers", "torch", "jiwer", "datasets", "numpy")
RESULT_FIELDS = ("id", "row", "speaker", "noise", "reference", "hypothesis", "wer", "cer", "errors", "ref_words")
SETTINGS_THAT_MATTER = ("model", "backend", "dataset", "noise", "seed", "normalizer", "normalizer_version", "limit")


class RunError(ValueError):
    """A run that cannot start (bad option, settings that differ from the run being resumed)."""


class Cancelled(Exception):
    """Raised inside a batch when the cancel event is set, to stop between model calls."""


@dataclass(frozen=True)
class RunOptions:
    """One validation run. Frozen; change with :func:`dataclasses.replace`."""

    dataset: str = "builtin"  # builtin, recorded, a folder or manifest, or hub:ID[:CONFIG[:SPLIT]]
    noise: tuple[str, ...] = ("clean",)  # condition specs, see evaluation.noise.FULL_USAGE
    model: str = ""  # "" is the registry's default model
    backend: str = DEFAULT_BACKEND
    device: str = "auto"
    limit: int | None = None  # utterances taken from the dataset
    text_column: str | None = None
    group_columns: tuple[str, ...] = ()  # empty: the accent column when one is recognised
    speaker_column: str | None = None
    split: str | None = None
    seed: int = 0  # noise mixing and bootstrap
    normalizer: str = DEFAULT_NORMALIZER
    run_id: str | None = None  # resume this run (or create it under this id)
    chunk_size: int = 16  # utterances per model round and per stored chunk
    decode: DecodeOptions = field(default_factory=lambda: DecodeOptions(word_timestamps=False))
    n_boot: int = N_BOOTSTRAP

    def validate(self) -> RunOptions:
        if self.backend not in BACKENDS:
            raise RunError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        if self.normalizer not in NORMALIZERS:
            raise RunError(f"unknown normalizer {self.normalizer!r}; choose one of: {', '.join(NORMALIZERS)}")
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise RunError(f"chunk_size must be a positive integer, not {self.chunk_size!r}")
        if self.limit is not None and (not isinstance(self.limit, int) or self.limit < 1):
            raise RunError(f"limit must be a positive integer, not {self.limit!r}")
        parse_conditions(self.noise)
        self.decode.validate()
        return self

    @property
    def model_name(self) -> str:
        return self.model or default_model()


@dataclass(frozen=True)
class RunResult:
    run_id: str
    status: str  # "finished" or "cancelled"
    settings: RunSettings
    rows: pd.DataFrame = field(repr=False)  # one row per utterance x condition (see report.results_frame)
    summary: Summary = field(repr=False)  # overall figures, group tables, the accent x noise pivot
    dataset: str
    skipped: tuple[str, ...]  # one message per skipped dataset row
    wall_seconds: float  # this call's wall time, dataset loading and model loading excluded
    audio_seconds_done: float  # audio transcribed by this call (resumed rows excluded)
    resumed_rows: int  # rows found already stored when the call started

    @property
    def speed(self) -> float:
        """Audio seconds per wall second of this call (noise mixing, VAD, decoding and scoring included)."""
        return self.audio_seconds_done / self.wall_seconds if self.wall_seconds > 0 else float("nan")


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def make_settings(options: RunOptions, data: LoadedDataset, normalizer: Normalizer) -> RunSettings:
    return RunSettings(
        model=options.model_name,
        backend=options.backend,
        dataset=options.dataset,
        noise=tuple(c.spec for c in parse_conditions(options.noise)),
        seed=options.seed,
        normalizer=normalizer.name,
        normalizer_version=normalizer.version,
        limit=options.limit,
        text_column=data.text_column,
        group_columns=data.group_columns,
        speaker_column=data.speaker_column,
        split=options.split,
        packages=package_versions(),
        created_at=utc_now(),
    )


def _open_run(store: Store, settings: RunSettings, run_id: str | None) -> tuple[str, set[tuple[str, str]]]:
    """Create the run, or reopen it for resuming when ``run_id`` exists and was made the same way."""
    if run_id:
        try:
            run = store.get_run(run_id)
        except KeyError:
            return store.create_run(settings, run_id), set()
        old, new = run.settings.to_json(), settings.to_json()
        for key in SETTINGS_THAT_MATTER:
            if old.get(key) != new.get(key):
                raise RunError(
                    f"run {run_id} was made with {key}={old.get(key)!r}, not {new.get(key)!r}; use a new run id"
                )
        store.reopen_run(run_id)
        return run_id, store.result_keys(run_id)
    try:
        return store.create_run(settings), set()
    except StoreError as exc:
        raise RunError(str(exc)) from exc


def _row(sample: Sample, mixed: Mixed, transcript: Transcript, normalizer: Normalizer) -> dict[str, Any]:
    s, p = score(sample.text, transcript.text, normalizer), mixed.provenance
    return {
        "id": sample.id,
        "row": sample.row,
        "speaker": sample.speaker,
        **sample.groups,
        "noise": p.condition,
        "reference": sample.text,
        "hypothesis": transcript.text,
        "wer": s.wer,
        "cer": s.cer,
        "raw_wer": s.raw_wer,
        "substitutions": s.substitutions,
        "deletions": s.deletions,
        "insertions": s.insertions,
        "hits": s.hits,
        "errors": s.errors,
        "ref_words": s.ref_words,
        "hyp_words": s.hyp_words,
        "runaway": is_runaway(transcript.text),
        "char_errors": s.char_errors,
        "ref_chars": s.ref_chars,
        "raw_errors": s.raw_errors,
        "raw_ref_words": s.raw_ref_words,
        "audio_seconds": transcript.duration,
        "compute_seconds": transcript.compute_seconds,
        "noise_kind": p.kind,
        "snr_db_requested": p.snr_db_requested,
        "snr_db_measured": p.snr_db_measured,
        "rt60": p.rt60,
        "rt60_measured": p.rt60_measured,
        "noise_file": p.noise_file,
        "noise_offset": p.noise_offset,
        "babble_sources": ";".join(p.babble_sources),
        "noise_seed": p.seed,
        "mix_gain": p.gain,
        "channel": p.channel,
        "channel_detail": p.channel_detail,
        "packets_lost": p.packets_lost,
    }


@dataclass(frozen=True)
class _Item:
    sample: Sample
    condition: NoiseCondition


def _pending(data: LoadedDataset, conditions: Sequence[NoiseCondition], done: set[tuple[str, str]]) -> list[_Item]:
    return [_Item(s, c) for c in conditions for s in data.samples if (s.id, c.spec) not in done]


def _check_columns(data: LoadedDataset) -> None:
    clash = set(data.group_columns) & (set(RESULT_FIELDS) - {"speaker"})
    if clash:
        raise DatasetError(f"dataset {data.name}: group column(s) {', '.join(sorted(clash))} clash with result columns")


def run_validation(
    options: RunOptions,
    store: Store,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> RunResult:
    """Run (or resume) a validation; returns its tables. Raises DatasetError, RunError or the engine's errors."""
    options = dataclasses.replace(options.validate(), dataset=canonical_source(options.dataset))
    normalizer = get_normalizer(options.normalizer)
    conditions = parse_conditions(options.noise)
    data = load_dataset(_dataset_options(options), store)
    _check_columns(data)
    backend = get_backend(options.model_name, options.backend, options.device)
    settings = make_settings(options, data, normalizer)
    run_id, done = _open_run(store, settings, options.run_id)
    settings = store.get_run(run_id).settings
    items = _pending(data, conditions, done)
    total = len(data.samples) * len(conditions)
    report = progress or (lambda done_, total_, message: None)
    report(total - len(items), total, f"run {run_id}: {len(items)} of {total} to transcribe")
    mixer = Mixer(options.seed, {s.id: s.audio for s in data.samples})
    started, audio_done, status = time.perf_counter(), 0.0, "finished"
    try:
        for start in range(0, len(items), options.chunk_size):
            if cancel is not None and cancel.is_set():
                raise Cancelled
            chunk = items[start : start + options.chunk_size]
            rows = _run_chunk(chunk, mixer, backend, options, normalizer, cancel)
            store.add_results(run_id, rows)
            audio_done += sum(r["audio_seconds"] for r in rows)
            report(total - len(items) + start + len(chunk), total, f"{chunk[-1].condition.spec}: {chunk[-1].sample.id}")
    except Cancelled:
        status = "cancelled"
    except BaseException as exc:
        store.finish_run(
            run_id, "failed" if not isinstance(exc, KeyboardInterrupt) else "cancelled", {"error": str(exc)}
        )
        raise
    wall = time.perf_counter() - started
    return _finish(store, run_id, settings, data, status, wall, audio_done, len(done), options.n_boot)


def _dataset_options(options: RunOptions) -> DatasetOptions:
    return DatasetOptions(
        source=options.dataset,
        text_column=options.text_column,
        group_columns=tuple(options.group_columns),
        speaker_column=options.speaker_column,
        limit=options.limit,
        split=options.split,
    )


def _run_chunk(chunk, mixer, backend, options, normalizer, cancel) -> list[dict[str, Any]]:
    mixed = [mixer.mix(item.sample.id, item.sample.audio, item.condition) for item in chunk]

    def check(done: float, total: float) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled

    decode = dataclasses.replace(options.decode, batch_size=max(options.decode.batch_size, 1))
    transcripts = transcribe_many([m.audio for m in mixed], backend=backend, options=decode, progress=check)
    return [_row(i.sample, m, t, normalizer) for i, m, t in zip(chunk, mixed, transcripts, strict=True)]


def _finish(store, run_id, settings, data, status, wall, audio_done, resumed, n_boot) -> RunResult:
    rows = store.run_results(run_id)
    summary = summarize(rows, settings, n_boot=n_boot)
    skipped = tuple(s.message(data.name) for s in data.skipped)
    extra = {
        "skipped": list(skipped),
        "rows_read": data.rows_read,
        "wall_seconds": wall,
        "audio_seconds_done": audio_done,
        "overall": summary.overall.to_json(),
    }
    store.finish_run(run_id, status, extra)
    logger.info("run %s %s: WER %.3f over %d rows", run_id, status, summary.overall.wer, len(rows))
    return RunResult(run_id, status, settings, rows, summary, data.name, skipped, wall, audio_done, resumed)


def load_result(store: Store, run_id: str, n_boot: int = N_BOOTSTRAP) -> RunResult:
    """An earlier run's tables, from the store alone (the dashboard's run picker and compare use it)."""
    run = store.get_run(run_id)
    rows = store.run_results(run_id)
    summary = summarize(rows, run.settings, n_boot=n_boot)
    info: Mapping[str, Any] = run.summary
    return RunResult(
        run_id,
        run.status,
        run.settings,
        rows,
        summary,
        run.settings.dataset,
        tuple(info.get("skipped", ())),
        float(info.get("wall_seconds", 0.0)),
        float(info.get("audio_seconds_done", 0.0)),
        0,
    )


__all__ = ["RunOptions", "RunResult", "RunError", "run_validation", "load_result", "SkippedRow", "Progress"]
