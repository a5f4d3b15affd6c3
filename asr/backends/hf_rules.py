"""Whisper's decoding rules as transformers logits processors, for the transformers backend's batched ``generate``.

Why here and not transformers' own: its ``SuppressTokens*`` and ``WhisperTimeStampLogitsProcessor`` rebuild masks
over the whole vocabulary and loop over the batch in Python at every decoding step, which on a busy CPU costs
more than the tiny model's decoder step. These do the same with precomputed masks and tensor operations, and
each row is processed from its own tokens only, so a window's decode never depends on its batch-mates.

:class:`TimestampRules` is openai/whisper's ``ApplyTimestampRules`` (which CTranslate2 applies too when the prompt
has no ``<|notimestamps|>``), so that both backends decode a window in Whisper's timestamp mode the same way.
:func:`token_scores` reads what Whisper's fallback and no-speech rules need from a teacher-forced pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import LogitsProcessor

MAX_INITIAL_TIMESTAMP_INDEX = 50  # the first timestamp is at most 1.0 s (openai/whisper and CTranslate2's default)


class Suppress(LogitsProcessor):
    """Whisper's suppressed tokens (always, and blank/end-of-text as the first token), as precomputed masks."""

    def __init__(self, always: torch.Tensor, at_begin: torch.Tensor, begin_index: int) -> None:
        self.always, self.at_begin, self.begin_index = always, at_begin, begin_index

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = scores.masked_fill(self.always[: scores.shape[-1]], -float("inf"))
        if input_ids.shape[-1] == self.begin_index:
            scores = scores.masked_fill(self.at_begin[: scores.shape[-1]], -float("inf"))
        return scores


class TimestampRules(LogitsProcessor):
    """openai/whisper's timestamp rules, for rows whose timestamp-mode text starts at ``begin_index``.

    ``<|notimestamps|>`` is never generated; the first token is a timestamp of at most
    :data:`MAX_INITIAL_TIMESTAMP_INDEX`; timestamps come in pairs (a segment's end and the next one's start),
    except the single one before end-of-text; they never decrease, and a segment is never empty; and where the
    timestamps together are likelier than any text token, a timestamp is chosen. ``begin_index`` is the first
    position after the start tokens: a forced transcript start there begins with ``<|0.00|>``, as in
    faster-whisper's prompt, so its text counts as an open segment.
    """

    def __init__(self, eot: int, no_timestamps: int, begin_index: int) -> None:
        self.eot, self.no_timestamps, self.begin = eot, no_timestamps, begin_index
        self.timestamp_begin = no_timestamps + 1

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        tb, neg = self.timestamp_begin, -float("inf")
        scores = scores.clone()
        scores[:, self.no_timestamps] = neg
        sampled = input_ids[:, self.begin :]
        vocab = torch.arange(scores.shape[-1], device=scores.device)
        if sampled.shape[1] == 0:  # the first token: a timestamp, at most MAX_INITIAL_TIMESTAMP_INDEX
            scores[:, :tb] = neg
            scores[:, tb + MAX_INITIAL_TIMESTAMP_INDEX + 1 :] = neg
        else:
            stamps = sampled >= tb
            last = stamps[:, -1]
            penultimate = stamps[:, -2] if sampled.shape[1] >= 2 else torch.ones_like(last)
            is_stamp, is_text = vocab >= tb, vocab < self.eot
            # in pairs: after two timestamps comes text; after text and one timestamp, a timestamp or the end
            scores = scores.masked_fill((last & penultimate)[:, None] & is_stamp, neg)
            scores = scores.masked_fill((last & ~penultimate)[:, None] & is_text, neg)
            # never decreasing, and no empty segment: below the last timestamp (+1 unless closing a segment)
            latest = torch.where(stamps, sampled, torch.full_like(sampled, -1)).max(dim=1).values
            floor = torch.where(last & ~penultimate, latest, latest + 1)
            below = is_stamp & (vocab[None, :] < floor[:, None]) & (latest >= tb)[:, None]
            scores = scores.masked_fill(below, neg)
        logprobs = torch.log_softmax(scores.float(), dim=-1)
        stamp_mass = torch.logsumexp(logprobs[:, tb:], dim=-1)
        best_text = logprobs[:, :tb].max(dim=-1).values
        return scores.masked_fill((stamp_mass > best_text)[:, None] & (vocab < tb), neg)


def token_mask(token_ids, vocab_size: int, device: str) -> torch.Tensor:
    """A boolean vocabulary mask of ``token_ids`` (ids outside the vocabulary ignored)."""
    mask = torch.zeros(vocab_size, dtype=torch.bool)
    ids = [int(t) for t in token_ids or () if 0 <= int(t) < vocab_size]
    mask[ids] = True
    return mask.to(device)


@dataclass(frozen=True)
class Scores:
    token_probs: np.ndarray  # probability of each text token (over ordinary tokens), in order
    avg_logprob: float  # mean log probability of the text tokens and end-of-text
    no_speech_prob: float  # probability of the no-speech token right after start-of-transcript


def token_scores(logits: torch.Tensor, n_prefix: int, targets: list[int], eot: int, no_speech: int | None) -> Scores:
    """Per-token model probabilities from the teacher-forced logits (row i predicts token i + 1)."""
    predicted = logits[n_prefix - 1 : n_prefix - 1 + len(targets)]
    target = torch.tensor(targets, device=logits.device)
    logprobs = torch.log_softmax(predicted, -1).gather(1, target[:, None])[:, 0]
    text = torch.softmax(predicted[:-1, :eot], -1).gather(1, target[:-1, None])[:, 0]
    no_speech_prob = float(torch.softmax(logits[0], -1)[no_speech]) if no_speech is not None else 0.0
    return Scores(
        token_probs=text.cpu().numpy(),
        avg_logprob=float(logprobs.sum()) / len(targets),  # openai: sum / (text tokens + 1)
        no_speech_prob=no_speech_prob,
    )
