"""Streaming figures per group: committed WER, its paired difference to offline, latencies, flips, duplicates.

The paired difference is over the same rows (same utterance, condition and seed, decoded both ways), so its
interval is much narrower than the difference of two independent WER intervals; the bootstrap
(:func:`evaluation.scoring.paired_delta_interval`) draws the same blocks (speakers, or utterances) for both. Latency quantiles pool the commit
latencies of every committed word of a group, and their interval resamples rows the same way.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from evaluation.scoring import N_BOOTSTRAP, block_keys, paired_delta_interval, rate

STREAMING = "streaming"
MARK = f" [{STREAMING}]"  # after a streaming row's condition when a run took both paths


def side_by_side(rows: pd.DataFrame) -> pd.DataFrame:
    """With both modes in a run, streaming rows' condition reads ``clean [streaming]``: every table shows the two
    paths as neighbouring columns (and never pools them).

    Idempotent: rows already marked are left as they are (applied twice, the page's chart read
    ``clean [streaming] [streaming]``), so a caller may pass rows it has already put side by side."""
    if "mode" not in rows.columns or rows["mode"].nunique() < 2:
        return rows
    unmarked = (rows["mode"] == STREAMING) & ~rows["noise"].astype(str).str.endswith(MARK)
    if not unmarked.any():
        return rows
    out = rows.copy()
    out.loc[unmarked, "noise"] = out.loc[unmarked, "noise"].astype(str) + MARK
    return out


def _latencies(cell: pd.DataFrame) -> list[np.ndarray]:
    values = cell["commit_latencies"] if "commit_latencies" in cell.columns else pd.Series([""] * len(cell))
    return [
        np.array([float(v) for v in str(t).split(";") if v], float) if isinstance(t, str) else np.zeros(0)
        for t in values
    ]


def _quantile_interval(per_row: list[np.ndarray], clusters, q: float, n_boot: int, seed: int) -> tuple[float, float]:
    if not any(a.size for a in per_row):
        return math.nan, math.nan
    groups = pd.Series(range(len(per_row))).groupby(np.asarray(clusters, str)).apply(list).tolist()
    pooled = [np.concatenate([per_row[i] for i in g]) for g in groups]
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(pooled), size=(n_boot, len(pooled)))
    samples = [np.concatenate([pooled[i] for i in p]) for p in picks if sum(pooled[i].size for i in p)]
    if any(np.isnan(a).any() for a in pooled):  # np.percentile's NaN rule, kept by calling it
        stats = [np.percentile(a, q) for a in samples]
    else:
        stats = percentiles(samples, q)
    return float(np.percentile(stats, 2.5)), float(np.percentile(stats, 97.5))


def percentiles(samples: Sequence[np.ndarray], q: float, cells: int = 1 << 22) -> np.ndarray:
    """``np.percentile(a, q)`` of each non-empty, NaN-free sample, computed for many at once.

    Why: the latency intervals take 1000 bootstrap resamples per cell and quantile, and 1000 calls of
    np.percentile cost about a second per streaming table (1.4% of ``live sweep``'s streaming run). Rows of one
    sorted grid (padded with inf, ``cells`` values at a time) give the same floats: the index and interpolation
    below are numpy's linear method, operation for operation (``_quantile``, ``_get_indexes``, ``_lerp``).
    """
    sizes = np.array([a.size for a in samples], np.intp)
    out = np.empty(len(samples))
    step = max(1, cells // max(int(sizes.max(initial=1)), 1))
    for at in range(0, len(samples), step):
        part, n = samples[at : at + step], sizes[at : at + step]
        grid = np.full((len(part), int(n.max())), np.inf)
        for row, a in zip(grid, part):
            row[: a.size] = a
        grid.sort(axis=1)
        virtual = (n - 1) * np.true_divide(q, 100)
        previous = np.floor(virtual)
        last = virtual >= n - 1  # numpy takes the last value there
        low = np.where(last, n - 1, previous.astype(np.intp))
        high = np.where(last, n - 1, low + 1)
        rows = np.arange(len(part))
        a, b = grid[rows, low], grid[rows, high]
        gamma = virtual - np.where(last, -1, previous)
        diff = b - a
        out[at : at + step] = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return out


def _offline_twin(cell: pd.DataFrame) -> pd.DataFrame:
    """The offline rows paired with these streaming rows, rebuilt from their per-row difference."""
    twin = cell.copy()
    delta_errors = cell["wer_delta_offline"].fillna(0).to_numpy(float) * cell["ref_words"].to_numpy(float)
    twin["errors"] = np.rint(cell["errors"].to_numpy(float) - delta_errors)
    return twin


def _cell(keys: dict, cell: pd.DataFrame, n_boot: int, seed: int) -> dict:
    clusters = block_keys(cell)
    words = cell["ref_words"].to_numpy(float)
    offline = _offline_twin(cell)
    delta, _ = paired_delta_interval(offline, cell, n_boot=n_boot, seed=seed)
    latencies = _latencies(cell)
    pooled = np.concatenate(latencies) if latencies else np.zeros(0)
    p50 = _quantile_interval(latencies, clusters, 50, n_boot, seed)
    p95 = _quantile_interval(latencies, clusters, 95, n_boot, seed)
    first = cell["first_commit_s"].dropna()
    total = words.sum()
    return {
        **keys,
        "utterances": len(cell),
        "wer": rate(cell["errors"].sum(), total),
        "wer_delta_offline": rate(cell["errors"].sum() - offline["errors"].sum(), total),
        "delta_ci_low": delta.low,
        "delta_ci_high": delta.high,
        "first_commit_p50_s": float(first.median()) if len(first) else math.nan,
        "commit_latency_p50_s": float(np.percentile(pooled, 50)) if pooled.size else math.nan,
        "p50_ci_low": p50[0],
        "p50_ci_high": p50[1],
        "commit_latency_p95_s": float(np.percentile(pooled, 95)) if pooled.size else math.nan,
        "p95_ci_low": p95[0],
        "p95_ci_high": p95[1],
        "words_committed": int(pooled.size),
        "flips": int(cell["flips"].fillna(0).sum()),
        "duplicate_words": int(cell["duplicate_words"].fillna(0).sum()),
    }


def streaming_table(
    rows: pd.DataFrame,
    by: Sequence[str],
    *,
    speaker_column: str | None = None,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
) -> pd.DataFrame | None:
    """One row per group of the streaming-mode rows (None when the run has none)."""
    if "mode" not in rows.columns:
        return None
    streamed = rows[rows["mode"] == STREAMING]
    if streamed.empty:
        return None
    by = [c for c in by if c in streamed.columns]
    grouped = streamed.groupby(by, sort=False, dropna=False) if by else [((), streamed)]
    records = []
    for key, cell in grouped:
        key = key if isinstance(key, tuple) else (key,)
        records.append(_cell(dict(zip(by, key, strict=True)), cell, n_boot, seed))
    return pd.DataFrame.from_records(records)


def format_streaming(table: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """The table for people: percentages and seconds with their intervals."""

    def pct(v: float, lo: float = math.nan, hi: float = math.nan, sign: bool = False) -> str:
        if not math.isfinite(v):
            return "n/a"
        ci = f" [{lo * 100:+.1f}, {hi * 100:+.1f}]" if math.isfinite(lo) and math.isfinite(hi) else ""
        return f"{v * 100:+.1f}{ci}" if sign else f"{v * 100:.1f}%"

    def sec(v: float, lo: float = math.nan, hi: float = math.nan) -> str:
        if not math.isfinite(v):
            return "n/a"
        return f"{v:.2f}" + (f" [{lo:.2f}, {hi:.2f}]" if math.isfinite(lo) and math.isfinite(hi) else "")

    out = table[list(keys)].copy()
    t = table
    out["committed WER"] = [pct(v) for v in t["wer"]]
    out["vs offline (points) [95% CI]"] = [
        pct(v, lo, hi, sign=True) for v, lo, hi in zip(t["wer_delta_offline"], t["delta_ci_low"], t["delta_ci_high"])
    ]
    out["first commit (s)"] = [sec(v) for v in t["first_commit_p50_s"]]
    out["latency p50 (s)"] = [
        sec(v, lo, hi) for v, lo, hi in zip(t["commit_latency_p50_s"], t["p50_ci_low"], t["p50_ci_high"])
    ]
    out["latency p95 (s)"] = [
        sec(v, lo, hi) for v, lo, hi in zip(t["commit_latency_p95_s"], t["p95_ci_low"], t["p95_ci_high"])
    ]
    out["flips"] = t["flips"]
    out["duplicates"] = t["duplicate_words"]
    out["utterances"] = t["utterances"]
    return out
