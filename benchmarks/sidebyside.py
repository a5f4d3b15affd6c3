"""Our engine against faster-whisper's own entry points on the same audio, model and process: WER and speed.

The targets of the real-speech work are relative (no worse than the library's greedy WER, so many times its
throughput), and absolute speeds on a loaded machine are noise, so every approach runs in the same process on the
same loaded model, round-robin (approach A's first run, B's first run, ..., then the second runs), and the table
shows ratios. Each approach is warmed up once on the first recording; the timings are the median over
``--repeat`` runs, and the repeats are compared text for text (the determinism check). Besides the wall-clock
compute seconds, each run's process CPU seconds are shown: on a shared machine the wall clock moves with the
other processes' load, the CPU time much less, so the CPU-time ratio tells whether a change of the wall-clock
ratio is the code's doing or the load's.

WER goes through :mod:`evaluation.scoring`, pooled per language with the normalizer of that language (Whisper's
English normalizer for English, its basic normalizer otherwise). Where the dataset says which language each
utterance is in, the table counts how many the approach decoded in it.

A target of "no worse than the library + 2 points" over 15 utterances is a few words, so a bare difference can
flip with one word from one CPU to the next. Each approach's difference to the baseline (the library's greedy
when it ran) is therefore printed per language and overall with a 95% paired bootstrap interval over
utterances, from :func:`evaluation.scoring.paired_delta_interval` (the comparison command's, seeded): an
interval that straddles the target says the sample cannot tell.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from asr.audio import SAMPLE_RATE
from benchmarks.approaches import APPROACHES, Decoded, Models
from evaluation.scoring import N_BOOTSTRAP, Interval, is_small, normalizer_for, paired_delta_interval, rate, score

logger = logging.getLogger(__name__)
SHOWN_TEXTS = 3  # a target of at most this many utterances gets every hypothesis printed under its table
SHOWN_SECONDS = 60.0  # ... when none is longer than this (a long file's text is in --json)
BASELINE = "fw-greedy"  # what every other approach's WER difference is taken against, when it ran
OVERALL = "all"  # the row of a difference over every utterance


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: np.ndarray = field(repr=False)
    text: str  # the reference
    language: str | None  # the language the utterance is in, when the dataset says (None: unknown)

    @property
    def seconds(self) -> float:
        return self.audio.size / SAMPLE_RATE


@dataclass(frozen=True)
class Target:
    """What one table is about: a dataset selection or a long file."""

    name: str
    utterances: tuple[Utterance, ...]
    note: str = ""  # how it was selected, for the table's title

    @property
    def seconds(self) -> float:
        return sum(u.seconds for u in self.utterances)


@dataclass(frozen=True)
class Cell:
    """Pooled WER of one approach over one language (or all utterances)."""

    errors: int
    words: int
    utterances: int
    right_language: int | None  # decoded in the utterance's language (None: the dataset does not say)

    @property
    def wer(self) -> float:
        return rate(self.errors, self.words)


@dataclass(frozen=True)
class ApproachResult:
    approach: str
    decoded: tuple[Decoded, ...]  # from the first timed run
    runs: tuple[float, ...]  # compute seconds of each timed run
    cpu_runs: tuple[float, ...]  # process CPU seconds of each timed run (all threads)
    identical: bool  # every timed run gave the same text for every utterance
    differing: int  # utterances whose text changed between runs
    overall: Cell
    by_language: dict[str, Cell]
    error: str | None = None

    @property
    def seconds(self) -> float:
        return statistics.median(self.runs) if self.runs else float("nan")

    @property
    def cpu_seconds(self) -> float:
        return statistics.median(self.cpu_runs) if self.cpu_runs else float("nan")


def rtfx(audio_seconds: float, compute_seconds: float) -> float:
    """Audio seconds per compute second (the Open ASR Leaderboard's RTFx)."""
    return audio_seconds / compute_seconds if compute_seconds > 0 else float("inf")


def run_target(target: Target, approaches: Sequence[str], models: Models, repeat: int) -> list[ApproachResult]:
    """Build every approach (model loading untimed), warm each up, then time them round-robin."""
    audios = [u.audio for u in target.utterances]
    built, errors = {}, {}
    for name in approaches:
        try:
            built[name] = APPROACHES[name].build(models)
            built[name](audios[:1])
        except Exception as exc:  # noqa: BLE001 - an approach that cannot run is reported in its row
            errors[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    outputs: dict[str, list[list[Decoded]]] = {n: [] for n in built}
    times: dict[str, list[float]] = {n: [] for n in built}
    cpu: dict[str, list[float]] = {n: [] for n in built}
    for n in range(max(repeat, 1)):
        for name, run in built.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            outputs[name].append(run(audios))
            times[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
            logger.info("%s run %d: %.1f s (CPU %.1f s)", name, n + 1, times[name][-1], cpu[name][-1])
    results = []
    for name in approaches:
        if name in errors:
            empty = Cell(0, 0, 0, None)
            results.append(ApproachResult(name, (), (), (), False, 0, empty, {}, errors[name]))
            continue
        runs = outputs[name]
        differing = sum(len({r[i].text for r in runs}) > 1 for i in range(len(audios)))
        overall, by_language = score_runs(target.utterances, runs[0])
        timed = (tuple(times[name]), tuple(cpu[name]))
        results.append(ApproachResult(name, tuple(runs[0]), *timed, differing == 0, differing, overall, by_language))
    return results


def utterance_rows(utterances: Sequence[Utterance], decoded: Sequence[Decoded]) -> pd.DataFrame:
    """One scored row per utterance (id, language, errors, ref_words, right), each with its language's normalizer.

    The language is the utterance's, else the decoded one, else English. These rows are what both the pooled
    cells and the bootstrap of a difference are computed from, so the two never disagree.
    """
    rows = []
    for utt, out in zip(utterances, decoded, strict=True):
        language = utt.language or out.language or "en"
        s = score(utt.text, out.text, normalizer_for(language))
        right = int(utt.language is not None and out.language == utt.language)
        rows.append({"id": utt.id, "language": language, "errors": s.errors, "ref_words": s.ref_words, "right": right})
    return pd.DataFrame(rows, columns=["id", "language", "errors", "ref_words", "right"])


def score_runs(utterances: Sequence[Utterance], decoded: Sequence[Decoded]) -> tuple[Cell, dict[str, Cell]]:
    """Pooled WER overall and per language (the utterance's, else the decoded one) with that language's normalizer."""
    rows = utterance_rows(utterances, decoded)
    known = any(u.language is not None for u in utterances)

    def cell(part: pd.DataFrame) -> Cell:
        right = int(part["right"].sum()) if known else None
        return Cell(int(part["errors"].sum()), int(part["ref_words"].sum()), len(part), right)

    return cell(rows), {lang: cell(part) for lang, part in sorted(rows.groupby("language"), key=lambda kv: kv[0])}


@dataclass(frozen=True)
class Difference:
    """WER of ``approach`` minus WER of ``baseline`` over the same utterances of one language (or all)."""

    approach: str
    baseline: str
    language: str  # a language, or OVERALL
    utterances: int
    words: int  # reference words of these utterances
    points: float  # the difference in WER points (positive: the approach is worse)
    ci: Interval  # 95% paired bootstrap interval of the difference, in points
    small: bool = False  # too few utterances for the interval to be trusted (evaluation.scoring.is_small)


def paired_differences(
    utterances: Sequence[Utterance],
    results: Sequence[ApproachResult],
    baseline: str = BASELINE,
    *,
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
) -> list[Difference]:
    """Each approach against ``baseline``, overall and per language, with the paired bootstrap interval.

    Paired: every resample draws the same utterances for both approaches (they decoded the same audio), which
    is much tighter than two separate intervals. Seeded, so the same figures give the same interval. Empty when
    the baseline did not run or failed.
    """
    ok = {r.approach: r for r in results if r.error is None}
    if baseline not in ok:
        return []
    base = utterance_rows(utterances, ok[baseline].decoded)
    languages = sorted(base["language"].unique())
    out = []
    for name, result in ok.items():
        if name == baseline:
            continue
        rows = utterance_rows(utterances, result.decoded).assign(language=base["language"])
        for language in [OVERALL, *languages] if len(languages) > 1 else [OVERALL]:
            a = base if language == OVERALL else base[base["language"] == language]
            b = rows if language == OVERALL else rows[rows["language"] == language]
            points = rate(b["errors"].sum(), b["ref_words"].sum()) - rate(a["errors"].sum(), a["ref_words"].sum())
            ci, _ = paired_delta_interval(a, b, keys=("id",), n_boot=n_boot, seed=seed)
            words = int(a["ref_words"].sum())
            small = is_small(a)
            out.append(Difference(name, baseline, language, len(a), words, points * 100, _points(ci), small))
    return out


def unseeded_lines(utterances: Sequence[Utterance], results: Sequence[ApproachResult]) -> list[str]:
    """One line per approach with utterances the library's fallback sampled, unseeded: there its text is one draw,
    and a rerun of the same call can score differently (Russian prompts whose UTF-8 text compresses near 2.4)."""
    lines = []
    for r in results:
        ids = [u.id for u, d in zip(utterances, r.decoded, strict=False) if d.unseeded]
        if r.error is None and ids:
            shown = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
            lines.append(
                f"{r.approach}: {len(ids)} of {len(utterances)} utterance(s) sampled by its fallback, unseeded "
                f"(one draw; a rerun may differ): {shown}"
            )
    return lines


def _points(ci: Interval) -> Interval:
    return Interval(ci.low * 100, ci.high * 100)


def difference_lines(differences: Sequence[Difference]) -> list[str]:
    """The differences as a table: one row per approach and language."""
    if not differences:
        return []
    lines = [
        f"WER difference against {differences[0].baseline} (points; 95% paired bootstrap CI over utterances, "
        f"{N_BOOTSTRAP} resamples, seed 0):",
        "",
        "| approach | language | utterances | words | difference | 95% CI |",
        "|---|---|---|---|---|---|",
    ]
    for d in differences:
        lines.append(
            f"| {d.approach} | {d.language} | {d.utterances} | {d.words} | {d.points:+.1f} "
            f"| {d.ci.low:+.1f} to {d.ci.high:+.1f}{' (small: not to act on)' if d.small else ''} |"
        )
    return lines


def ratios(results: Sequence[ApproachResult], seconds: float) -> list[str]:
    """The comparisons the targets are stated in: WER points and throughput of ours against each library path."""
    ok = {r.approach: r for r in results if r.error is None}
    lines = []
    for ours in ("ours-fw", "ours-tf"):
        if ours not in ok:
            continue
        for theirs in ("fw-greedy", "fw-batched", "ours-fw"):
            if theirs == ours or theirs not in ok:
                continue
            a, b = ok[ours], ok[theirs]
            points = (a.overall.wer - b.overall.wer) * 100
            speed = rtfx(seconds, a.seconds) / rtfx(seconds, b.seconds)
            cpu = b.cpu_seconds / a.cpu_seconds if a.cpu_seconds > 0 else float("inf")
            lines.append(
                f"{ours} vs {theirs}: WER {points:+.2f} points, throughput {speed:.2f}x, per CPU second {cpu:.2f}x"
            )
    return lines


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%" if value == value else "n/a"


def table(
    target: Target, results: Sequence[ApproachResult], models: Models, repeat: int, baseline: str = BASELINE
) -> str:
    """The side-by-side table of one target, per-language rows when it holds several languages, then ratios."""
    title = (
        f"{target.name}{f' ({target.note})' if target.note else ''}: {len(target.utterances)} utterance(s), "
        f"{target.seconds:.1f} s of audio; model {models.model}, {repeat} timed run(s) after a warm-up"
    )
    lines = [
        title,
        "",
        "| approach | WER | right language | rtfx | compute s | CPU s | identical runs |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error:
            lines.append(f"| {APPROACHES[r.approach].label} | failed: {r.error} | | | | | |")
            continue
        right = f"{r.overall.right_language}/{r.overall.utterances}" if r.overall.right_language is not None else "-"
        same = "yes" if r.identical else f"no ({r.differing} differ)"
        lines.append(
            f"| {APPROACHES[r.approach].label} | {_percent(r.overall.wer)} | {right} | {rtfx(target.seconds, r.seconds):.1f} "
            f"| {r.seconds:.2f} | {r.cpu_seconds:.2f} | {same if repeat > 1 else '-'} |"
        )
    languages = sorted({lang for r in results for lang in r.by_language})
    if len(languages) > 1:
        lines += ["", "| approach | " + " | ".join(languages) + " |", "|---|" + "---|" * len(languages)]
        for r in results:
            if r.error:
                continue
            cells = []
            for lang in languages:
                c = r.by_language.get(lang)
                right = f" ({c.right_language}/{c.utterances} right)" if c and c.right_language is not None else ""
                cells.append(f"{_percent(c.wer)}{right}" if c else "-")
            lines.append(f"| {APPROACHES[r.approach].label} | " + " | ".join(cells) + " |")
    lines += ["", *ratios(results, target.seconds)]
    differences = paired_differences(target.utterances, results, baseline)
    if differences:
        lines += ["", *difference_lines(differences)]
    unseeded = unseeded_lines(target.utterances, results)
    if unseeded:
        lines += ["", *unseeded]
    if len(target.utterances) <= SHOWN_TEXTS and all(u.seconds <= SHOWN_SECONDS for u in target.utterances):
        lines += ["", *texts(target, results)]
    return "\n".join(lines)


def texts(target: Target, results: Sequence[ApproachResult]) -> list[str]:
    """Each approach's hypothesis of each utterance, with its WER: for a look at a few hard cases."""
    lines = []
    for i, utt in enumerate(target.utterances):
        lines.append(f"{utt.id} reference: {utt.text}")
        for r in results:
            if not r.error:
                d = r.decoded[i]
                s = score(utt.text, d.text, normalizer_for(utt.language or d.language))
                lines.append(f"  {r.approach} ({_percent(s.wer)}): {d.text}")
    return lines


def report_json(target: Target, results: Sequence[ApproachResult], baseline: str = BASELINE) -> dict:
    def cell(c: Cell) -> dict:
        wer = c.wer if c.wer == c.wer else None
        return {
            "wer": wer,
            "errors": c.errors,
            "words": c.words,
            "utterances": c.utterances,
            "right_language": c.right_language,
        }

    return {
        "target": target.name,
        "note": target.note,
        "utterances": len(target.utterances),
        "audio_seconds": target.seconds,
        "approaches": {
            r.approach: {
                "error": r.error,
                "compute_seconds": r.seconds if r.runs else None,
                "runs": list(r.runs),
                "cpu_seconds": r.cpu_seconds if r.cpu_runs else None,
                "cpu_runs": list(r.cpu_runs),
                "rtfx": rtfx(target.seconds, r.seconds) if r.runs else None,
                "identical": r.identical,
                "differing": r.differing,
                "overall": cell(r.overall),
                "by_language": {k: cell(v) for k, v in r.by_language.items()},
                "texts": {u.id: d.text for u, d in zip(target.utterances, r.decoded, strict=False)},
                "languages": {u.id: d.language for u, d in zip(target.utterances, r.decoded, strict=False)},
                "unseeded": [u.id for u, d in zip(target.utterances, r.decoded, strict=False) if d.unseeded],
            }
            for r in results
        },
        "differences": [
            {
                "approach": d.approach,
                "baseline": d.baseline,
                "language": d.language,
                "utterances": d.utterances,
                "words": d.words,
                "points": d.points if d.points == d.points else None,
                "ci_points": [v if v == v else None for v in (d.ci.low, d.ci.high)],
                "small": d.small,
            }
            for d in paired_differences(target.utterances, results, baseline)
        ],
    }
