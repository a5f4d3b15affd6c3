"""Group tables: pooled WER per accent, per noise condition and the accent x noise pivot, with bootstrap CIs.

Group WER is pooled (all errors / all reference words), as jiwer does for a list and the Open ASR Leaderboard
per dataset; averaging per-utterance WERs over-weights short utterances. The 95% interval is a percentile
bootstrap that resamples speakers when the dataset names them (utterances of one speaker are not independent)
and utterances otherwise. Cells with few utterances or speakers are marked ``small``: their interval is wide
or degenerate, and a reader should not act on them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

N_BOOTSTRAP = 1000  # resamples per cell; the CI moves by well under a point between seeds at this size
CONFIDENCE = 0.95
MIN_UTTERANCES = 5  # a cell with fewer utterances is marked small
MIN_SPEAKERS = 2  # a cell with fewer speakers (when speakers are known) is marked small
SUM_COLUMNS = (
    "errors",
    "ref_words",
    "substitutions",
    "deletions",
    "insertions",
    "char_errors",
    "ref_chars",
    "raw_errors",
    "raw_ref_words",
    "audio_seconds",
    "compute_seconds",
    "runaway",
    "invented_words",
    "nonspeech_seconds",
)
FLOAT_SUMS = ("audio_seconds", "compute_seconds", "nonspeech_seconds")


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


@dataclass(frozen=True)
class Overall:
    """Figures over every scored row of a run (all conditions together)."""

    wer: float
    cer: float
    raw_wer: float
    utterances: int  # scored rows (utterance x condition)
    ref_words: int
    audio_seconds: float  # seconds of audio transcribed
    compute_seconds: float  # model seconds spent on them (VAD and decoding)
    real_time_factor: float  # compute seconds per audio second (below 1 is faster than real time)
    runaway: int = 0  # hypotheses that are repetition loops (see metrics.is_runaway)

    def to_json(self) -> dict[str, float | int]:
        return {k: _finite(v) for k, v in self.__dict__.items()}


def _finite(value: float | int) -> float | int | None:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else math.nan


def bootstrap_interval(
    errors: np.ndarray,
    words: np.ndarray,
    clusters: np.ndarray | None = None,
    *,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Percentile bootstrap CI of pooled WER, resampling whole clusters (speakers) when given."""
    errors, words = np.asarray(errors, float), np.asarray(words, float)
    if clusters is not None:
        codes, inverse = np.unique(np.asarray(clusters, dtype=str), return_inverse=True)
        errors = np.bincount(inverse, weights=errors, minlength=codes.size)
        words = np.bincount(inverse, weights=words, minlength=codes.size)
    if errors.size == 0 or words.sum() == 0:
        return Interval(math.nan, math.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, errors.size, size=(n_boot, errors.size))
    num, den = errors[picks].sum(axis=1), words[picks].sum(axis=1)
    ratios = num[den > 0] / den[den > 0]
    tail = (1 - confidence) / 2 * 100
    return Interval(float(np.percentile(ratios, tail)), float(np.percentile(ratios, 100 - tail)))


def group_table(
    rows: pd.DataFrame,
    by: Sequence[str],
    *,
    speaker_column: str | None = None,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per group of ``by`` (in order of first appearance): pooled WER, its CI, counts, ``small``."""
    by = [c for c in by if c in rows.columns]
    use_speakers = bool(speaker_column) and speaker_column in rows.columns
    records = []
    grouped = rows.groupby(by, sort=False, dropna=False) if by else [((), rows)]
    for key, cell in grouped:
        key = key if isinstance(key, tuple) else (key,)
        records.append(
            _cell(dict(zip(by, key, strict=True)), cell, speaker_column if use_speakers else None, n_boot, seed)
        )
    columns = [
        *by,
        "wer",
        "wer_ci_low",
        "wer_ci_high",
        "cer",
        "raw_wer",
        "utterances",
        "speakers",
        *SUM_COLUMNS,
        "invented_per_min",
        "small",
    ]
    return pd.DataFrame.from_records(records, columns=columns)


def _cell(keys: dict, cell: pd.DataFrame, speaker_column: str | None, n_boot: int, seed: int) -> dict:
    sums = {c: float(cell[c].sum()) if c in cell.columns else 0.0 for c in SUM_COLUMNS}
    clusters = cell[speaker_column].astype(str).to_numpy() if speaker_column else None
    ci = bootstrap_interval(cell["errors"].to_numpy(), cell["ref_words"].to_numpy(), clusters, n_boot=n_boot, seed=seed)
    speakers = int(cell[speaker_column].nunique()) if speaker_column else None
    small = len(cell) < MIN_UTTERANCES or (speakers is not None and speakers < MIN_SPEAKERS)
    return {
        **keys,
        "wer": _ratio(sums["errors"], sums["ref_words"]),
        "wer_ci_low": ci.low,
        "wer_ci_high": ci.high,
        "cer": _ratio(sums["char_errors"], sums["ref_chars"]),
        "raw_wer": _ratio(sums["raw_errors"], sums["raw_ref_words"]),
        "utterances": len(cell),
        "speakers": speakers,
        **{c: int(v) if c not in FLOAT_SUMS else v for c, v in sums.items()},
        "invented_per_min": _ratio(sums["invented_words"] * 60.0, sums["nonspeech_seconds"]),
        "small": bool(small),
    }


def overall(rows: pd.DataFrame) -> Overall:
    def total(column: str) -> float:
        return float(rows[column].sum()) if column in rows.columns and len(rows) else 0.0

    return Overall(
        wer=_ratio(total("errors"), total("ref_words")),
        cer=_ratio(total("char_errors"), total("ref_chars")),
        raw_wer=_ratio(total("raw_errors"), total("raw_ref_words")),
        utterances=len(rows),
        ref_words=int(total("ref_words")),
        audio_seconds=total("audio_seconds"),
        compute_seconds=total("compute_seconds"),
        real_time_factor=_ratio(total("compute_seconds"), total("audio_seconds")),
        runaway=int(total("runaway")),
    )


def pivot(groups: pd.DataFrame, row: str, column: str = "noise", value: str = "wer") -> pd.DataFrame:
    """A ``row`` x ``column`` table of ``value`` (from a group table by ``[row, column]``), order kept."""
    order_rows = list(dict.fromkeys(groups[row]))
    order_cols = list(dict.fromkeys(groups[column]))
    table = groups.pivot(index=row, columns=column, values=value)
    return table.reindex(index=order_rows, columns=order_cols)


def format_cell(wer: float, low: float, high: float, small: bool) -> str:
    """``12.3% [8.1, 16.0]`` with ``*`` for a small cell; what the terminal and Markdown tables show."""
    if not math.isfinite(wer):
        return "n/a"
    ci = f" [{low * 100:.1f}, {high * 100:.1f}]" if math.isfinite(low) and math.isfinite(high) else ""
    return f"{wer * 100:.1f}%{ci}{' *' if small else ''}"


def formatted_pivot(groups: pd.DataFrame, row: str, column: str = "noise") -> pd.DataFrame:
    text = groups.assign(
        cell=[format_cell(r.wer, r.wer_ci_low, r.wer_ci_high, r.small) for r in groups.itertuples(index=False)]
    )
    return pivot(text, row, column, "cell")
