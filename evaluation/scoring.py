"""The one scoring module: every WER in the project (validation, comparison, benchmarks, tests) comes from here.

It holds, in data-flow order: the normalizer choice, the per-utterance score (jiwer's ``process_words`` on
normalized text, the one WER implementation), pooled WER, the speaker-blocked bootstrap interval, the paired
bootstrap of a difference between two runs, and the small-cell rule. It imports nothing of this project but the
normalizers and the engine's compression ratio (both leaves), so a benchmark, a test or the dashboard can score
without pulling in the runner or the store.

Group WER is pooled (all errors over all reference words), as jiwer does for a list and the Open ASR Leaderboard
per dataset; averaging per-utterance WERs over-weights short utterances. Intervals are percentile bootstraps
over *blocks*: speakers when every row of the set names one and there are at least two (utterances of one
speaker are not independent), otherwise single utterances.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import jiwer
import numpy as np
import pandas as pd

from asr.results import COMPRESSION_RATIO_THRESHOLD, compression_ratio
from evaluation.normalizer import DEFAULT_NORMALIZER, NORMALIZERS, Normalizer, get_normalizer

__all__ = [
    "BY_LANGUAGE",
    "CONFIDENCE",
    "DEFAULT_NORMALIZER",
    "MIN_SPEAKERS",
    "MIN_UTTERANCES",
    "N_BOOTSTRAP",
    "NORMALIZERS",
    "NORMALIZER_SETTINGS",
    "OPS",
    "AlignedSpan",
    "Interval",
    "Normalizer",
    "UtteranceScore",
    "align",
    "block_keys",
    "speaker_count",
    "bootstrap_interval",
    "get_normalizer",
    "is_runaway",
    "is_small",
    "normalizer_for",
    "normalizer_version",
    "paired_delta_interval",
    "pooled_wer",
    "rate",
    "rows_wer",
    "score",
]

OPS = ("equal", "substitute", "delete", "insert")
N_BOOTSTRAP = 1000  # resamples per interval; the CI moves by well under a point between seeds at this size
CONFIDENCE = 0.95
MIN_UTTERANCES = 5  # a cell with fewer utterances is small: its interval cannot be trusted
MIN_SPEAKERS = 2  # a cell whose rows all name speakers, with fewer distinct ones than this, is small
SPEAKER = "speaker"  # the row column naming a speaker (datasets map theirs onto it)
UTTERANCE = "id"  # the row column naming an utterance


# ---- normalizer choice ----------------------------------------------------------------------------------------


BY_LANGUAGE = "by-language"  # a run's default setting: each utterance scored with the normalizer of its language
NORMALIZER_SETTINGS = (BY_LANGUAGE, *NORMALIZERS)


def normalizer_for(language: str | None = None, name: str | None = None) -> Normalizer:
    """The normalizer to score text of ``language`` with: the one named, else (no name, or BY_LANGUAGE) by language.

    Whisper's English normalizer rewrites English only (spellings, numbers, contractions); applied to Spanish or
    Russian it would mangle words, so other languages get Whisper's basic normalizer (case, punctuation,
    diacritic-safe), as openai/whisper's multilingual evaluation does. ``None`` means English, the language of
    every English-only model.
    """
    if name and name != BY_LANGUAGE:
        return get_normalizer(name)
    english = language is None or language.lower().split("-")[0].split("_")[0] == "en"
    return get_normalizer(DEFAULT_NORMALIZER if english else "whisper-basic")


def normalizer_version(setting: str) -> str:
    """The version a run records for its normalizer setting (BY_LANGUAGE: the versions of both it can use)."""
    if setting == BY_LANGUAGE:
        return f"en={get_normalizer(DEFAULT_NORMALIZER).version}; other={get_normalizer('whisper-basic').version}"
    return get_normalizer(setting).version


# ---- one utterance --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlignedSpan:
    """One run of the alignment: words kept, substituted, deleted (reference only) or inserted (hypothesis)."""

    op: str  # one of OPS
    reference: tuple[str, ...]  # reference words of the run (empty for an insertion)
    hypothesis: tuple[str, ...]  # hypothesis words of the run (empty for a deletion)


@dataclass(frozen=True)
class UtteranceScore:
    reference_norm: str  # the reference after normalization (what was scored)
    hypothesis_norm: str
    ref_words: int
    hyp_words: int
    hits: int
    substitutions: int
    deletions: int
    insertions: int
    ref_chars: int
    char_errors: int
    raw_ref_words: int  # words of the raw reference (whitespace split, nothing else)
    raw_errors: int
    alignment: tuple[AlignedSpan, ...]

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    @property
    def wer(self) -> float:
        """Errors / reference words; NaN when the normalized reference has no words (pooling still counts it)."""
        return rate(self.errors, self.ref_words)

    @property
    def cer(self) -> float:
        return rate(self.char_errors, self.ref_chars)

    @property
    def raw_wer(self) -> float:
        return rate(self.raw_errors, self.raw_ref_words)


def _counts(reference: str, hypothesis: str) -> jiwer.WordOutput | None:
    """jiwer's word alignment; None when both sides are empty (jiwer needs at least one word)."""
    if not reference.strip() and not hypothesis.strip():
        return None
    return jiwer.process_words(reference, hypothesis)


