"""The validation runner: dataset x noise conditions through the engine, scored, stored, summarized.

The dashboard's Validate page and ``python -m evaluation run`` both call :func:`run_validation`. This module
is the orchestration: it loads the dataset, registers (or reopens) the run, splits the rows not stored yet into
batches of row specs and hands them to an executor (:mod:`evaluation.executors`: this process, or a Ray cluster),
which runs :class:`evaluation.worker.RowWorker` on them. Each batch's rows are stored as it arrives, so a run
that is cancelled, interrupted or killed is resumed by running it again with the same run id: utterances already
stored are skipped, whichever executor computed them.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from asr import omp_wait_setting
from asr.backends import DEFAULT_BACKEND
from asr.models import default_model
from asr.results import BACKENDS, LANGUAGES_HINT, WHISPER_LANGUAGES, DecodeOptions, language_code
from evaluation.datasets import DatasetError, DatasetOptions, LoadedDataset, SkippedRow, load_dataset
from evaluation.executors import ExecutorError, ExecutorOptions, open_executor
from evaluation.noise import NoiseCondition, check_noise_files, parse_conditions
from evaluation.progress import Progress, RunProgress, start_text
from evaluation.report import Summary, headline_overall, summarize
from evaluation.rowplan import batch_rows, pending_rows
from evaluation.runstore import package_versions
from evaluation.scoring import BY_LANGUAGE, N_BOOTSTRAP, NORMALIZER_SETTINGS, normalizer_version
from evaluation.sources import canonical_source
from evaluation.store import RunSettings, Store, StoreError, utc_now
from evaluation.streaming import MODES, StreamModeError, StreamModeOptions
from evaluation.worker import CancelCheck, Cancelled, RowResult, WorkerOptions

logger = logging.getLogger(__name__)

RESULT_FIELDS = ("id", "row", "speaker", "noise", "reference", "hypothesis", "wer", "cer", "errors", "ref_words")
SETTINGS_THAT_MATTER = (
    "model",
    "backend",
    "dataset",
    "noise",
    "seed",
    "normalizer",
    "normalizer_version",
    "limit",
    "min_words",
    "language",
    "mode",
    "stream_seconds",
    "stream_clock",
)


class RunError(ValueError):
    """A run that cannot start (bad option, settings that differ from the run being resumed)."""


@dataclass(frozen=True)
class RunOptions:
    """One validation run. Frozen; change with :func:`dataclasses.replace`."""

    dataset: str = "builtin"  # builtin, probes, recorded, a folder or manifest, or hub:ID[:CONFIG[:SPLIT]]
    noise: tuple[str, ...] = ("clean",)  # condition specs, see evaluation.noise.FULL_USAGE
    model: str = ""  # "" is the registry's default model
    backend: str = DEFAULT_BACKEND
    device: str = "auto"
    limit: int | None = None  # utterances taken from the dataset, spread evenly over it (the first of a stream)
    min_words: int = 0  # only utterances whose reference has this many words or more (0: all), before the limit
    text_column: str | None = None
    group_columns: tuple[str, ...] = ()  # empty: the accent column when one is recognised
    speaker_column: str | None = None
    split: str | None = None
    seed: int = 0  # noise mixing and bootstrap
    normalizer: str = BY_LANGUAGE  # each row by its language (English: Whisper's English one), or one named
    language: str | None = None  # decode every utterance in this language (None: English-only models' own, else
    # detected per utterance and recorded as detected_language)
    run_id: str | None = None  # resume this run (or create it under this id)
    chunk_size: int = 16  # utterances per model round and per stored chunk
    decode: DecodeOptions = field(default_factory=lambda: DecodeOptions(word_timestamps=False))
    n_boot: int = N_BOOTSTRAP
    executor: str = "local"  # local, ray or ray://HOST:PORT (see evaluation.executors)
    workers: int | None = None  # Ray actors (None: as many as the cluster's CPUs allow)
    cpus_per_worker: float = 1.0  # Ray: num_cpus of each actor; the model's threads follow it
    mode: str = "offline"  # offline, streaming (the live engine on a simulated clock) or both side by side
    stream_seconds: float | None = None  # streaming: join rows into streams this long, with pauses (None: each alone)
    stream_sessions: int = 1  # streaming: streams at once on one worker, as that many testers sharing it
    stream_clock: str = "modelled"  # streaming: the simulated clock follows the cost model (reproducible rows)
    # or the measured compute ("measured": this machine as loaded now; rows change from run to run)
    audio_allowed: Callable[..., bool] | None = field(default=None, compare=False, repr=False)  # see DatasetOptions

    def __post_init__(self) -> None:
        object.__setattr__(self, "language", language_code(self.language))  # "EN" is "en", stored so

    @property
    def stream_options(self) -> StreamModeOptions:
        return StreamModeOptions(
            stream_seconds=self.stream_seconds, sessions=self.stream_sessions, clock=self.stream_clock
        )

    @property
    def modes(self) -> tuple[str, ...]:
        return ("offline", "streaming") if self.mode == "both" else (self.mode,)

    @property
    def executor_options(self) -> ExecutorOptions:
        return ExecutorOptions(self.executor.strip(), self.workers, self.cpus_per_worker)

    def validate(self) -> RunOptions:
        if self.backend not in BACKENDS:
            raise RunError(f"unknown backend {self.backend!r}; choose one of: {', '.join(BACKENDS)}")
        if self.normalizer not in NORMALIZER_SETTINGS:
            raise RunError(f"unknown normalizer {self.normalizer!r}; choose one of: {', '.join(NORMALIZER_SETTINGS)}")
        if not isinstance(self.chunk_size, int) or self.chunk_size < 1:
            raise RunError(f"chunk_size must be a positive integer, not {self.chunk_size!r}")
        if not isinstance(self.seed, int) or self.seed < 0:  # numpy's seeding refused it mid-run, as a traceback
            raise RunError(f"seed must be an integer >= 0, not {self.seed!r}")
        try:
            _dataset_options(self).validate()  # the limit and min_words
        except DatasetError as exc:
            raise RunError(str(exc)) from None
        if self.language is not None and self.language not in WHISPER_LANGUAGES:
            raise RunError(f"language {self.language!r} is not a Whisper language code ({LANGUAGES_HINT})")
        check_noise_files(parse_conditions(self.noise))  # a corrupt noise file failed the run mid-way
        if self.mode not in MODES:
            raise RunError(f"unknown mode {self.mode!r}; choose one of: {', '.join(MODES)}")
        if self.stream_seconds is not None and "streaming" not in self.modes:  # else it would be ignored unseen
            raise RunError("--stream-seconds joins streams for the streaming path: add --mode streaming or --mode both")
        try:
            self.stream_options.validate()
        except StreamModeError as exc:
            raise RunError(str(exc)) from None
        try:
            self.executor_options.validate()
        except ExecutorError as exc:
            raise RunError(str(exc)) from None
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
    executor: str = ""  # where this call's rows were computed, e.g. "ray (local, 2 workers)" (settings: the first's)

    @property
    def rtfx(self) -> float:
        """Speed as audio seconds per wall second of this call (noise mixing, VAD, decoding and scoring included)."""
        return self.audio_seconds_done / self.wall_seconds if self.wall_seconds > 0 else float("nan")


def make_settings(options: RunOptions, data: LoadedDataset) -> RunSettings:
    return RunSettings(
        model=options.model_name,
        backend=options.backend,
        dataset=options.dataset,
        noise=tuple(c.spec for c in parse_conditions(options.noise)),
        seed=options.seed,
        normalizer=options.normalizer,
        normalizer_version=normalizer_version(options.normalizer),
        limit=options.limit,
        min_words=options.min_words,
        text_column=data.text_column,
        group_columns=data.group_columns,
        speaker_column=data.speaker_column,
        split=options.split,
        executor=options.executor_options.validate().name,
        language=options.language,
        mode=options.mode,
        stream_seconds=options.stream_seconds,
        stream_sessions=options.stream_sessions,
        **_clock_settings(options),
        packages=package_versions(),
        omp_wait=omp_wait_setting(),
        created_at=utc_now(),
    )


def _clock_settings(options: RunOptions) -> dict[str, Any]:
    """The streaming clock and its cost model, recorded so that modelled figures can be reproduced."""
    if "streaming" not in options.modes:
        return {}
    if options.stream_clock != "modelled":
        return {"stream_clock": options.stream_clock}
    from asr.streaming.clock import cost_model_for

    cost = cost_model_for(options.model_name, options.backend)
    return {"stream_clock": options.stream_clock, "stream_cost_model": cost.describe()}


def _open_run(store: Store, settings: RunSettings, run_id: str | None) -> tuple[str, set[tuple[str, str]]]:
    """Create the run, or reopen it for resuming when ``run_id`` exists and was made the same way."""
    if run_id:
        try:
            run = store.runs.get_run(run_id)
        except KeyError:
            return store.runs.create_run(settings, run_id), set()
        old, new = run.settings.to_json(), settings.to_json()
        for key in SETTINGS_THAT_MATTER:
            if old.get(key) != new.get(key):
                raise RunError(
                    f"run {run_id} was made with {key}={old.get(key)!r}, not {new.get(key)!r}; use a new run id"
                )
        store.runs.reopen_run(run_id)
        return run_id, store.runs.result_keys(run_id)
    try:
        return store.runs.create_run(settings), set()
    except StoreError as exc:
        raise RunError(str(exc)) from exc


def worker_options(options: RunOptions) -> WorkerOptions:
    return WorkerOptions(
        model=options.model_name,
        backend=options.backend,
        device=options.device,
        normalizer=options.normalizer,
        decode=dataclasses.replace(options.decode, language=options.language or options.decode.language),
        stream=options.stream_options,
        audio_allowed=options.audio_allowed,
    )


def babble_pool(data: LoadedDataset, conditions: Sequence[NoiseCondition]) -> dict[str, np.ndarray]:
    """The clean audio babble is made of (the dataset itself); empty when no condition is babble."""
    if not any(c.kind == "babble" for c in conditions):
        return {}
    return {s.id: s.audio for s in data.samples}


def _check_columns(data: LoadedDataset) -> None:
    clash = set(data.group_columns) & (set(RESULT_FIELDS) - {"speaker"})
    if clash:
        raise DatasetError(f"dataset {data.name}: group column(s) {', '.join(sorted(clash))} clash with result columns")


def run_validation(
    options: RunOptions,
    store: Store,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
    on_loaded: Callable[[LoadedDataset], None] | None = None,  # checks the dataset before the model or run exists
) -> RunResult:
    """Run (or resume) a validation; returns its tables. Raises DatasetError, RunError or the engine's errors."""
    options = dataclasses.replace(options.validate(), dataset=canonical_source(options.dataset))
    conditions = parse_conditions(options.noise)
    data = load_dataset(_dataset_options(options), store, defer_audio=_workers_read_audio(options, conditions))
    _check_columns(data)
    if on_loaded is not None:
        on_loaded(data)
    # The executor first: a model or a cluster that cannot be used fails before a run is registered.
    executor = open_executor(options.executor_options, worker_options(options), babble_pool(data, conditions))
    try:
        return _execute(executor, options, store, data, conditions, progress, cancel)
    finally:
        executor.close()


