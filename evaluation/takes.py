"""Checks on one recorded take, before it becomes a test case: is this audio worth keeping?

A take that is clipped, whispered, drowned in noise, cut off at either end or hardly there makes a test case
that measures the microphone rather than the model. The Record page shows these checks next to the take's WER
so the tester can re-record at once, while the speaker is still at the microphone.

All levels are measured where the VAD (``asr.vad``, Silero, with no padding so the spans hug the speech)
finds speech: the speech level is the RMS over speech spans, the noise level the RMS over what is left once a
margin around each span is removed (breaths and word edges are not noise), and the SNR is their power ratio
with the noise power subtracted from the speech-plus-noise power. Pure numpy apart from the VAD call.

:func:`assess_take` adds the take's full-context transcript and its score against the prompt: the same
decoding and scoring a validation run of the saved test case does, so the WER a tester sees on the Record
page is the one Validate will report for that take (the live transcript can differ by a word or two).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.vad import FRAME, SpeechSpan, VadOptions, speech_spans
from evaluation.scoring import AlignedSpan, rate, score

# Spans that start and end where the speech does: no padding, and a 0.16 s pause ends a span, so the silence
# before and after the speech (and between words, for the noise estimate) is found; set here rather than taken
# from the decoding defaults, which keep pauses inside spans on purpose.
CHECK_VAD = VadOptions(min_silence_seconds=0.16, speech_pad_seconds=0.0)
SNR_CAP_DB = 100.0  # digital silence between words: the noise floor is below anything a microphone gives
SILENCE_DBFS = -120.0  # the level reported for an all-zero signal
VAD_LEAD_SECONDS = 0.5  # silence put before the take for the VAD only: Silero misses speech in its first frames


@dataclass(frozen=True)
class CheckOptions:
    clip_level: float = 0.99  # |sample| at or above this is at full scale (resampling rounds clipped tops)
    max_clipped_fraction: float = 0.002  # more than 0.2% of the samples at full scale: the take is clipped
    min_speech_dbfs: float = -40.0  # speech RMS below this: too quiet (a laptop mic at arm's length is ~ -35)
    min_snr_db: float = 15.0  # below this the noise, not the speaker, dominates the test case
    edge_seconds: float = 0.1  # speech this close to the start or the end was probably cut
    min_speech_seconds: float = 0.3  # less speech than this is a click or a cough, not a prompt read aloud
    min_seconds_per_word: float = 0.15  # a prompt of N words read in under N x this was cut short (~3x fast speech)
    noise_margin_seconds: float = 0.1  # around each span, left out of the noise estimate
    min_noise_seconds: float = 0.2  # less non-speech than this: the SNR cannot be estimated


@dataclass(frozen=True)
class TakeCheck:
    name: str  # clipping | level | snr | start | end | length
    ok: bool
    message: str  # what the tester sees, with the measured value


@dataclass(frozen=True)
class TakeReport:
    duration: float  # seconds of audio
    speech_seconds: float  # seconds the VAD calls speech
    speech_start: float | None  # where the first speech begins (None: no speech)
    speech_end: float | None  # where the last speech ends
    peak_dbfs: float
    speech_dbfs: float | None  # RMS level of the speech (None: no speech)
    snr_db: float | None  # estimated SNR (None: not enough non-speech to tell)
    clipped_fraction: float  # share of samples at full scale
    checks: tuple[TakeCheck, ...]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> tuple[TakeCheck, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def to_json(self) -> dict:
        data = asdict(self)
        data["checks"] = [asdict(c) for c in self.checks]
        return data


def dbfs(power: float) -> float:
    """A mean-square power as dB relative to full scale (a full-scale sine is -3 dBFS)."""
    return 10 * math.log10(power) if power > 0 else SILENCE_DBFS


def check_take(
    audio: np.ndarray,
    words: int = 0,
    spans: Sequence[SpeechSpan] | None = None,
    options: CheckOptions | None = None,
) -> TakeReport:
    """Measure a take (mono float32 at 16 kHz) of a prompt of ``words`` words (0: unknown).

    ``spans`` default to the VAD's, without padding.
    """
    options = options or CheckOptions()
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    spans = list(take_spans(audio) if spans is None else spans)
    duration = audio.size / SAMPLE_RATE
    speech = _mask(audio.size, spans, 0)
    noise = ~_mask(audio.size, spans, int(options.noise_margin_seconds * SAMPLE_RATE))
    power = audio.astype(np.float64) ** 2
    speech_power = float(power[speech].mean()) if speech.any() else None
    snr = _snr(speech_power, _noise_power(power, noise, options), options)
    report = TakeReport(
        duration=duration,
        speech_seconds=int(speech.sum()) / SAMPLE_RATE,
        speech_start=spans[0].start / SAMPLE_RATE if spans else None,
        speech_end=spans[-1].end / SAMPLE_RATE if spans else None,
        peak_dbfs=dbfs(float(np.abs(audio).max()) ** 2) if audio.size else SILENCE_DBFS,
        speech_dbfs=dbfs(speech_power) if speech_power is not None else None,
        snr_db=snr,
        clipped_fraction=float(np.mean(np.abs(audio) >= options.clip_level)) if audio.size else 0.0,
        checks=(),
    )
    return _with_checks(report, options, words)


def take_spans(audio: np.ndarray) -> list[SpeechSpan]:
    """The VAD's speech spans, unpadded, with silence put around the take so speech at its very edges is found."""
    lead = int(VAD_LEAD_SECONDS * SAMPLE_RATE)
    padded = np.concatenate([np.zeros(lead, np.float32), audio, np.zeros(lead, np.float32)])
    spans = []
    for s in speech_spans(padded, CHECK_VAD):
        start, end = max(0, s.start - lead), min(audio.size, s.end - lead)
        if end > start:
            spans.append(SpeechSpan(start, end))
    return spans


