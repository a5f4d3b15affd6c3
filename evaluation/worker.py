"""The per-row work of a validation run: a worker that loads the model once and turns row specs into results.

A row is one utterance under one condition with one seed. For a batch of row specs the worker mixes each
utterance's noise (seeded by run seed, utterance id and condition, so the same mix in any process), finds speech
with the VAD, decodes the batch with ``asr.transcribe.transcribe_many`` and scores each transcript. It keeps no
state between batches that changes a result, so a row's result does not depend on which worker ran it; the local
executor (in this process) and the Ray executor (one worker per actor) run this same class.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asr.backends import Backend, get_backend, get_copies
from asr.backends.base import cpu_cores
from asr.models import default_model
from asr.results import DecodeOptions, Transcript
from asr.transcribe import transcribe_many
from evaluation.allowed import AudioAllowed
from evaluation.datasets import MISSING_GROUP, REFERENCE_LANGUAGE, Sample, SkippedRow, read_audio
from evaluation.noise import Mixed, Mixer, Provenance, parse_condition
from evaluation.probes import hallucination_fields
from evaluation.runstore import noise_key
from evaluation.scoring import BY_LANGUAGE, UtteranceScore, is_runaway, normalizer_for, score
from evaluation.streaming import StreamModeOptions, StreamOutcome, StreamRunner, percentile

STREAM_COLUMNS = (
    "first_commit_s",
    "commit_latency_p50_s",
    "commit_latency_p95_s",
    "flips",
    "duplicate_words",
    "wer_delta_offline",
)
KEPT_TRANSCRIPTS = 20_000  # offline transcripts a worker keeps for streaming rows of later batches (a few MB)
CancelCheck = Callable[[], bool]  # true when the run should stop between model calls


class Cancelled(Exception):
    """Raised inside a batch when the run is cancelled, to stop between model calls.

    ``rows`` are the batch's rows finished before it stopped (their utterance's every window decoded): the runner
    stores them, so a resumed run does not decode them again (a cancel dropped the whole batch in progress)."""

    def __init__(self, rows: Sequence[RowResult] = ()) -> None:
        super().__init__("cancelled")
        self.rows = tuple(rows)


@dataclass(frozen=True)
class WorkerOptions:
    """What a worker needs to build itself; small and picklable, so a remote actor gets the same worker."""

    model: str = ""  # "" is the registry's default model
    backend: str = "faster-whisper"
    device: str = "auto"
    normalizer: str = BY_LANGUAGE  # or a normalizer's name, applied to every row
    decode: DecodeOptions = field(default_factory=lambda: DecodeOptions(word_timestamps=False))
    threads: int | None = None  # CPU threads for the model; None: the process-wide shared backend and its default
    stream: StreamModeOptions = field(default_factory=StreamModeOptions)  # how streaming-mode rows are streamed
    audio_allowed: AudioAllowed | None = field(default=None, compare=False, repr=False)  # the files a worker may
    # read a row's audio from (the dashboard's roots; None: any): the driver's DatasetOptions.audio_allowed

    @property
    def model_name(self) -> str:
        return self.model or default_model()


@dataclass(frozen=True)
class RowSpec:
    """One row of a sweep: which utterance, under which condition, mixed with which seed."""

    sample: Sample
    condition: str  # a canonical condition spec, e.g. "white@10"
    seed: int
    mode: str = "offline"  # offline (full context) or streaming (the live engine on a simulated clock)

    @property
    def key(self) -> tuple[str, str]:
        """(utterance id, condition key): the row's identity in the store."""
        return self.sample.id, noise_key(self.condition, self.mode)