def _workers_read_audio(options: RunOptions, conditions: Sequence[NoiseCondition]) -> bool:
    """On a cluster the workers read each row's audio from the dataset's files, unless the driver needs it:
    babble noise is made of the whole set's clean audio, and streams joined to a length are planned on each
    row's duration. The local executor reads the dataset here, as it always has."""
    if options.executor_options.validate().name == "local" or any(c.kind == "babble" for c in conditions):
        return False
    return not ("streaming" in options.modes and options.stream_seconds is not None)


def _execute(executor, options, store, data, conditions, progress, cancel) -> RunResult:
    """Create or reopen the run, then store each batch of results as the executor hands it back."""
    settings = make_settings(options, data)
    run_id, done = _open_run(store, settings, options.run_id)
    settings = store.runs.get_run(run_id).settings
    specs = pending_rows(data, conditions, done, options.seed, options.modes)
    tracker = RunProgress(len(data.samples) * len(conditions) * len(options.modes), len(done), progress)
    tracker.start(start_text(run_id, len(specs), tracker.done, executor.label))
    status = "finished"
    skipped: set[SkippedRow] = set(data.skipped)  # and the rows the workers could not decode
    try:
        batches = batch_rows(specs, options.chunk_size, options.stream_options)
        for batch in executor.results(batches, cancel_check(cancel)):
            results = [r for r in batch if isinstance(r, RowResult)]
            skipped.update(r for r in batch if isinstance(r, SkippedRow))
            store.runs.add_results(run_id, [r.to_row() for r in results])
            tracker.add(results, len(batch) - len(results))
    except Cancelled:  # (the executor handed back the rows of the batch in progress that were finished)
        status = "cancelled"
    except BaseException as exc:  # a failure, or Ctrl-C twice on the command line: stopped at once
        stopped = "failed" if not isinstance(exc, KeyboardInterrupt) else "cancelled"
        figures = headline_overall(store.runs.run_results(run_id)).to_json()  # the listing shows them, not "WER -"
        store.runs.finish_run(run_id, stopped, {"error": str(exc), "overall": figures, "rows_planned": tracker.total})
        raise
    data = dataclasses.replace(data, skipped=tuple(sorted(skipped, key=lambda s: s.row)))
    return _finish(store, run_id, settings, data, status, tracker, len(done), options.n_boot, executor.label)


