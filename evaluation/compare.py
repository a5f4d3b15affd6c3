"""Compare two runs group by group: WER deltas with a bootstrap CI, regressions beyond the CI marked.

The delta's interval is :func:`evaluation.scoring.paired_delta_interval`: paired on the shared utterances when
both runs scored the same ones (far tighter than two independent intervals), independent otherwise. A group is
a ``regression`` when the whole interval of B - A lies above zero, an ``improvement`` when it lies below; a
small cell (:func:`evaluation.scoring.is_small`, the rule the group tables use) is never marked, since its
interval cannot be trusted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from evaluation.runner import SETTINGS_THAT_MATTER, load_result
from evaluation.scoring import N_BOOTSTRAP, is_small, paired_delta_interval, rows_wer
from evaluation.store import Store

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


def _groups(rows: pd.DataFrame, by: list[str]) -> dict[tuple, pd.DataFrame]:
    if not by:
        return {(): rows}
    return {(k if isinstance(k, tuple) else (k,)): g for k, g in rows.groupby(by, sort=False, dropna=False)}


def _paths(rows: pd.DataFrame) -> set[str]:
    return set(rows["mode"].dropna().astype(str)) if "mode" in rows.columns else {"offline"}


def _same_paths(rows_a: pd.DataFrame, rows_b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, bool]:
    """The rows to compare, and whether to compare them per path (``mode``).

    A run of both paths holds two transcripts of each utterance: compared as they were, its groups pooled the
    offline and the streaming WER (a figure neither path has) against the other run's one path. The paths both
    runs took are compared, each on its own; two runs of one path each (offline against streaming) as they are.
    """
    paths_a, paths_b = _paths(rows_a), _paths(rows_b)
    common = paths_a & paths_b
    if (len(paths_a) <= 1 and len(paths_b) <= 1) or not common:
        return rows_a, rows_b, False

    def keep(rows: pd.DataFrame) -> pd.DataFrame:
        return rows[rows["mode"].isin(common)] if "mode" in rows.columns else rows

    return keep(rows_a), keep(rows_b), len(common) > 1


def _same_conditions(rows_a: pd.DataFrame, rows_b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The rows of the noise conditions both runs took, and a note naming the ones left out.

    Pooled as they were, the ``(all)`` rows of a run with ``clean,white@10,babble@5`` against one with
    ``clean,white@10`` compared three conditions with two: B's missing hard condition read as a 19-point
    "improvement" while every shared condition was unchanged. Runs with no condition in common are compared as
    they are (their per-condition rows have nothing to pair).
    """
    conditions_a, conditions_b = list(dict.fromkeys(rows_a["noise"])), list(dict.fromkeys(rows_b["noise"]))
    common = set(conditions_a) & set(conditions_b)
    if not common or common == set(conditions_a) == set(conditions_b):
        return rows_a, rows_b, ""
    only = [
        f"only in {side}: {', '.join(c for c in conds if c not in common)}"
        for side, conds in (("A", conditions_a), ("B", conditions_b))
        if set(conds) - common
    ]
    note = f"compared on the {len(common)} condition(s) both runs took ({' / '.join(only)})"
    return rows_a[rows_a["noise"].isin(common)], rows_b[rows_b["noise"].isin(common)], note


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
    all_a, all_b, by_path = _same_paths(a.rows, b.rows)
    all_a, all_b, conditions_note = _same_conditions(all_a, all_b)
    keys = [*(["mode"] if by_path else []), "noise", *columns]
    records = []
    for by in _groupings(columns):
        by = ["mode", *by] if by_path else by
        b_groups = _groups(all_b, by)
        for key, rows_a in _groups(all_a, by).items():
            rows_b = b_groups.get(key)
            if rows_b is None:
                continue
            ci, paired = paired_delta_interval(rows_a, rows_b, n_boot=n_boot, seed=seed)
            low, high = ci.low, ci.high
            wer_a, wer_b = rows_wer(rows_a), rows_wer(rows_b)
            values = dict(zip(by, key, strict=True))
            small = is_small(rows_a) or is_small(rows_b)
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
        + (f", {conditions_note}" if k == "noise" and conditions_note else "")
        for k in SETTINGS_THAT_MATTER  # the settings a resumed run must share: the ones a comparison names
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