@dataclass(frozen=True)
class RowResult:
    """One scored row. ``to_row`` is what the store keeps and results.csv shows."""

    sample_id: str
    row: int  # the utterance's row in its dataset
    speaker: str | None
    groups: Mapping[str, str]
    condition: str
    reference: str
    hypothesis: str
    detected_language: str  # the language the engine decoded the utterance in (the forced one, when forced)
    score: UtteranceScore
    runaway: bool
    audio_seconds: float
    compute_seconds: float  # this row's share of its batch's decoding time
    provenance: Provenance
    extra: Mapping[str, Any] = field(default_factory=dict)  # further columns (added after the standard ones)
    mode: str = "offline"
    stream: Mapping[str, Any] = field(default_factory=dict)  # streaming figures (STREAM_COLUMNS; empty offline)

    @property
    def key(self) -> tuple[str, str]:
        return self.sample_id, noise_key(self.condition, self.mode)

    def to_row(self) -> dict[str, Any]:
        s, p = self.score, self.provenance
        return {
            "id": self.sample_id,
            "row": self.row,
            "speaker": self.speaker,
            **self.groups,
            "noise": p.condition,
            "reference": self.reference,
            "hypothesis": self.hypothesis,
            "detected_language": self.detected_language,
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
            "runaway": self.runaway,
            "char_errors": s.char_errors,
            "ref_chars": s.ref_chars,
            "raw_errors": s.raw_errors,
            "raw_ref_words": s.raw_ref_words,
            "audio_seconds": self.audio_seconds,
            "compute_seconds": self.compute_seconds,
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
            "mode": self.mode,
            **{c: self.stream.get(c) for c in STREAM_COLUMNS},
            **self.extra,
        }


