"""``--max-wer`` thresholds: the CI gate of ``python -m evaluation run``.

A threshold is an overall limit (``0.35``, ``35%``) or one on the rows matching column values
(``accent=en-gb-scotland:0.5``); each is checked on the pooled WER of the rows it selects, so a gate on a
group means the same figure the tables show for it. Kept apart from the CLI so that the gate can grow (and be
called from elsewhere) without crowding the command line's module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from evaluation.datasets import LoadedDataset
from evaluation.report import headline_rows
from evaluation.scoring import rows_wer


class ThresholdError(ValueError):
    """A ``--max-wer`` that cannot be read or checked, with the threshold quoted: one line, exit 2."""


@dataclass(frozen=True)
class Threshold:
    spec: str  # as given, e.g. "accent=en-gb-scotland:0.5"
    where: tuple[tuple[str, str], ...]  # (column, value) pairs every counted row must match; () is overall
    max_wer: float


def parse_threshold(text: str) -> Threshold:
    """``0.35``, ``35%``, ``accent=en-gb-scotland:0.5`` or ``noise=white@10,accent=en-us:0.4``."""
    where_text, _, value = text.rpartition(":") if "=" in text else ("", "", text)
    try:
        limit = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ThresholdError(
            f"--max-wer {text!r}: {value!r} is not a number (use 0.35, 35% or COLUMN=VALUE:0.5)"
        ) from None
    if not math.isfinite(limit) or limit < 0:
        raise ThresholdError(f"--max-wer {text!r}: the limit must be a number >= 0")
    where = []
    for part in filter(None, where_text.split(",")):
        column, sep, wanted = part.partition("=")
        if not sep or not column.strip():
            raise ThresholdError(f"--max-wer {text!r}: expected COLUMN=VALUE:LIMIT, e.g. accent=en-gb-scotland:0.5")
        where.append((column.strip(), wanted.strip()))
    return Threshold(text, tuple(where), limit)


def check_planned(
    thresholds: Sequence[Threshold], data: LoadedDataset, noise: Sequence[str], modes: Sequence[str]
) -> None:
    """A threshold on values no row of the run will have, found before any row is transcribed: it was found after
    the whole run, every output written. Only what is known now is checked (the dataset's group columns, noise and
    mode, and references with no words); other columns, and a column the results lack, are checked on the results by
    :func:`check_threshold`."""
    planned = {"noise": tuple(noise), "mode": tuple(modes)}
    for t in thresholds:
        where = dict(t.where)
        for column, values in planned.items():
            if column in where and where[column] not in values:
                raise ThresholdError(
                    f"--max-wer {t.spec!r}: this run has no {column} {where[column]!r} (it has {', '.join(values)})"
                )
        groups = {c: v for c, v in where.items() if c in data.group_columns}
        chosen = [s for s in data.samples if all(s.groups.get(c) == v for c, v in groups.items())]
        if chosen and not any(s.text.strip() for s in chosen):  # a probe run: refused after it was transcribed
            raise ThresholdError(f"--max-wer {t.spec!r}: its rows have no reference words (probes), so no WER")
        if groups and not chosen:
            column = next(iter(groups))
            there = sorted({s.groups.get(column, "") for s in data.samples})
            raise ThresholdError(
                f"--max-wer {t.spec!r}: no row of {data.name} has {', '.join(f'{c}={v}' for c, v in groups.items())} "
                f"({column} values: {', '.join(there[:10])}{', ...' if len(there) > 10 else ''})"
            )


def check_threshold(rows: pd.DataFrame, threshold: Threshold) -> tuple[float, int]:
    """Pooled WER of the rows the threshold selects, and how many rows that is.

    With both paths run (``--mode both``) a threshold that does not name ``mode`` gates the offline rows, the
    figure the overall line shows: it pooled both paths' rows, every utterance twice and two transcripts blended
    (a gate of 0.2 passed an offline WER of 25%). ``mode=streaming:0.3`` gates the streaming path."""
    selected = rows if "mode" in dict(threshold.where) else headline_rows(rows)[0]
    for column, wanted in threshold.where:
        if column not in rows.columns:
            raise ThresholdError(f"--max-wer {threshold.spec!r}: the results have no column {column!r}")
        selected = selected[selected[column].astype(str) == wanted]
    if selected.empty:
        raise ThresholdError(f"--max-wer {threshold.spec!r}: no result matches {threshold.spec.rpartition(':')[0]}")
    if "ref_words" in selected.columns and not selected["ref_words"].sum():  # was "FAIL: WER nan", exit 1
        raise ThresholdError(f"--max-wer {threshold.spec!r}: its rows have no reference words (probes), so no WER")
    return rows_wer(selected), len(selected)


def gate(rows: pd.DataFrame, thresholds: Sequence[Threshold]) -> tuple[list[dict], list[str]]:
    """Each threshold's outcome (stored in summary.json's ``thresholds``) and a line per one exceeded."""
    outcomes, failures = [], []
    for t in thresholds:
        wer, n = check_threshold(rows, t)
        passed = wer <= t.max_wer
        outcomes.append({"threshold": t.spec, "wer": wer, "rows": n, "max_wer": t.max_wer, "passed": passed})
        if not passed:
            failures.append(f"WER {wer:.3f} over {n} rows exceeds --max-wer {t.spec}")
    return outcomes, failures
