"""Renderers of the Validate page: the colour-scaled WER table, the per-group chart with CIs, the utterance table.

They take what ``evaluation`` computed (a ``Summary``, the per-utterance rows) and only lay it out; no figure is
computed here except the group table the chart needs, which comes from ``evaluation.tables.group_table``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # no display on a server; set before any figure is made

import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from dashboard.shared import esc  # noqa: E402
from evaluation.compare import Comparison, comparison_text  # noqa: E402
from evaluation.report import (  # noqa: E402
    MIN_RATE_SECONDS,
    Summary,
    count_text,
    display_table,
    invented_lines,
    overall_path,
    streaming_overall_text,
)
from evaluation.store import Run  # noqa: E402
from evaluation.stream_tables import side_by_side  # noqa: E402
from evaluation.tables import group_table  # noqa: E402

if TYPE_CHECKING:
    from evaluation.runner import RunResult

WORST_WER = 0.5  # WER at which a cell is fully red; 0 is green
UTTERANCE_COLUMNS = ("id", "noise", "mode", "wer", "reference", "hypothesis", "snr_db_measured")


class ProgressLine:
    """The text over a run's progress bar, from the runner's ``progress(done, total, message)`` reports.

    The first report (``RunProgress.start``) says what the run is, "run ID on local: 6 to transcribe", and
    stands alone: with the count in front it read "0/6 run ID: 6 of 6 to transcribe". Each later one (a batch
    stored) gets the rows done in front: "3/6 clean: en-us_m3_00 · 1.9x rtfx · ETA 0:04"."""

    def __init__(self, prefix: str = "") -> None:
        self.prefix = prefix  # "model 1/2 (NAME): " when the form runs several models
        self.started = False

    def __call__(self, done: int, total: int, message: str) -> str:
        if not self.started:
            self.started = True
            return f"{self.prefix}{message}"
        return f"{self.prefix}{done}/{total} {message}"


def wer_colour(wer: float) -> str:
    """Green (0%) through yellow to red (50% and worse); grey for a cell with no figure."""
    if wer is None or not math.isfinite(wer):
        return "background-color: #e5e7eb; color: #111"
    hue = 120.0 * (1.0 - min(max(wer / WORST_WER, 0.0), 1.0))
    return f"background-color: hsl({hue:.0f}, 75%, 82%); color: #111"


def wer_table(summary: Summary):
    """The accent x noise pivot (WER with 95% CI), coloured by WER; the noise table when there are no groups."""
    if summary.pivot is not None and summary.pivot_text is not None:
        text = summary.pivot_text.reset_index()
        numbers = summary.pivot.reset_index()
        key = text.columns[0]
    elif "noise" in summary.tables:
        noise = summary.tables["noise"]
        text = display_table(noise, ["noise"])[["noise", "WER [95% CI]"]].set_index("noise").T.reset_index(drop=True)
        numbers = noise.set_index("noise")[["wer"]].T.reset_index(drop=True)
        text.insert(0, "", "all")
        numbers.insert(0, "", "all")
        key = ""
    else:
        return pd.DataFrame({"": ["no results"]})

    def colours(frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame("", index=frame.index, columns=frame.columns)
        for column in frame.columns:
            if column != key:
                out[column] = [wer_colour(float(v)) for v in numbers[column]]
        return out

    return text.style.apply(colours, axis=None)


WORST_INVENTED = 10.0  # invented words per minute of non-speech at which a cell is fully red


def invented_table(table: pd.DataFrame, key: str | None):
    """A probe run's table (see ``evaluation.report.invented_pivot``; ``key`` its group column, None when it has
    none): invented words per minute of non-speech, green at 0, red from :data:`WORST_INVENTED`, grey where a cell
    has no non-speech."""
    text = table.copy()
    text.columns = [str(c) for c in text.columns]
    numbers = table.set_axis(text.columns, axis=1)
    for column in text.columns:
        if column != key:
            text[column] = [f"{float(v):.2f}" if math.isfinite(float(v)) else "n/a" for v in text[column]]

    def colours(frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame("", index=frame.index, columns=frame.columns)
        for column in frame.columns:
            if column != key:
                out[column] = [wer_colour(float(v) / WORST_INVENTED * WORST_WER) for v in numbers[column]]
        return out

    return text.style.apply(colours, axis=None)


def invented_markdown(rows: pd.DataFrame, group_columns) -> str | None:
    """Words the model made up on non-speech (probes) or outside the reference's speech, and where; None when
    there is nothing to say: no non-speech, or no word invented over too little of it for a rate (a speech run's
    only non-speech is its edges: "Invented words: 0 (over only 0.02 s of non-speech ...)" on every run)."""
    invented = invented_lines(rows, group_columns)
    if not invented:
        return None
    if not rows["invented_words"].sum() and rows["nonspeech_seconds"].sum() < MIN_RATE_SECONDS:
        return None
    head, *listed = invented
    return f"**Invented {esc(head.removeprefix('invented '))}**" + "".join(f"\n- {esc(x)}" for x in listed)


def group_chart(rows: pd.DataFrame, summary: Summary, seed: int = 0) -> Figure:
    """WER per group (first group column) and noise condition, bars with 95% CI error bars. A run of both paths
    has a bar per path (``clean`` and ``clean [streaming]``), as the table has a column per path: pooling them
    would chart a WER that neither path has."""
    rows = side_by_side(rows)
    group = summary.group_columns[0] if summary.group_columns else None
    by = [group, "noise"] if group else ["noise"]
    table = group_table(rows, by, speaker_column=summary.speaker_column, seed=seed) if len(rows) else pd.DataFrame()
    figure = Figure(figsize=(10, 4.2), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    if table.empty:
        axes.text(0.5, 0.5, "no results", ha="center", va="center")
        return figure
    conditions = list(dict.fromkeys(table["noise"]))
    groups = list(dict.fromkeys(table[group])) if group else ["all"]
    width = 0.8 / len(conditions)
    for i, condition in enumerate(conditions):
        cells = table[table["noise"] == condition]
        cells = cells.set_index(group).reindex(groups) if group else cells.reset_index(drop=True)
        wer = cells["wer"].to_numpy(float) * 100
        low = (cells["wer"] - cells["wer_ci_low"]).clip(lower=0).to_numpy(float) * 100
        high = (cells["wer_ci_high"] - cells["wer"]).clip(lower=0).to_numpy(float) * 100
        xs = [x - 0.4 + width * (i + 0.5) for x in range(len(groups))]
        axes.bar(xs, wer, width, label=condition, yerr=[low, high], capsize=3, error_kw={"elinewidth": 1})
    axes.set_xticks(
        range(len(groups)), groups, rotation=20 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center"
    )
    axes.set_ylabel("WER % (bars: 95% CI)")
    axes.set_xlabel(group or "")
    axes.set_ylim(bottom=0)
    axes.grid(axis="y", alpha=0.3)
    axes.legend(title="noise", fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))  # outside the bars
    return figure


def utterance_frame(rows: pd.DataFrame, group_columns: Sequence[str]) -> pd.DataFrame:
    """One row per utterance x condition, worst first, with the columns a reviewer scans."""
    columns = [c for c in (UTTERANCE_COLUMNS[0], *group_columns, *UTTERANCE_COLUMNS[1:]) if c in rows.columns]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    out = rows[columns].copy()
    out["wer"] = (out["wer"].astype(float) * 100).round(1)
    if "snr_db_measured" in out:
        out["snr_db_measured"] = out["snr_db_measured"].astype(float).round(1)
    out = out.sort_values("wer", ascending=False, na_position="last")
    return out.rename(columns={"wer": "wer %", "snr_db_measured": "SNR dB"})  # short headers: narrow columns


COLUMN_WIDTHS = {"id": 16, "noise": 17, "mode": 8, "wer %": 6, "SNR dB": 6}  # percent of the table
GROUP_WIDTH = 8  # each group column (language, accent, ...): its header on one line, not a letter a line
TEXT_COLUMNS = ("reference", "hypothesis")  # share what is left, so that a sentence wraps inside its cell


def utterance_widths(columns: Sequence[str]) -> list[str]:
    """Column widths of the utterance table: short keys narrow, reference and hypothesis the rest (at least 15%
    each). Left to the browser, a long reference pushed the hypothesis out of sight and squeezed ``language`` to
    one letter per line."""
    fixed = {c: COLUMN_WIDTHS.get(c, GROUP_WIDTH) for c in columns if c not in TEXT_COLUMNS}
    texts = [c for c in columns if c in TEXT_COLUMNS]
    share = max((100 - sum(fixed.values())) / len(texts), 15) if texts else 0
    return [f"{fixed[c] if c in fixed else share:g}%" for c in columns]


def selection_text(settings) -> str:
    """Which rows of the dataset the run took, as its settings record it (empty: all of them)."""
    words = f"{settings.min_words}+ words" if settings.min_words else ""
    if settings.limit:
        return f" ({settings.limit} utterances spread evenly" + (f" over those of {words})" if words else ")")
    return f" (utterances of {words})" if words else ""


def run_label(run: Run) -> str:
    """How a run is named in the pickers: when, what, and its overall WER."""
    overall = (run.summary or {}).get("overall") or {}
    wer = overall.get("wer")
    figure = f"WER {wer * 100:.1f}%" if isinstance(wer, (int, float)) else run.status
    settings = run.settings
    noise = ",".join(settings.noise)
    taken = [
        f"{settings.limit} utt." if settings.limit else "",
        f"{settings.min_words}+ words" if settings.min_words else "",
    ]
    taken.append("" if settings.mode == "offline" else settings.mode)  # runs alike but for these were told apart by WER
    extra = "".join(f" · {t}" for t in taken if t)
    return (
        f"{run.created_at[:16].replace('T', ' ')} · {settings.model} · {settings.dataset}{extra} · {noise} · {figure}"
    )


CHANGE_COLOURS = {
    "regression": "background-color: #fecaca; color: #111",
    "improvement": "background-color: #bbf7d0; color: #111",
}


def comparison_table(comparison: Comparison):
    """The per-group deltas (B - A), regressions red and improvements green, whole rows."""
    text = comparison_text(comparison)
    changes = list(comparison.table["change"])

    def colours(frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame("", index=frame.index, columns=frame.columns)
        for i, change in enumerate(changes):
            out.iloc[i, :] = CHANGE_COLOURS.get(change, "")
        return out

    return text.style.apply(colours, axis=None)


def made_text(item: dict) -> str:
    """How the row's audio and transcript were made, beyond its condition: the path and the channel's codec."""
    parts = [str(item["mode"])] if str(item.get("mode") or "") == "streaming" else []
    detail = item.get("channel_detail")
    if isinstance(detail, str) and detail:
        parts.append(detail)
    return "".join(f" · {esc(p)}" for p in parts)


def headline_lines(result: RunResult) -> list[str]:
    """What ran, and the overall figures; a run stopped before its first row has none (it read "WER n/a, CER
    n/a, 0 utterances, ... rtfx 0.0" and explained the `*` of a table it does not show)."""
    summary, settings, o = result.summary, result.settings, result.summary.overall
    lines = [
        f"**Run `{result.run_id}`** ({result.status}): `{esc(settings.model)}` on {esc(settings.backend)}, dataset "
        f"`{esc(settings.dataset)}`{selection_text(settings)}, noise {', '.join(f'`{esc(n)}`' for n in settings.noise)}, "
        f"seed {settings.seed}, "
        f"normalizer `{esc(settings.normalizer)}`, executor `{esc(result.executor or settings.executor)}`."
    ]
    if result.rows.empty:
        return lines
    speed = f", {o.audio_seconds:.0f} s of audio; rtfx {result.rtfx:.1f} (audio seconds per second) in this run"
    return [
        *lines,
        f"Overall WER{overall_path(summary)} **{pct(o.wer)}** (raw {pct(o.raw_wer)}), CER {pct(o.cer)}, "
        f"{count_text(result.rows)}{speed if math.isfinite(result.rtfx) else ''}."
        + streaming_overall_text(summary, digits=1),
        "`*` marks a cell with too few utterances or speakers to trust.",
    ]


def pct(value: float) -> str:
    return f"{value * 100:.1f}%" if math.isfinite(value) else "n/a"
