"""Group tables: pooled WER per accent, per noise condition and the accent x noise pivot, with bootstrap CIs.

Group WER is pooled (all errors / all reference words), as jiwer does for a list and the Open ASR Leaderboard
per dataset; averaging per-utterance WERs over-weights short utterances. Every figure and interval here comes
from :mod:`evaluation.scoring`: a percentile bootstrap over speakers when every row of the cell names one, over
utterances otherwise, and the ``small`` mark for cells too small to act on.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from evaluation.scoring import N_BOOTSTRAP, bootstrap_interval, is_small, rate, speaker_count

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
class Overall:
    """Figures over every scored row of a run (all conditions together)."""

    wer: float
    cer: float
    raw_wer: float
    utterances: int  # scored rows (utterance x condition)
    ref_words: int
    audio_seconds: float  # seconds of audio transcribed
    compute_seconds: float  # model seconds spent on them (VAD and decoding)
    rtfx: float  # audio seconds per compute second (above 1 is faster than real time; the leaderboard's RTFx)
    runaway: int = 0  # hypotheses that are repetition loops (see scoring.is_runaway)

    def to_json(self) -> dict[str, float | int]:
        return {k: _finite(v) for k, v in self.__dict__.items()}


def _finite(value: float | int) -> float | int | None:
    return None if isinstance(value, float) and not math.isfinite(value) else value


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
    records = []
    grouped = rows.groupby(by, sort=False, dropna=False) if by else [((), rows)]
    for key, cell in grouped:
        key = key if isinstance(key, tuple) else (key,)
        records.append(_cell(dict(zip(by, key, strict=True)), _as_speaker(cell, speaker_column), n_boot, seed))
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


def _as_speaker(cell: pd.DataFrame, speaker_column: str | None) -> pd.DataFrame:
    """The cell with its speaker column under the name scoring reads ("speaker"), or none when not given."""
    if not speaker_column or speaker_column not in cell.columns:
        return cell.drop(columns="speaker", errors="ignore")
    if speaker_column == "speaker":
        return cell
    return cell.drop(columns="speaker", errors="ignore").rename(columns={speaker_column: "speaker"})


def _cell(keys: dict, cell: pd.DataFrame, n_boot: int, seed: int) -> dict:
    sums = {c: float(cell[c].sum()) if c in cell.columns else 0.0 for c in SUM_COLUMNS}
    ci = bootstrap_interval(cell, n_boot=n_boot, seed=seed)
    return {
        **keys,
        "wer": rate(sums["errors"], sums["ref_words"]),
        "wer_ci_low": ci.low,
        "wer_ci_high": ci.high,
        "cer": rate(sums["char_errors"], sums["ref_chars"]),
        "raw_wer": rate(sums["raw_errors"], sums["raw_ref_words"]),
        "utterances": len(cell),
        "speakers": speaker_count(cell),
        **{c: int(v) if c not in FLOAT_SUMS else v for c, v in sums.items()},
        "invented_per_min": rate(sums["invented_words"] * 60.0, sums["nonspeech_seconds"]),
        "small": is_small(cell),
    }


def overall(rows: pd.DataFrame) -> Overall:
    def total(column: str) -> float:
        return float(rows[column].sum()) if column in rows.columns and len(rows) else 0.0

    return Overall(
        wer=rate(total("errors"), total("ref_words")),
        cer=rate(total("char_errors"), total("ref_chars")),
        raw_wer=rate(total("raw_errors"), total("raw_ref_words")),
        utterances=len(rows),
        ref_words=int(total("ref_words")),
        audio_seconds=total("audio_seconds"),
        compute_seconds=total("compute_seconds"),
        rtfx=rate(total("audio_seconds"), total("compute_seconds")),
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
