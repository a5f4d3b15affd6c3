"""Figures both streaming benchmarks print (ours and the recipe's), computed one way."""

from __future__ import annotations

import math

import numpy as np

MINUTE = 60.0


def pct(values: np.ndarray, q: float) -> float | None:
    """The ``q``-th percentile, rounded to the millisecond; None for no values."""
    return round(float(np.percentile(values, q)), 3) if values.size else None


def update_figures(costs: np.ndarray, times: np.ndarray, audio_seconds: float) -> dict:
    """update_p50/p95 of the first and the last minute, and the max, in compute seconds per update."""
    last_from = max(audio_seconds - MINUTE, 0.0)
    return {
        "update_p50": pct(costs, 50),
        "update_p95_first_min": pct(costs[times < MINUTE], 95),
        "update_p95_last_min": pct(costs[times >= last_from], 95),
        "update_max": round(float(costs.max()), 3) if costs.size else None,
        "updates": int(costs.size),
    }


def wer(reference: str, hypothesis: str) -> float | None:
    """The validation WER (:func:`evaluation.scoring.score`), rounded; None when the reference has no words.

    Imported here, not at the top: scoring brings pandas and jiwer, which would inflate the memory the streaming
    benchmark measures before its sessions start."""
    from evaluation.scoring import score

    result = score(reference, hypothesis)
    return None if math.isnan(result.wer) else round(result.wer, 4)
