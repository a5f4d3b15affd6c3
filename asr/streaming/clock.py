"""The modelled clock: what a streaming round costs, from what it decoded rather than from a stopwatch.

The simulated live clock (:mod:`asr.streaming.simulate`) has to advance by each worker round's cost. Advancing by
the round's *measured* compute shows what a user on this machine, loaded as it is now, would see; but then the
audio each round sees, and so the committed text, the latencies and the flips, change with the load from run to
run (the joined real-speech file: WER 0.126 and 0.094 on the same code). The *modelled* clock charges each round
a deterministic cost instead: a linear model of the windows it decoded (audio the encoder saw, words generated
or forced times the beam, a constant per window and per round), with coefficients measured once on this machine
by ``python -m benchmarks stream FILE --calibrate`` and recorded here with the model and backend they belong to.
The same audio and options then give the same rounds, text and latencies on every run, under any load, alone
or batched with other streams; the measured compute is still reported beside it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from asr.results import DecodeOptions

logger = logging.getLogger(__name__)

CLOCKS = ("measured", "modelled")
WHISPER_SECONDS = 30.0  # Whisper's fixed window: the encoder sees this much with encoder_seconds >= 30


@dataclass(frozen=True)
class WindowWork:
    """One model decode of one window, in the terms the cost model charges (a retry is a second entry)."""

    seconds: float  # the window's audio
    encoder_seconds: float  # audio the encoder saw (the window padded as the backend pads it)
    beam: int  # beam size it was decoded with
    words: int  # words of the hypothesis, forced prefix included (what the decoder generated or was fed)


def encoded_seconds(seconds: float, options: DecodeOptions, backend: str) -> float:
    """Audio the encoder sees for a window: both backends pad to the window plus 2 s rounded up to a whole
    second, at least ``encoder_seconds`` (``asr.backends.base.encoder_frames``). ``backend`` is kept for callers."""
    if options.encoder_seconds >= WHISPER_SECONDS:
        return WHISPER_SECONDS
    return min(WHISPER_SECONDS, max(float(int(options.encoder_seconds)), float(math.ceil(seconds + 2.0))))


@dataclass(frozen=True)
class CostModel:
    """Seconds a worker round costs: ``round_s`` + per window ``window_s`` + ``encoder_s`` per encoded second +
    ``word_beam_s`` per word times beam. Recorded with every modelled figure (``describe``)."""

    name: str  # model/backend and where and how the coefficients were measured
    round_s: float  # per round that decoded something (VAD, policy, call overhead)
    window_s: float  # per window decoded (features, alignment, prompt)
    encoder_s: float  # per second of audio the encoder saw
    word_beam_s: float  # per hypothesis word per beam (decoder steps)
    idle_s: float = 0.005  # a round that decoded nothing (the VAD's last judgement)

    def window(self, work: WindowWork) -> float:
        return self.window_s + self.encoder_s * work.encoder_seconds + self.word_beam_s * work.words * work.beam

    def round(self, works: Sequence[WindowWork]) -> float:
        """The cost of a round that decoded ``works`` (``idle_s`` when it decoded nothing)."""
        if not works:
            return self.idle_s
        return self.round_s + sum(self.window(w) for w in works)

    def describe(self) -> dict:
        return asdict(self)


# Calibrated with `python -m benchmarks stream en-dev-joined.wav --ref en-dev-joined.txt --no-baseline --calibrate`
# (495 s of real speech, 609 rounds of one window, default options, 2 cores shared with other work: load average 6
# to 8). The fit gives this run's measured compute back in total (162.9 s modelled, 162.9 s measured); rounds of
# one window cannot tell round_s from window_s apart, so the fit splits their sum. See docs/performance-log.md, "Streaming".
COST_MODELS = {
    ("whisper-tiny.en", "faster-whisper"): CostModel(
        name="whisper-tiny.en/faster-whisper int8, 2 shared cores (load 6-8), calibrated 2026-12-01",
        round_s=0.00211,
        window_s=0.00211,
        encoder_s=0.01685,
        word_beam_s=0.00274,
    ),
}


def cost_model_for(model: str, backend: str) -> CostModel:
    """The calibrated model of (model, backend); for one never calibrated, tiny.en's coefficients under a name
    that says so (the figures stay reproducible, they just model a faster model's pace)."""
    key = (model, backend)
    if key in COST_MODELS:
        return COST_MODELS[key]
    base = COST_MODELS[("whisper-tiny.en", "faster-whisper")]
    logger.warning("no calibrated streaming cost model for %s/%s: using whisper-tiny.en's", model, backend)
    return CostModel(f"{model}/{backend}: uncalibrated, whisper-tiny.en's coefficients", *_coefficients(base))


def _coefficients(model: CostModel) -> tuple[float, ...]:
    return model.round_s, model.window_s, model.encoder_s, model.word_beam_s, model.idle_s


def fit(rounds: Sequence[tuple[Sequence[WindowWork], float]], name: str) -> CostModel:
    """Least-squares coefficients (clipped at zero) from (works, measured compute seconds) of rounds that decoded
    something: what ``benchmarks stream --calibrate`` prints."""
    rows, costs = [], []
    for works, seconds in rounds:
        if works:
            rows.append([1.0, len(works), sum(w.encoder_seconds for w in works), sum(w.words * w.beam for w in works)])
            costs.append(seconds)
    if len(rows) < 8:
        raise ValueError(f"calibration needs at least 8 decoding rounds, not {len(rows)}")
    x, y = np.asarray(rows), np.asarray(costs)
    active = list(range(x.shape[1]))
    while True:  # non-negative least squares by dropping the most negative coefficient
        coef = np.zeros(x.shape[1])
        coef[active] = np.linalg.lstsq(x[:, active], y, rcond=None)[0]
        if (coef >= 0).all():
            break
        active.remove(int(np.argmin(coef)))
    return CostModel(name, *(round(float(c), 5) for c in coef))
