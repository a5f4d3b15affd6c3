"""Summaries of a run and the files a run writes: results.csv, summary.csv, summary.json, summary.md.

A :class:`Summary` is computed from the stored per-utterance rows and the run's settings only, so a finished,
cancelled or resumed run, or one reopened later by the dashboard, gives the same tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evaluation.datasets import REFERENCE_LANGUAGE
from evaluation.scoring import N_BOOTSTRAP, speaker_count
from evaluation.spreadsheet import write_csv
from evaluation.store import RunSettings
from evaluation.stream_tables import STREAMING, format_streaming, side_by_side, streaming_table
from evaluation.tables import Overall, format_cell, formatted_pivot, group_table, overall, pivot

SYNTHETIC_NOTE = "The built-in set's accents are synthetic (espeak-ng voices), not recordings of real speakers."
INTERNAL_COLUMNS = ("commit_latencies",)  # stored for the group quantiles, left out of results.csv
FIRST_COLUMNS = ("id", "speaker", "noise", "reference", "hypothesis", "detected_language", "wer", "cer", "raw_wer")


@dataclass(frozen=True)
class Summary:
    overall: Overall
    groups: pd.DataFrame = field(repr=False)  # one row per noise x every group column
    tables: Mapping[str, pd.DataFrame] = field(repr=False)  # "noise" and each group column alone
    pivot: pd.DataFrame | None = field(repr=False)  # first group column x noise, WER as a fraction
    pivot_text: pd.DataFrame | None = field(repr=False)  # the same, formatted with CI and small-cell marks
    group_columns: tuple[str, ...]
    speaker_column: str | None  # "speaker" when every row names a speaker (the CIs then resample speakers)
    languages: Languages | None = None  # what language was detected per row (None: rows without the column)
    streaming: pd.DataFrame | None = field(default=None, repr=False)  # streaming figures by noise (x first group)
    overall_mode: str | None = None  # the path ``overall`` pools when the rows say ("offline" or "streaming")
    overall_streaming: Overall | None = None  # with both paths in a run: the streaming rows' own overall figures


@dataclass(frozen=True)
class Languages:
    """How many rows were decoded in each language, and how many in the right one when the dataset says which."""

    detected: Mapping[str, int]  # detected language -> rows, most frequent first
    rows: int
    right: int | None  # rows whose detected language is the dataset's language column (None: no such column)
    wrong: Mapping[str, int] = field(default_factory=dict)  # dataset language -> its rows decoded in another

    @property
    def share_right(self) -> float:
        return self.right / self.rows if self.right is not None and self.rows else math.nan

    def to_json(self) -> dict[str, Any]:
        return {
            "detected": dict(self.detected),
            "rows": self.rows,
            "right": self.right,
            "share_right": _json_value(self.share_right),
            "wrong": dict(self.wrong),
        }

    def text(self) -> str:
        counts = ", ".join(f"{lang} {n}" for lang, n in self.detected.items())
        right = f"; in the dataset's language: {self.right}/{self.rows}" if self.right is not None else ""
        warning = self.warning()
        return f"detected languages: {counts}{right}" + (f". {warning}" if warning else "")

    def warning(self) -> str | None:
        """What to do when rows were decoded in another language than the dataset's: their WER measures the
        language mix-up, not the model. The usual cause is an English-only model (``*.en``) on a multilingual
        set, such as the real-speech set's five languages: it decodes everything as English."""
        if not self.wrong:
            return None
        which = ", ".join(f"{lang} {n}" for lang, n in self.wrong.items())
        hint = (
            "an English-only model (such as whisper-tiny.en) hears every language as English: pick a multilingual "
            "model (whisper-base) or only the English rows (builtin-real:en)"
            if set(self.detected) == {"en"}
            else "force the language (--language) or check the dataset's language column"
        )
        return f"Rows decoded in another language than the dataset's ({which}), so their WER is not comparable: {hint}"


def language_counts(rows: pd.DataFrame) -> Languages | None:
    """The rows' detected languages, checked against the dataset's ``language`` column when there is one."""
    if "detected_language" not in rows.columns or not len(rows):
        return None
    detected = rows["detected_language"].fillna("").astype(str)
    right, wrong = None, {}
    if REFERENCE_LANGUAGE in rows.columns:
        expected = rows[REFERENCE_LANGUAGE].astype(str)
        right = int((detected == expected).sum())
        wrong = _most_first(expected[detected != expected])
    return Languages(_most_first(detected), len(rows), right, wrong)


def _most_first(languages: pd.Series) -> dict[str, int]:
    """Each language's row count, most frequent first (ties by name, so the order never depends on the rows')."""
    return {str(k): int(v) for k, v in sorted(languages.value_counts().items(), key=lambda kv: (-kv[1], kv[0]))}