def cancel_check(cancel: threading.Event | None) -> CancelCheck:
    return (lambda: False) if cancel is None else cancel.is_set


def _dataset_options(options: RunOptions) -> DatasetOptions:
    same = ("text_column", "speaker_column", "limit", "min_words", "split", "audio_allowed")
    fields = {name: getattr(options, name) for name in same}
    return DatasetOptions(source=options.dataset, group_columns=tuple(options.group_columns), **fields)


def _finish(store, run_id, settings, data, status, tracker: RunProgress, resumed, n_boot, executor) -> RunResult:
    wall, audio_done = tracker.wall_seconds, tracker.audio_seconds
    rows = store.runs.run_results(run_id)
    summary = summarize(rows, settings, n_boot=n_boot)
    skipped = tuple(s.message(data.name) for s in data.skipped)
    extra = {
        "skipped": list(skipped),
        "rows_read": data.rows_read,
        "wall_seconds": wall,
        "audio_seconds_done": audio_done,
        "executor": executor,  # this call's (a resumed run may have been started on another)
        "overall": summary.overall.to_json(),
        "rows_planned": tracker.total,  # rows of the whole run: a cancelled one lists how many it stored
    }
    store.runs.finish_run(run_id, status, extra)
    logger.info("run %s %s: WER %.3f over %d rows", run_id, status, summary.overall.wer, len(rows))
    return RunResult(run_id, status, settings, rows, summary, data.name, skipped, wall, audio_done, resumed, executor)


def load_result(store: Store, run_id: str, n_boot: int = N_BOOTSTRAP) -> RunResult:
    """An earlier run's tables, from the store alone (the dashboard's run picker and compare use it)."""
    run = store.runs.get_run(run_id)
    rows = store.runs.run_results(run_id)
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
        str(info.get("executor", "")),
    )


__all__ = [
    "Cancelled",
    "Progress",
    "RunError",
    "RunOptions",
    "RunProgress",
    "RunResult",
    "SkippedRow",
    "load_result",
    "run_validation",
]