class RowWorker:
    """Loads the model once; :meth:`run` turns a batch of row specs into results, in the same order.

    ``pool`` is the clean audio of the dataset by utterance id: the talkers babble noise is made of. Only runs
    with a babble condition need it.
    """

    def __init__(
        self, options: WorkerOptions, pool: Mapping[str, np.ndarray] | None = None, backend: Backend | None = None
    ) -> None:
        self.options = options
        self.backend = backend or load_worker_backend(options)
        self.decode = dataclasses.replace(options.decode, batch_size=max(options.decode.batch_size, 1))
        self.pool = pool or {}
        self._mixers: dict[int, Mixer] = {}
        self._streamer: StreamRunner | None = None
        self._offline: dict[tuple[int, str, str], Transcript] = {}  # recent offline transcripts, by row key

    def mixer(self, seed: int) -> Mixer:
        """One mixer per seed: it caches each utterance's speech mask, reused by every condition."""
        if seed not in self._mixers:
            self._mixers[seed] = Mixer(seed, self.pool)
        return self._mixers[seed]

    def run(self, specs: Sequence[RowSpec], cancelled: CancelCheck | None = None) -> list[RowResult]:
        """Mix, VAD, decode (batched) and score; raises :class:`Cancelled` between model calls when asked.

        Streaming rows are also decoded offline (the paired difference needs the offline transcript of the same
        audio); a batch holding both rows of an utterance decodes it offline once.
        """

        def check(done: float = 0.0, total: float = 0.0) -> None:
            if cancelled is not None and cancelled():
                raise Cancelled

        check()
        if not specs:
            return []
        keys = list(dict.fromkeys((s.seed, s.sample.id, s.condition) for s in specs))
        by_key = {self._key(spec): spec for spec in specs}
        mixed = {k: self.mixer(k[0]).mix(k[1], by_key[k].sample.audio, parse_condition(k[2])) for k in keys}
        try:
            return self._run_mixed(specs, keys, mixed, check)
        except Cancelled:  # keep the offline rows whose transcript was finished (streaming rows need their stream)
            done = [s for s in specs if s.mode == "offline" and self._key(s) in self._offline]
            raise Cancelled([self._result(s, mixed[self._key(s)], self._offline[self._key(s)]) for s in done]) from None

    def _run_mixed(self, specs, keys, mixed, check) -> list[RowResult]:
        streamed = [s for s in specs if s.mode == "streaming"]
        outcomes: dict[int, StreamOutcome] = {}
        if streamed:  # the offline transcripts are decoded on one of the streamer's lanes, beside the streams
            runs, offline = self.streamer().run_beside(
                [mixed[self._key(s)].audio for s in streamed],
                [s.condition for s in streamed],
                check,
                lambda backend: self._offline_transcripts(keys, mixed, check, backend),
            )
            outcomes = {id(s): o for s, o in zip(streamed, runs, strict=True)}
        else:
            offline = self._offline_transcripts(keys, mixed, check)
        results = []
        for spec in specs:
            key = self._key(spec)
            result = self._result(spec, mixed[key], offline[key])
            if spec.mode == "streaming":
                result = self._streaming_result(result, outcomes[id(spec)])
            results.append(result)
        return results

    def _offline_transcripts(self, keys, mixed, check, backend=None) -> dict[tuple[int, str, str], Transcript]:
        """The offline transcript of each key, decoded in one batch, or kept from an earlier batch of this worker:
        ``--mode both`` decodes an utterance's offline row and then, in a later batch, its streaming row, whose
        paired difference needs the same transcript (offline transcripts do not depend on batch-mates, nor on
        the thread count of the ``backend`` that decodes them: the worker's, or a streaming lane's copy)."""
        todo = [k for k in keys if k not in self._offline]
        audios = [mixed[k].audio for k in todo]
        backend = backend or self.backend

        def finished(i: int, transcript: Transcript) -> None:  # kept as each is done: a cancel keeps them
            self._offline[todo[i]] = transcript

        decoded = transcribe_many(audios, backend=backend, options=self.decode, progress=check, finished=finished)
        for key, transcript in zip(todo, decoded):  # the same texts, their compute_seconds sharing the whole call's
            self._offline[key] = transcript  # overhead (the ones handed over as finished had only its share so far)
        offline = {k: self._offline[k] for k in keys}
        while len(self._offline) > KEPT_TRANSCRIPTS:
            self._offline.pop(next(iter(self._offline)))
        return offline

    @staticmethod
    def _key(spec: RowSpec) -> tuple[int, str, str]:
        return spec.seed, spec.sample.id, spec.condition

    def streamer(self) -> StreamRunner:
        """The streaming engine on this worker's model, made on first use (offline-only runs never build it)."""
        if self._streamer is None:
            lanes = 1 if self.options.threads is not None else 0  # a worker with a CPU share: one lane
            self._streamer = StreamRunner(self.backend, self.options.stream, lanes=lanes)
        return self._streamer

    def _streaming_result(self, offline: RowResult, outcome: StreamOutcome) -> RowResult:
        language = scoring_language(offline.groups, offline.detected_language)  # the offline row's rule
        scored = score(offline.reference, outcome.text, normalizer_for(language, self.options.normalizer))
        delta = scored.wer - offline.score.wer if scored.ref_words else math.nan
        figures = {
            "first_commit_s": outcome.first_commit_s,
            "commit_latency_p50_s": percentile(outcome.latencies, 50),
            "commit_latency_p95_s": percentile(outcome.latencies, 95),
            "flips": outcome.flips,
            "duplicate_words": outcome.duplicate_words,
            "wer_delta_offline": delta,
        }
        seconds, speech = offline.audio_seconds, offline.audio_seconds - offline.extra["nonspeech_seconds"]
        invented = hallucination_fields(scored.alignment, scored.ref_words, scored.hypothesis_norm, seconds, speech)
        extra = {**offline.extra, **invented, "commit_latencies": ";".join(f"{v:g}" for v in outcome.latencies)}
        return dataclasses.replace(
            offline,
            hypothesis=outcome.text,
            score=scored,
            runaway=is_runaway(outcome.text),
            compute_seconds=outcome.compute_seconds,
            extra=extra,
            mode="streaming",
            stream=figures,
        )

    def _result(self, spec: RowSpec, mixed: Mixed, transcript: Transcript) -> RowResult:
        sample = spec.sample
        normalizer = normalizer_for(scoring_language(sample.groups, transcript.language), self.options.normalizer)
        scored = score(sample.text, transcript.text, normalizer)
        speech = float(self.mixer(spec.seed).mask(sample.id, sample.audio).mean()) * sample.seconds
        invented = hallucination_fields(
            scored.alignment, scored.ref_words, scored.hypothesis_norm, sample.seconds, speech
        )
        return RowResult(
            sample_id=sample.id,
            row=sample.row,
            speaker=sample.speaker,
            groups=dict(sample.groups),
            condition=spec.condition,
            reference=sample.text,
            hypothesis=transcript.text,
            detected_language=transcript.language,
            score=scored,
            runaway=is_runaway(transcript.text),
            audio_seconds=transcript.duration,
            compute_seconds=transcript.compute_seconds,
            provenance=mixed.provenance,
            extra={
                **invented,
                "windows_retried": transcript.windows_retried,  # rows the fallback decoded again
                "audio_note": sample.audio_note,  # what reading the file did to it (loud float audio scaled back)
            },
        )