def summarize(rows: pd.DataFrame, settings: RunSettings, *, n_boot: int = N_BOOTSTRAP) -> Summary:
    """Every table of a run from its per-utterance rows (scored rows only)."""
    streamed = streaming_table(rows, ["noise"], n_boot=n_boot, seed=settings.seed)
    headline, mode, streaming_rows = headline_rows(rows)
    rows = side_by_side(rows)
    groups = tuple(g for g in settings.group_columns if g in rows.columns)
    speaker = "speaker" if speaker_count(rows) is not None else None
    seed = settings.seed

    def table(by: Sequence[str]) -> pd.DataFrame:
        # each cell applies the one blocking rule itself (scoring.block_keys), as the comparison does
        return group_table(rows, list(by), speaker_column="speaker", n_boot=n_boot, seed=seed)

    full = table(["noise", *groups]) if len(rows) else pd.DataFrame()
    tables = {"noise": table(["noise"])} if len(rows) else {}
    for g in groups:
        tables[g] = table([g])
    by_pair = table([groups[0], "noise"]) if groups and len(rows) else None
    return Summary(
        overall=overall(headline),
        groups=full,
        tables=tables,
        pivot=pivot(by_pair, groups[0]) if by_pair is not None else None,
        pivot_text=formatted_pivot(by_pair, groups[0]) if by_pair is not None else None,
        group_columns=groups,
        speaker_column=speaker,
        languages=language_counts(headline),  # each utterance once: --mode both counted it per path ("en 4" of 2)
        streaming=streamed,
        overall_mode=mode,
        overall_streaming=overall(streaming_rows) if streaming_rows is not None else None,
    )


def headline_rows(rows: pd.DataFrame) -> tuple[pd.DataFrame, str | None, pd.DataFrame | None]:
    """The rows the overall figure pools, the path they took, and the streaming rows when both paths ran.

    With ``--mode both`` every utterance is a row twice, once per path: pooling them would count it twice and
    blend two transcripts into one number. The offline path heads the run; the streaming path gets its own line."""
    if "mode" not in rows.columns or not len(rows):
        return rows, None, None
    streaming = rows["mode"].astype(str) == STREAMING
    if streaming.all():
        return rows, STREAMING, None
    if streaming.any():
        return rows[~streaming], "offline", rows[streaming]
    return rows, "offline", None


def headline_overall(rows: pd.DataFrame) -> Overall:
    """The overall figures :func:`summarize` gives, without its bootstrap: quick enough for a run stopped at once
    (a second Ctrl-C, a failure), whose stored rows the runs listing then shows as more than "WER -"."""
    return overall(headline_rows(rows)[0])


def _json_value(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return _json_value(value.item())
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]


