"""Per-utterance scoring with jiwer 4: WER, CER, error counts and the word alignment.

One WER implementation only: jiwer's ``process_words`` on normalized text. Group figures are never means of
per-utterance WERs; they pool the counts kept here (see :mod:`evaluation.tables`). The raw WER (no
normalization, only whitespace splitting) is kept beside the normalized one, so a reader can see how much the
normalizer changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jiwer

from asr.results import compression_ratio
from evaluation.normalizer import Normalizer, get_normalizer

OPS = ("equal", "substitute", "delete", "insert")
RUNAWAY_RATIO = 2.4  # Whisper's own compression-ratio threshold for a repetition loop


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
        return self.errors / self.ref_words if self.ref_words else math.nan

    @property
    def cer(self) -> float:
        return self.char_errors / self.ref_chars if self.ref_chars else math.nan

    @property
    def raw_wer(self) -> float:
        return self.raw_errors / self.raw_ref_words if self.raw_ref_words else math.nan


def _words(text: str) -> list[str]:
    return text.split()


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
    """Score one utterance: normalize both sides, align with jiwer, count."""
    normalizer = normalizer or get_normalizer()
    ref_n, hyp_n = normalizer(reference), normalizer(hypothesis)
    out = _counts(ref_n, hyp_n)
    raw = _counts(" ".join(_words(reference)), " ".join(_words(hypothesis)))
    return UtteranceScore(
        reference_norm=ref_n,
        hypothesis_norm=hyp_n,
        ref_words=len(_words(ref_n)),
        hyp_words=len(_words(hyp_n)),
        hits=out.hits if out else 0,
        substitutions=out.substitutions if out else 0,
        deletions=out.deletions if out else 0,
        insertions=out.insertions if out else 0,
        ref_chars=len(ref_n),
        char_errors=_char_errors(ref_n, hyp_n),
        raw_ref_words=len(_words(reference)),
        raw_errors=(raw.substitutions + raw.deletions + raw.insertions) if raw else 0,
        alignment=_spans(out) if out else (),
    )


def align(reference: str, hypothesis: str, normalizer: Normalizer | None = None) -> tuple[AlignedSpan, ...]:
    """The word alignment of one utterance after normalization (what an alignment view colours)."""
    return score(reference, hypothesis, normalizer).alignment


def is_runaway(hypothesis: str) -> bool:
    """A repetition loop ("the, the, the, ..."): its insertions dominate any group WER it lands in."""
    return compression_ratio(hypothesis) > RUNAWAY_RATIO


def pooled_wer(scores: list[UtteranceScore]) -> float:
    """Corpus WER: all errors over all reference words (never the mean of per-utterance WERs)."""
    words = sum(s.ref_words for s in scores)
    return sum(s.errors for s in scores) / words if words else math.nan
