"""Word times from cross-attention: openai/whisper's ``find_alignment`` maths, free of any backend.

The transformers backend scores each window's text in one teacher-forced decoder pass and hands the attention
weights of the alignment heads here: they are normalised over the real audio frames, smoothed with a median
filter, and dynamic time warping finds, for each token, the audio frame at which it starts. (faster-whisper
does the same inside CTranslate2.) Kept apart from the adapter so the maths can be read and tested alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.results import Word

if TYPE_CHECKING:
    import torch

FRAMES_PER_SECOND = 50  # encoder output frames per second of audio (Whisper's 20 ms)
MEDIAN_FILTER = 7  # openai/whisper's smoothing of the alignment heads' attention


def default_heads(decoder_layers: int, decoder_heads: int) -> list[tuple[int, int]]:
    """Without alignment heads in a model's config: every head of the decoder's upper half (CTranslate2's rule)."""
    return [(la, h) for la in range(decoder_layers // 2, decoder_layers) for h in range(decoder_heads)]


def jump_times(attention: torch.Tensor, n_sot: int, samples: int) -> np.ndarray:
    """The time at which DTW enters each token of the scored row.

    ``attention`` is (heads, tokens, 1500) for the row sot.., <|notimestamps|>, text.., <|endoftext|>; the result
    has one time per text token plus one for the end of text.
    """
    import torch

    n_frames = max(samples * FRAMES_PER_SECOND // SAMPLE_RATE, 1)
    weights = attention[..., :n_frames].float()
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-10)  # softmax over the real audio only
    std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
    weights = median_filter((weights - mean) / std.clamp_min(1e-10), MEDIAN_FILTER)
    matrix = weights.mean(0)[n_sot:-1]
    text_idx, time_idx = dtw(-matrix.cpu().numpy())
    jumps = np.pad(np.diff(text_idx), (1, 0), constant_values=1).astype(bool)
    return time_idx[jumps] / FRAMES_PER_SECOND


def words_from_jumps(
    words: list[str], word_tokens: list[list[int]], jumps: np.ndarray, token_probs: np.ndarray
) -> tuple[Word, ...]:
    """Words with times from the token jump times; a word's probability is the mean of its tokens'."""
    bounds = np.pad(np.cumsum([len(t) for t in word_tokens]), (1, 0))
    last = len(jumps) - 1
    result = []
    for word, i, j in zip(words, bounds[:-1], bounds[1:]):
        start, end = float(jumps[min(i, last)]), float(jumps[min(j, last)])
        probability = float(np.clip(np.mean(token_probs[i:j]), 0.0, 1.0)) if j > i else 0.0
        result.append(Word(word, start, max(end, start), probability))
    return tuple(result)


def dtw(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """openai/whisper's dynamic time warping, one anti-diagonal at a time (vectorized; no numba needed)."""
    n, m = cost.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    trace = np.zeros((n + 1, m + 1), np.int8)
    for k in range(2, n + m + 1):
        i = np.arange(max(1, k - m), min(n, k - 1) + 1)
        j = k - i
        candidates = np.stack([acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]])
        choice = np.argmin(candidates, axis=0)
        acc[i, j] = cost[i - 1, j - 1] + candidates[choice, np.arange(i.size)]
        trace[i, j] = choice
    trace[0, :], trace[:, 0] = 2, 1
    i, j, path = n, m, []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        step = trace[i, j]
        i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
    text_idx, time_idx = np.array(path[::-1]).T
    return text_idx, time_idx


def median_filter(x: torch.Tensor, width: int) -> torch.Tensor:
    """Median over the last axis with reflect padding, as openai/whisper smooths attention."""
    import torch

    pad = width // 2
    if x.shape[-1] <= pad:
        return x
    padded = torch.nn.functional.pad(x[None], (pad, pad, 0, 0), mode="reflect")[0]
    return padded.unfold(-1, width, 1).sort()[0][..., pad]
