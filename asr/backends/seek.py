"""Whisper's seek rule inside a batched window: where a timestamp-mode decode stopped, and joining the rest.

Why: in timestamp mode Whisper may end a decode with a complete segment (``...<|t1|><|t2|>`` then end-of-text)
well before the end of its 30 s of audio, or stop inside a segment; openai/whisper's transcribe loop (and
faster-whisper's ``generate_segments``) then *seeks* to the last complete timestamp and decodes from there.
A batched window has no loop, so the rest of its speech was lost (the 8-minute joined real-speech file lost
whole sentences). Here the backend finds that point with :func:`seek_point`, decodes the window's remainder in a
follow-up batch, and :func:`joined` puts the two results together. Pure functions of one window's tokens and
results, so the outcome never depends on batch-mates; :func:`decode_rest` runs the follow-up batch the same way
for both backends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.backends.base import WindowResult
from asr.results import DecodeOptions, Segment, Word

TIME_PRECISION = 0.02  # seconds per Whisper timestamp token
SEEK_MIN_SECONDS = 1.0  # a remainder shorter than this is not decoded again (the window's trailing VAD pad);
# its words, if the decode had any there, are kept as decoded


def seek_point(tokens: Sequence[int], timestamp_begin: int, samples: int) -> tuple[list[int], int | None]:
    """(the tokens to keep, the sample to decode on from) for one timestamp-mode decode of ``samples`` samples.

    Whisper's rule (openai/whisper ``transcribe``, faster-whisper ``_split_segments_by_timestamps``): a decode
    ending in a single timestamp consumed the whole window; one with complete segments (two consecutive
    timestamps) that does not end that way consumed only up to the last complete segment's end timestamp, and the
    text after it is unfinished. ``None``: nothing to decode again (no complete segment, the seek point at 0, or
    less than :data:`SEEK_MIN_SECONDS` of audio after it), and every token is kept.
    """
    tokens = list(tokens)
    stamps = [t >= timestamp_begin for t in tokens]
    single_ending = len(tokens) >= 2 and not stamps[-2] and stamps[-1]
    pairs = [i for i in range(1, len(tokens)) if stamps[i] and stamps[i - 1]]
    if single_ending or not pairs:
        return tokens, None
    last = pairs[-1]
    seek = int(round((tokens[last - 1] - timestamp_begin) * TIME_PRECISION * SAMPLE_RATE))
    if seek <= 0 or samples - seek < SEEK_MIN_SECONDS * SAMPLE_RATE:
        return tokens, None
    return tokens[:last], seek


def applies(options: DecodeOptions, prefix: str | None) -> bool:
    """Whether Whisper's seek rule applies: timestamp mode, and no forced prefix (a streaming window's prefix
    is text already committed; the policy, not the backend, decides what follows it)."""
    return options.timestamp_tokens and not (prefix and prefix.strip())


def decode_rest(
    decode: Callable[..., list[WindowResult]],
    multilingual: bool,
    windows: Sequence[np.ndarray],
    options: DecodeOptions,
    prompts: Sequence[str | None],
    results: list[WindowResult],
    seeks: Sequence[int | None],
) -> list[WindowResult]:
    """``results`` with the rest of every window that has a seek point decoded and joined (see :func:`joined`).

    ``decode`` is the backend's ``transcribe_windows``: the remainders are decoded in one follow-up batch per
    language (which seeks again where needed), each in its window's language (a remainder of a few seconds is no
    better place to detect it) and with its window's own prompt. Conditioning a remainder on the text before
    the seek point, as Whisper's loop does, would give each one a prompt of its own length, which CTranslate2
    cannot batch.
    """
    todo = [i for i, s in enumerate(seeks) if s is not None]
    for language in sorted({results[i].language for i in todo}):
        idx = [i for i in todo if results[i].language == language]
        rest = decode(
            [np.asarray(windows[i])[seeks[i] :] for i in idx],
            options.replace(language=language) if multilingual else options,
            prompts=[prompts[i] for i in idx],
        )
        for i, r in zip(idx, rest):
            results[i] = joined(results[i], r, seeks[i] / SAMPLE_RATE)  # type: ignore[operator]
    return results


def joined(first: WindowResult, rest: WindowResult, offset: float) -> WindowResult:
    """``first`` followed by ``rest``, the decode of the same window from ``offset`` seconds on.

    The mean log probability is the two decodes' mean weighted by their words (the fallback reads it); language,
    no-speech probability and silence are the first decode's, which saw the whole window.
    """
    if rest.silent or not rest.text:
        return first
    shifted = tuple(_shifted(s, offset) for s in rest.segments)
    n_first, n_rest = len(first.text.split()), len(rest.text.split())
    logprob = (first.avg_logprob * n_first + rest.avg_logprob * n_rest) / max(n_first + n_rest, 1)
    return WindowResult(
        segments=first.segments + shifted,
        language=first.language,
        avg_logprob=logprob,
        no_speech_prob=first.no_speech_prob,
        text=f"{first.text} {rest.text}".strip(),
        temperature=max(first.temperature, rest.temperature),
        silent=first.silent,
    )


def _shifted(segment: Segment, offset: float) -> Segment:
    words = tuple(
        Word(w.word, round(w.start + offset, 2), round(w.end + offset, 2), w.probability) for w in segment.words
    )
    return Segment(
        round(segment.start + offset, 2),
        round(segment.end + offset, 2),
        segment.text,
        words,
        segment.avg_logprob,
        segment.no_speech_prob,
    )