def _spans(out: jiwer.WordOutput) -> tuple[AlignedSpan, ...]:
    ref, hyp = out.references[0], out.hypotheses[0]
    return tuple(
        AlignedSpan(
            op=chunk.type,
            reference=tuple(ref[chunk.ref_start_idx : chunk.ref_end_idx]),
            hypothesis=tuple(hyp[chunk.hyp_start_idx : chunk.hyp_end_idx]),
        )
        for chunk in out.alignments[0]
    )


def _char_errors(reference: str, hypothesis: str) -> int:
    if not reference and not hypothesis:
        return 0
    out = jiwer.process_characters(reference, hypothesis)
    return out.substitutions + out.deletions + out.insertions


def score(reference: str, hypothesis: str, normalizer: Normalizer | None = None) -> UtteranceScore:
    """Score one utterance: normalize both sides (Whisper's English normalizer unless given), align, count."""
    normalizer = normalizer or get_normalizer()
    ref_n, hyp_n = normalizer(reference), normalizer(hypothesis)
    out = _counts(ref_n, hyp_n)
    raw = _counts(" ".join(reference.split()), " ".join(hypothesis.split()))
    return UtteranceScore(
        reference_norm=ref_n,
        hypothesis_norm=hyp_n,
        ref_words=len(ref_n.split()),
        hyp_words=len(hyp_n.split()),
        hits=out.hits if out else 0,
        substitutions=out.substitutions if out else 0,
        deletions=out.deletions if out else 0,
        insertions=out.insertions if out else 0,
        ref_chars=len(ref_n),
        char_errors=_char_errors(ref_n, hyp_n),
        raw_ref_words=len(reference.split()),
        raw_errors=(raw.substitutions + raw.deletions + raw.insertions) if raw else 0,
        alignment=_spans(out) if out else (),
    )


def align(reference: str, hypothesis: str, normalizer: Normalizer | None = None) -> tuple[AlignedSpan, ...]:
    """The word alignment of one utterance after normalization (what an alignment view colours)."""
    return score(reference, hypothesis, normalizer).alignment


def is_runaway(hypothesis: str) -> bool:
    """A repetition loop ("the, the, the, ..."): its insertions dominate any group WER it lands in.

    The test is Whisper's own (compression ratio above the threshold the decoder's fallback uses), so a
    hypothesis flagged here is one the decoder should already have retried.
    """
    return compression_ratio(hypothesis) > COMPRESSION_RATIO_THRESHOLD


# ---- pooled WER -----------------------------------------------------------------------------------------------


def rate(errors: float, words: float) -> float:
    """``errors / words`` as a float; NaN when there are no words (a WER of nothing is undefined, not 0)."""
    return float(errors) / float(words) if words else math.nan


def pooled_wer(scores: Iterable[UtteranceScore]) -> float:
    """Corpus WER of scored utterances: all errors over all reference words (never a mean of WERs)."""
    scores = list(scores)
    return rate(sum(s.errors for s in scores), sum(s.ref_words for s in scores))


def rows_wer(rows: pd.DataFrame) -> float:
    """Pooled WER of stored result rows (their ``errors`` and ``ref_words`` columns)."""
    if rows.empty:
        return math.nan
    return rate(rows["errors"].sum(), rows["ref_words"].sum())


# ---- the small-cell rule and the blocks a bootstrap resamples -------------------------------------------------


def block_keys(rows: pd.DataFrame) -> np.ndarray:
    """The bootstrap block of each row: its speaker when *every* row names one and there are at least
    :data:`MIN_SPEAKERS` of them, else its utterance.

    ``all()`` rather than ``any()``: with one unnamed row, resampling by speaker would either drop that row or
    lump every unnamed row into one pseudo-speaker, and the interval would describe neither. A set that does not
    fully name speakers is resampled by utterance id (one utterance under several noise conditions is one block:
    same words, same voice), and the small-cell rule then counts utterances only. The same test decides both,
    for the run summary and for the comparison alike. A cell of one speaker (a one-voice dataset such as the
    real-speech set, or one tester's session) is resampled by utterance too: resampling its single speaker
    always redraws the same rows, a zero-width interval that looks certain and says nothing. By utterance it
    gives the spread over this voice's utterances; the cell stays marked small (:func:`is_small`), since it
    says nothing about other voices.
    """
    if _speaker_blocks(rows):
        return rows[SPEAKER].astype(str).to_numpy()
    if UTTERANCE in rows.columns:
        return rows[UTTERANCE].astype(str).to_numpy()
    return np.arange(len(rows)).astype(str)