def _noise_power(power: np.ndarray, noise: np.ndarray, options: CheckOptions) -> float | None:
    """The median power of the non-speech frames: a word edge the VAD missed does not raise it."""
    if noise.sum() < options.min_noise_seconds * SAMPLE_RATE:
        return None
    values = power[noise]
    frames = values[: values.size // FRAME * FRAME].reshape(-1, FRAME).mean(axis=1)
    return float(np.median(frames)) if frames.size else float(values.mean())


def _mask(size: int, spans: Sequence[SpeechSpan], margin: int) -> np.ndarray:
    mask = np.zeros(size, bool)
    for s in spans:
        mask[max(0, s.start - margin) : min(size, s.end + margin)] = True
    return mask


def _snr(speech_power: float | None, noise_power: float | None, options: CheckOptions) -> float | None:
    if speech_power is None or noise_power is None:
        return None
    if noise_power <= 0:
        return SNR_CAP_DB
    signal = max(speech_power - noise_power, 1e-12)
    return min(SNR_CAP_DB, 10 * math.log10(signal / noise_power))


def _with_checks(r: TakeReport, o: CheckOptions, words: int) -> TakeReport:
    if r.speech_start is None:
        return replace(
            r, checks=(TakeCheck("length", False, "no speech heard: check the microphone and record again"),)
        )
    clipped = r.clipped_fraction > o.max_clipped_fraction
    shortest = max(o.min_speech_seconds, words * o.min_seconds_per_word)
    checks = [
        TakeCheck(
            "clipping",
            not clipped,
            f"clipped: {r.clipped_fraction:.2%} of samples at full scale; move back or lower the input gain"
            if clipped
            else f"no clipping (peak {r.peak_dbfs:.1f} dBFS)",
        ),
        TakeCheck(
            "level",
            r.speech_dbfs >= o.min_speech_dbfs,
            f"speech level {r.speech_dbfs:.1f} dBFS"
            + ("" if r.speech_dbfs >= o.min_speech_dbfs else f": too quiet (below {o.min_speech_dbfs:g}); speak up"),
        ),
        _snr_check(r.snr_db, o),
        TakeCheck(
            "start",
            r.speech_start >= o.edge_seconds,
            f"speech starts at {r.speech_start:.2f} s"
            + ("" if r.speech_start >= o.edge_seconds else ": cut at the start; wait a moment before speaking"),
        ),
        TakeCheck(
            "end",
            r.duration - r.speech_end >= o.edge_seconds,
            f"speech ends {r.duration - r.speech_end:.2f} s before the end"
            + ("" if r.duration - r.speech_end >= o.edge_seconds else ": cut at the end; stop a moment later"),
        ),
        TakeCheck(
            "length",
            r.speech_seconds >= shortest,
            f"{r.speech_seconds:.1f} s of speech"
            + ("" if r.speech_seconds >= shortest else f": too short for the prompt (at least {shortest:.1f} s)"),
        ),
    ]
    return replace(r, checks=tuple(checks))


def _snr_check(snr: float | None, o: CheckOptions) -> TakeCheck:
    if snr is None:
        return TakeCheck("snr", True, "SNR not estimated: too little silence around the speech")
    if snr < o.min_snr_db:
        return TakeCheck(
            "snr", False, f"estimated SNR {snr:.1f} dB: noisy (below {o.min_snr_db:g}); find a quieter place"
        )
    return TakeCheck("snr", True, f"estimated SNR {snr:.1f} dB")


@dataclass(frozen=True)
class AssessedTake:
    transcript: str  # the full-context transcript of the take
    errors: int  # word errors against the prompt, after normalization
    ref_words: int  # words of the normalized prompt
    alignment: tuple[AlignedSpan, ...]
    report: TakeReport

    @property
    def wer(self) -> float | None:
        return rate(self.errors, self.ref_words) if self.ref_words else None


def assess_take(audio: np.ndarray, prompt: str, backend) -> AssessedTake:
    """Transcribe the take in full context with ``backend``, score it against ``prompt`` and check its audio."""
    from asr.transcribe import transcribe

    text = transcribe(audio, backend=backend).text
    scored = score(prompt, text)
    report = check_take(audio, words=scored.ref_words)
    return AssessedTake(text, scored.errors, scored.ref_words, scored.alignment, report)
