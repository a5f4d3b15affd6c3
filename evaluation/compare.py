"""Compare two runs group by group: WER deltas with a bootstrap CI, regressions beyond the CI marked.

When both runs scored the same utterances of a group (the usual case: one model change, same dataset and
noise), the delta's interval comes from a paired bootstrap that resamples speakers (or utterances) and scores
both runs on each resample, which is far tighter than comparing two independent intervals. Otherwise the two
runs are resampled independently. A group is a ``regression`` when the whole interval of B - A lies above
zero, an ``improvement`` when it lies below; a small cell (few utterances or speakers, as in the group tables)
is never marked, since its interval cannot be trusted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from evaluation.runner import load_result
from evaluation.store import Store
from evaluation.tables import CONFIDENCE, MIN_SPEAKERS, MIN_UTTERANCES, N_BOOTSTRAP

ALL = "(all)"


@dataclass(frozen=True)
class Comparison:
    run_a: str
    run_b: str
    table: pd.DataFrame = field(repr=False)  # one row per group: keys, wer_a, wer_b, delta, its CI, change
    differences: tuple[str, ...]  # settings that differ between the runs (model, backend, ...)

    @property
    def regressions(self) -> pd.DataFrame:
        return self.table[self.table["change"] == "regression"]


def _cluster_sums(rows: pd.DataFrame, cluster: str, index: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    sums = rows.groupby(cluster)[["errors", "ref_words"]].sum().reindex(index, fill_value=0)
    return sums["errors"].to_numpy(float), sums["ref_words"].to_numpy(float)


def delta_interval(a: pd.DataFrame, b: pd.DataFrame, *, n_boot: int, seed: int) -> tuple[float, float, bool]:
    """CI of WER(b) - WER(a), paired on shared utterances when both hold the same ones."""
    rng = np.random.default_rng(seed)
    keys_a, keys_b = set(zip(a["id"], a["noise"], strict=True)), set(zip(b["id"], b["noise"], strict=True))
    paired = keys_a == keys_b and len(keys_a) > 0
    speaker = "speaker" in a.columns and a["speaker"].notna().all() and "speaker" in b.columns
    cluster = "speaker" if speaker else "id"
    if paired:
        index = pd.Index(sorted(set(a[cluster].astype(str))))
        ea, wa = _cluster_sums(a.assign(**{cluster: a[cluster].astype(str)}), cluster, index)
        eb, wb = _cluster_sums(b.assign(**{cluster: b[cluster].astype(str)}), cluster, index)
        picks = rng.integers(0, index.size, size=(n_boot, index.size))
        deltas = _ratios(eb[picks], wb[picks]) - _ratios(ea[picks], wa[picks])
    else:
        deltas = _independent(b, cluster, rng, n_boot) - _independent(a, cluster, rng, n_boot)
    deltas = deltas[np.isfinite(deltas)]
    if deltas.size == 0:
        return math.nan, math.nan, paired
    tail = (1 - CONFIDENCE) / 2 * 100
    return float(np.percentile(deltas, tail)), float(np.percentile(deltas, 100 - tail)), paired


def _ratios(errors: np.ndarray, words: np.ndarray) -> np.ndarray:
    num, den = errors.sum(axis=1), words.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _independent(rows: pd.DataFrame, cluster: str, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    key = rows[cluster].astype(str)
    index = pd.Index(sorted(set(key)))
    errors, words = _cluster_sums(rows.assign(**{cluster: key}), cluster, index)
    picks = rng.integers(0, index.size, size=(n_boot, index.size))
    return _ratios(errors[picks], words[picks])


def _is_small(rows: pd.DataFrame) -> bool:
    speakers = rows["speaker"].nunique() if "speaker" in rows.columns and rows["speaker"].notna().all() else None
    return len(rows) < MIN_UTTERANCES or (speakers is not None and speakers < MIN_SPEAKERS)


def _pooled(rows: pd.DataFrame) -> float:
    words = rows["ref_words"].sum()
    return float(rows["errors"].sum() / words) if words else math.nan


def _groups(rows: pd.DataFrame, by: list[str]) -> dict[tuple, pd.DataFrame]:
    if not by:
        return {(): rows}
    return {(k if isinstance(k, tuple) else (k,)): g for k, g in rows.groupby(by, sort=False, dropna=False)}


def _groupings(columns: Sequence[str]) -> list[list[str]]:
    """Overall, per noise, per group column, and the first group column x noise."""
    out: list[list[str]] = [[], ["noise"]]
    out += [[c] for c in columns]
    if columns:
        out.append([columns[0], "noise"])
    return out


def compare_runs(store: Store, run_a: str, run_b: str, *, n_boot: int = N_BOOTSTRAP, seed: int = 0) -> Comparison:
    """Per-group deltas of run B against run A (B - A; positive is worse)."""
    a, b = load_result(store, run_a), load_result(store, run_b)
    columns = [c for c in a.summary.group_columns if c in b.summary.group_columns]
    keys = ["noise", *columns]
    records = []
    for by in _groupings(columns):
        b_groups = _groups(b.rows, by)
        for key, rows_a in _groups(a.rows, by).items():
            rows_b = b_groups.get(key)
            if rows_b is None:
                continue
            low, high, paired = delta_interval(rows_a, rows_b, n_boot=n_boot, seed=seed)
            wer_a, wer_b = _pooled(rows_a), _pooled(rows_b)
            values = dict(zip(by, key, strict=True))
            small = _is_small(rows_a) or _is_small(rows_b)
            change = "" if small else "regression" if low > 0 else "improvement" if high < 0 else ""
            records.append(
                {
                    **{k: values.get(k, ALL) for k in keys},
                    "wer_a": wer_a,
                    "wer_b": wer_b,
                    "delta": wer_b - wer_a,
                    "delta_ci_low": low,
                    "delta_ci_high": high,
                    "utterances_a": len(rows_a),
                    "utterances_b": len(rows_b),
                    "paired": paired,
                    "small": small,
                    "change": change,
                }
            )
    differences = tuple(
        f"{k}: {a.settings.to_json().get(k)!r} -> {b.settings.to_json().get(k)!r}"
        for k in ("model", "backend", "dataset", "noise", "seed", "normalizer", "normalizer_version", "limit")
        if a.settings.to_json().get(k) != b.settings.to_json().get(k)
    )
    return Comparison(run_a, run_b, pd.DataFrame.from_records(records), differences)


def comparison_text(comparison: Comparison) -> pd.DataFrame:
    """The table for people: WERs and delta in percent, the delta's CI, the mark."""
    t = comparison.table
    key_columns = [c for c in t.columns if c not in _NUMERIC]
    out = t[key_columns].copy()
    out["WER A"] = [f"{v * 100:.1f}%" for v in t["wer_a"]]
    out["WER B"] = [f"{v * 100:.1f}%" for v in t["wer_b"]]
    out["delta [95% CI]"] = [
        f"{d * 100:+.1f} [{lo * 100:+.1f}, {hi * 100:+.1f}]"
        for d, lo, hi in zip(t["delta"], t["delta_ci_low"], t["delta_ci_high"], strict=True)
    ]
    out["n"] = t["utterances_b"]
    out["change"] = [
        c.upper() if c == "regression" else c or ("small" if sm else "")
        for c, sm in zip(t["change"], t["small"], strict=True)
    ]
    return out


_NUMERIC = (
    "wer_a",
    "wer_b",
    "delta",
    "delta_ci_low",
    "delta_ci_high",
    "utterances_a",
    "utterances_b",
    "paired",
    "small",
    "change",
)