Batch = list["RowResult | SkippedRow"]  # a batch's results, and its rows whose audio the worker could not decode


def read_specs(specs: Sequence[RowSpec], allowed: AudioAllowed | None = None) -> tuple[list[RowSpec], list[SkippedRow]]:
    """The specs with the audio their samples left in the dataset's files read here, each utterance once.

    A worker calls it on each batch before :meth:`RowWorker.run`; rows whose audio cannot be decoded come back
    as skipped rows (the message the driver gives such a row), their specs left out.
    """
    if all(s.sample.audio is not None for s in specs):
        return list(specs), []
    ready, skipped = read_audio(list({s.sample.id: s.sample for s in specs}.values()), allowed)
    by_id = {sample.id: sample for sample in ready}
    return [dataclasses.replace(s, sample=by_id[s.sample.id]) for s in specs if s.sample.id in by_id], skipped


def scoring_language(groups: Mapping[str, Any], detected: str | None) -> str | None:
    """The language a row is scored in: the dataset's ``language`` column when it is a group, else the detected one.

    Replaying a stored row (its alignment on the Validate page) uses the same rule on the stored row, so the
    alignment shown is the one that was scored.
    """
    given = groups.get(REFERENCE_LANGUAGE)
    return str(given) if given and given != MISSING_GROUP else detected


ONE_THREAD_CORES = 2
"""On this many cores or fewer, a local run decodes its rows with a one-thread faster-whisper copy.

Why: a sweep's batches of short clips split across CTranslate2's two OpenMP threads meet at a barrier every few
microseconds, and on two cores libgomp sleeps in the kernel at each (17 s of system CPU per built-in sweep; see
the README's Performance section, session 16). One thread has no barrier: the built-in sweep ran at 20.4x and 20.8x
against 17.0x and 17.6x with two, the same rows byte for byte (Ray workers have always decoded so). A single long
file is still faster on two threads (12.0 s against 15.3 s for the joined real file), so only validation does it.
"""


def load_worker_backend(options: WorkerOptions) -> Backend:
    """The shared per-process backend, or (``threads`` set: one worker per process) one with that many threads.

    A remote worker gets a CPU share (Ray's ``num_cpus``); the model's own thread pools are sized to it, or
    several workers on one node would each start a thread per core and slow each other down.
    """
    if options.threads is None and options.backend == "faster-whisper" and cpu_cores() <= ONE_THREAD_CORES:
        return get_copies(options.model_name, options.device, 1)[0]  # a one-thread copy: see ONE_THREAD_CORES
    if options.threads is None:
        return get_backend(options.model_name, options.backend, options.device)
    from asr.models import resolve

    if options.backend == "faster-whisper":
        from asr.backends.faster_whisper import FasterWhisperBackend

        return FasterWhisperBackend(resolve(options.model_name), device=options.device, cpu_threads=options.threads)
    backend = get_backend(options.model_name, options.backend, options.device)
    import torch

    torch.set_num_threads(options.threads)
    return backend


__all__ = [
    "Cancelled",
    "RowResult",
    "RowSpec",
    "Batch",
    "RowWorker",
    "WorkerOptions",
    "load_worker_backend",
    "read_specs",
]