def _names_speakers(rows: pd.DataFrame) -> bool:
    return SPEAKER in rows.columns and len(rows) > 0 and bool(rows[SPEAKER].notna().all())


def _speaker_blocks(rows: pd.DataFrame) -> bool:
    """Whether the rows are resampled by speaker: every row names one, and there are enough speakers to draw."""
    return _names_speakers(rows) and int(rows[SPEAKER].nunique()) >= MIN_SPEAKERS


def speaker_count(rows: pd.DataFrame) -> int | None:
    """Distinct speakers of the rows, or None when not every row names one (see :func:`block_keys`)."""
    return int(rows[SPEAKER].nunique()) if _names_speakers(rows) else None


def is_small(rows: pd.DataFrame) -> bool:
    """True for a cell too small to act on: under MIN_UTTERANCES rows, or (speakers known) under MIN_SPEAKERS."""
    speakers = speaker_count(rows)
    return len(rows) < MIN_UTTERANCES or (speakers is not None and speakers < MIN_SPEAKERS)


# ---- intervals ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Interval:
    low: float
    high: float


def _block_sums(rows: pd.DataFrame, blocks: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Errors and reference words summed per block, in the order of ``index`` (0 for a block not in ``rows``)."""
    position = np.searchsorted(index, blocks)
    errors = np.bincount(position, weights=rows["errors"].to_numpy(float), minlength=index.size)
    words = np.bincount(position, weights=rows["ref_words"].to_numpy(float), minlength=index.size)
    return errors, words


def _resampled_wers(errors: np.ndarray, words: np.ndarray, picks: np.ndarray) -> np.ndarray:
    """Pooled WER of each resample (a row of ``picks`` lists block positions); NaN where it has no words."""
    num, den = errors[picks].sum(axis=1), words[picks].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _percentiles(values: np.ndarray, confidence: float) -> Interval:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return Interval(math.nan, math.nan)
    tail = (1 - confidence) / 2 * 100
    return Interval(float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail)))


def bootstrap_interval(
    rows: pd.DataFrame, *, n_boot: int = N_BOOTSTRAP, seed: int = 0, confidence: float = CONFIDENCE
) -> Interval:
    """Percentile bootstrap interval of the rows' pooled WER, resampling whole blocks (:func:`block_keys`)."""
    if rows.empty or rows["ref_words"].sum() == 0:
        return Interval(math.nan, math.nan)
    blocks = block_keys(rows)
    index = np.unique(blocks)
    errors, words = _block_sums(rows, blocks, index)
    picks = np.random.default_rng(seed).integers(0, index.size, size=(n_boot, index.size))
    return _percentiles(_resampled_wers(errors, words, picks), confidence)


def paired_delta_interval(
    a: pd.DataFrame,
    b: pd.DataFrame,
    *,
    keys: tuple[str, ...] = ("id", "noise"),
    n_boot: int = N_BOOTSTRAP,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[Interval, bool]:
    """Interval of WER(b) - WER(a), and whether it was paired.

    When both hold the same utterances (same ``keys``; the usual case: one model change, same dataset and
    noise), each resample draws the same blocks from both runs, which is far tighter than two independent
    intervals. Otherwise each run is resampled on its own.
    """
    rng = np.random.default_rng(seed)
    same = set(zip(*(a[k] for k in keys), strict=True)) == set(zip(*(b[k] for k in keys), strict=True))
    paired = same and len(a) > 0
    if paired:
        shared = _speaker_blocks(a) and _speaker_blocks(b)
        blocks_a = a[SPEAKER].astype(str).to_numpy() if shared else a[UTTERANCE].astype(str).to_numpy()
        blocks_b = b[SPEAKER].astype(str).to_numpy() if shared else b[UTTERANCE].astype(str).to_numpy()
        index = np.unique(np.concatenate([blocks_a, blocks_b]))
        ea, wa = _block_sums(a, blocks_a, index)
        eb, wb = _block_sums(b, blocks_b, index)
        picks = rng.integers(0, index.size, size=(n_boot, index.size))
        deltas = _resampled_wers(eb, wb, picks) - _resampled_wers(ea, wa, picks)
    else:
        deltas = _independent(b, rng, n_boot) - _independent(a, rng, n_boot)
    return _percentiles(deltas, confidence), paired


def _independent(rows: pd.DataFrame, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    if rows.empty:
        return np.full(n_boot, math.nan)
    blocks = block_keys(rows)
    index = np.unique(blocks)
    errors, words = _block_sums(rows, blocks, index)
    return _resampled_wers(errors, words, rng.integers(0, index.size, size=(n_boot, index.size)))