def summary_json(summary: Summary, settings: RunSettings, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What summary.json holds: overall figures, every group with its CI, the run's settings."""
    return {
        "overall": summary.overall.to_json(),
        "overall_mode": summary.overall_mode,
        "overall_streaming": summary.overall_streaming.to_json() if summary.overall_streaming else None,
        "groups": _records(summary.groups),
        "tables": {name: _records(t) for name, t in summary.tables.items()},
        "group_columns": list(summary.group_columns),
        "languages": summary.languages.to_json() if summary.languages else None,
        "streaming": _records(summary.streaming) if summary.streaming is not None else None,
        "settings": settings.to_json(),
        **(dict(extra) if extra else {}),
    }


def results_frame(rows: pd.DataFrame, group_columns: Sequence[str]) -> pd.DataFrame:
    """results.csv: the documented columns first, then everything else the runner recorded, each once (a group column
    such as ``detected_language`` is also a documented one)."""
    first = [c for c in dict.fromkeys((*FIRST_COLUMNS[:2], *group_columns, *FIRST_COLUMNS[2:])) if c in rows.columns]
    return rows[first + [c for c in rows.columns if c not in first and c not in INTERNAL_COLUMNS]]


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub Markdown table (no tabulate dependency)."""
    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join("" if v is None else str(v) for v in row) + " |")
    return "\n".join(lines)


def display_table(table: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """A group table for people: WER with CI and small mark, counts."""
    cells = [format_cell(r.wer, r.wer_ci_low, r.wer_ci_high, r.small) for r in table.itertuples(index=False)]
    out = table[list(keys)].copy()
    out["WER [95% CI]"] = cells
    out["CER"] = [f"{v * 100:.1f}%" if math.isfinite(v) else "n/a" for v in table["cer"]]
    out["utterances"] = table["utterances"]
    if "invented_per_min" in table.columns and (table["nonspeech_seconds"] > 0).any():
        out["invented/min"] = [f"{v:.2f}" if math.isfinite(v) else "n/a" for v in table["invented_per_min"]]
    if table["speakers"].notna().any():
        out["speakers"] = table["speakers"]
    return out


def invented_rows(rows: pd.DataFrame, group_columns: Sequence[str] = ()) -> pd.DataFrame:
    """The rows whose transcript has invented words (see evaluation.probes), with those words: what to read."""
    if "invented_words" not in rows.columns:
        return pd.DataFrame(columns=["id", "noise", "invented_words", "invented_text"])
    keep = [c for c in ("id", *group_columns, "noise", "mode", "invented_words", "invented_text") if c in rows.columns]
    return rows.loc[rows["invented_words"] > 0, keep].reset_index(drop=True)


MIN_RATE_SECONDS = 10.0  # non-speech below this gets a count, not a per-minute rate (a rate over 0.05 s is noise)


def invented_lines(rows: pd.DataFrame, group_columns: Sequence[str] = (), listed: int = 10) -> list[str]:
    """The invented-words total over the run's non-speech and the first ``listed`` invented texts, as the CLI and
    the Validate page print them ([] when the rows have no non-speech to count over)."""
    if "nonspeech_seconds" not in rows.columns or not rows["nonspeech_seconds"].sum():
        return []
    words, seconds = int(rows["invented_words"].sum()), float(rows["nonspeech_seconds"].sum())
    span = f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.2f} s"
    if seconds >= MIN_RATE_SECONDS:
        lines = [f"invented words: {words} over {span} of non-speech ({words / (seconds / 60):.2f} per minute)"]
    else:  # speech rows with only their edges as non-speech: "26 over 0.0 s (32500 per minute)" said nothing
        lines = [f"invented words: {words} (over only {span} of non-speech: too little for a per-minute rate)"]
    invented = invented_rows(side_by_side(rows), group_columns)
    lines += [f"  {row.id} [{row.noise}]: {row.invented_text}" for row in invented.head(listed).itertuples(index=False)]
    if len(invented) > listed:
        lines.append(f"  ... {len(invented) - listed} more in summary.md")
    return lines


def invented_pivot(rows: pd.DataFrame, group: str | None) -> pd.DataFrame | None:
    """Invented words per minute of non-speech by group (rows) x condition (columns; ``clean [streaming]`` beside
    ``clean`` when both paths ran): the table of a probe run, whose WER is undefined (no reference words).
    None when the rows have no non-speech."""
    if "nonspeech_seconds" not in rows.columns or not rows["nonspeech_seconds"].sum():
        return None
    rows = side_by_side(rows)
    keys = [group, "noise"] if group and group in rows.columns else ["noise"]
    sums = rows.groupby(keys, sort=False)[["invented_words", "nonspeech_seconds"]].sum().reset_index()
    sums["invented/min"] = [
        w * 60.0 / s if s > 0 else math.nan for w, s in zip(sums["invented_words"], sums["nonspeech_seconds"])
    ]
    if len(keys) == 1:
        return sums.set_index("noise")[["invented/min"]].T.reset_index(drop=True)
    table = sums.pivot(index=group, columns="noise", values="invented/min")
    order = list(dict.fromkeys(rows[group]))
    return table.reindex(index=order, columns=list(dict.fromkeys(rows["noise"]))).reset_index()


def count_text(rows: pd.DataFrame) -> str:
    """What the overall figure counts: rows are utterance x condition, and a real-speech set's prompts are often
    a word or two, so the utterances, conditions and reference words are all said ("12 rows (6 utterances x 2
    conditions), 41 reference words")."""
    headline, _, _ = headline_rows(rows)
    n, words = len(headline), int(headline["ref_words"].sum()) if "ref_words" in headline else 0
    utterances = headline["id"].nunique() if "id" in headline else n
    conditions = headline["noise"].nunique() if "noise" in headline else 1
    if conditions <= 1:
        counted = plural(n, "utterance")
    else:
        counted = f"{plural(n, 'row')} ({plural(utterances, 'utterance')} x {conditions} conditions)"
    return f"{counted}, {plural(words, 'reference word')}"


def _count_of(overall) -> str:
    """The count line from an overall score alone (no rows at hand)."""
    return f"{plural(overall.utterances, 'row')}, {plural(overall.ref_words, 'reference word')}"


def plural(n: int, noun: str) -> str:
    """``1 utterance``, ``3 utterances``: a one-row run said "1 utterances, 1 rows"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def pivot_markdown(summary: Summary) -> str:
    if summary.pivot_text is None:
        return markdown_table(display_table(summary.tables["noise"], ["noise"])) if summary.tables else ""
    return markdown_table(summary.pivot_text.reset_index())


def summary_markdown(
    summary: Summary,
    settings: RunSettings,
    run_id: str,
    skipped: Sequence[str] = (),
    rows: pd.DataFrame | None = None,
) -> str:
    o = summary.overall
    parts = [
        f"# Validation run {run_id}",
        "",
        f"Model `{settings.model}` on `{settings.backend}`, dataset `{settings.dataset}`, noise "
        f"{', '.join(f'`{n}`' for n in settings.noise)}, seed {settings.seed}, normalizer "
        f"`{settings.normalizer}` ({settings.normalizer_version}).",
        "",
        f"Overall WER{overall_path(summary)} {o.wer * 100:.2f}% (raw {o.raw_wer * 100:.2f}%), CER {o.cer * 100:.2f}%, "
        f"{count_text(rows) if rows is not None else _count_of(o)}, "
        f"{o.audio_seconds:.1f} s of audio in "
        f"{o.compute_seconds:.1f} s of compute (rtfx {o.rtfx:.1f}: audio seconds per compute second)."
        + streaming_overall_text(summary),
        "",
        "WER is pooled (all errors / all reference words) with a 95% bootstrap interval"
        + (" over speakers" if summary.speaker_column else " over utterances")
        + "; `*` marks a cell with too few utterances or speakers to trust.",
    ]
    if o.runaway:
        parts += [
            "",
            f"{o.runaway} hypotheses are repetition loops (`runaway` in results.csv); they dominate their cells.",
        ]
    if summary.languages is not None:
        parts += ["", summary.languages.text().capitalize() + "."]
    if settings.dataset == "builtin":
        parts += ["", SYNTHETIC_NOTE]
    parts += ["", "## WER by " + (f"{summary.group_columns[0]} x noise" if summary.group_columns else "noise")]
    parts += ["", pivot_markdown(summary)]
    for name, table in summary.tables.items():
        parts += ["", f"## By {name}", "", markdown_table(display_table(table, [name]))]
    if summary.streaming is not None:
        parts += ["", "## Streaming (committed text on the simulated live clock)", ""]
        parts += [markdown_table(format_streaming(summary.streaming, ["noise"]))]
    invented = invented_rows(rows, summary.group_columns) if rows is not None else None
    if invented is not None and len(invented):
        parts += ["", f"## Invented words ({int(invented['invented_words'].sum())})", "", markdown_table(invented)]
    if skipped:
        parts += ["", f"## Skipped rows ({len(skipped)})", "", *[f"- {s}" for s in skipped]]
    return "\n".join(parts) + "\n"


def write_outputs(
    out_dir: Path,
    rows: pd.DataFrame,
    summary: Summary,
    settings: RunSettings,
    run_id: str,
    extra: Mapping[str, Any] | None = None,
    skipped: Sequence[str] = (),
) -> dict[str, Path]:
    """Write results.csv, summary.csv, summary.json and summary.md into ``out_dir``; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / name for name in ("results.csv", "summary.csv", "summary.json", "summary.md")}
    write_csv(results_frame(rows, summary.group_columns), paths["results.csv"])  # formula-like text as text
    write_csv(summary.groups, paths["summary.csv"])
    invented = _records(invented_rows(rows, summary.group_columns))
    data = summary_json(
        summary, settings, {"run_id": run_id, "skipped": list(skipped), "invented": invented, **(extra or {})}
    )
    paths["summary.json"].write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    paths["summary.md"].write_text(summary_markdown(summary, settings, run_id, skipped, rows), encoding="utf-8")
    return paths


def overall_path(summary: Summary) -> str:
    """ " (offline)" or " (streaming, committed text)" after "overall WER" when the run says which path it pooled."""
    if summary.overall_mode == STREAMING:
        return " (streaming, committed text)"
    return " (offline)" if summary.overall_streaming is not None else ""


def streaming_overall_text(summary: Summary, digits: int = 2) -> str:
    """The streaming path's own overall line of a run that took both paths ("" otherwise), its WER to ``digits``
    decimals as the offline line beside it (two in the CLI and summary.md, one on the Validate page)."""
    s = summary.overall_streaming
    if s is None:
        return ""
    if math.isfinite(s.wer):
        wer = f"{s.wer * 100:.{digits}f}% (raw {s.raw_wer * 100:.{digits}f}%)"
    else:
        wer = "n/a (no reference words)"
    return f" Streaming (committed text): WER {wer}, {plural(s.utterances, 'row')}."
