"""The per-row work of a validation run: a worker that loads the model once and turns row specs into results.

A row is one utterance under one condition with one seed. For a batch of row specs the worker mixes each
utterance's noise (seeded by run seed, utterance id and condition, so the same mix in any process), finds speech
with the VAD, decodes the batch with ``asr.transcribe.transcribe_many`` and scores each transcript. It keeps no
state between batches that changes a result, so a row's result does not depend on which worker ran it; the local
executor (in this process) and the Ray executor (one worker per actor) run this same class.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from asr.backends import Backend, get_backend
from asr.models import default_model
from asr.results import DecodeOptions, Transcript
from asr.transcribe import transcribe_many
from evaluation.datasets import MISSING_GROUP, REFERENCE_LANGUAGE, Sample
from evaluation.noise import Mixed, Mixer, Provenance, parse_condition
from evaluation.probes import hallucination_fields
from evaluation.scoring import BY_LANGUAGE, UtteranceScore, is_runaway, normalizer_for, score

CancelCheck = Callable[[], bool]  # true when the run should stop between model calls


class Cancelled(Exception):
    """Raised inside a batch when the run is cancelled, to stop between model calls."""


@dataclass(frozen=True)
class WorkerOptions:
    """What a worker needs to build itself; small and picklable, so a remote actor gets the same worker."""

    model: str = ""  # "" is the registry's default model
    backend: str = "faster-whisper"
    device: str = "auto"
    normalizer: str = BY_LANGUAGE  # or a normalizer's name, applied to every row
    decode: DecodeOptions = field(default_factory=lambda: DecodeOptions(word_timestamps=False))
    threads: int | None = None  # CPU threads for the model; None: the process-wide shared backend and its default

    @property
    def model_name(self) -> str:
        return self.model or default_model()


@dataclass(frozen=True)
class RowSpec:
    """One row of a sweep: which utterance, under which condition, mixed with which seed."""

    sample: Sample
    condition: str  # a canonical condition spec, e.g. "white@10"
    seed: int

    @property
    def key(self) -> tuple[str, str]:
        """(utterance id, condition): the row's identity in the store."""
        return self.sample.id, self.condition


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

    @property
    def key(self) -> tuple[str, str]:
        return self.sample_id, self.condition

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

    def mixer(self, seed: int) -> Mixer:
        """One mixer per seed: it caches each utterance's speech mask, reused by every condition."""
        if seed not in self._mixers:
            self._mixers[seed] = Mixer(seed, self.pool)
        return self._mixers[seed]

    def run(self, specs: Sequence[RowSpec], cancelled: CancelCheck | None = None) -> list[RowResult]:
        """Mix, VAD, decode (batched) and score; raises :class:`Cancelled` between model calls when asked."""
        mixed = [self.mixer(s.seed).mix(s.sample.id, s.sample.audio, parse_condition(s.condition)) for s in specs]

        def check(done: float, total: float) -> None:
            if cancelled is not None and cancelled():
                raise Cancelled

        check(0.0, 0.0)
        audios = [m.audio for m in mixed]
        transcripts = transcribe_many(audios, backend=self.backend, options=self.decode, progress=check)
        return [self._result(s, m, t) for s, m, t in zip(specs, mixed, transcripts, strict=True)]

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
            extra=invented,
        )


def scoring_language(groups: Mapping[str, Any], detected: str | None) -> str | None:
    """The language a row is scored in: the dataset's ``language`` column when it is a group, else the detected one.

    Replaying a stored row (its alignment on the Validate page) uses the same rule on the stored row, so the
    alignment shown is the one that was scored.
    """
    given = groups.get(REFERENCE_LANGUAGE)
    return str(given) if given and given != MISSING_GROUP else detected


def load_worker_backend(options: WorkerOptions) -> Backend:
    """The shared per-process backend, or (``threads`` set: one worker per process) one with that many threads.

    A remote worker gets a CPU share (Ray's ``num_cpus``); the model's own thread pools are sized to it, or
    several workers on one node would each start a thread per core and slow each other down.
    """
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


__all__ = ["Cancelled", "RowResult", "RowSpec", "RowWorker", "WorkerOptions", "load_worker_backend"]
