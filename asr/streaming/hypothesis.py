"""What the streaming policy exchanges with the model, and the word-level rules it applies to a hypothesis.

``Request`` (a stretch of the buffer to decode) goes out, ``Hypothesis`` (the model's words for it, in absolute
seconds) comes back, ``StepResult`` is what a step committed. ``drop_loops`` cuts Whisper's hallucination loops;
``normalize`` is the form two hypotheses are compared in. Split from :mod:`asr.streaming.policy` so that the
state machine reads on its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from asr.results import Segment, Word

_SAY_SLACK = 0.1  # seconds word times may overlap between two copies of a phrase really said twice
LATE_SECONDS = 0.1  # a flush's word starting this long after the VAD's speech end belongs to the next utterance


@dataclass(frozen=True)
class Request:
    """One stretch of the buffer to decode; the session cuts the audio, the scheduler batches requests."""

    start: float  # absolute seconds: the buffer start
    end: float  # absolute seconds: the newest audio included
    prompt: str  # committed text before ``start``
    flush: bool  # end of an utterance or of the stream: commit everything the model returns
    prefix: str = ""  # committed text inside the window: the transcript is forced to start with it
    due: float = 0.0  # audio time from which the policy wanted this window decoded (its step, an utterance's
    # first window, the pause before a flush): audio received beyond it waited for the worker (asr.streaming.adapt)


@dataclass(frozen=True)
class Hypothesis:
    """What the model heard in a request's window, in absolute seconds."""

    words: tuple[Word, ...]
    segment_ends: tuple[float, ...] = ()  # where the model closed a segment (good places to cut the buffer)

    @classmethod
    def from_segments(cls, segments: Sequence[Segment], offset: float, end: float) -> Hypothesis:
        """From window-relative segments; times are moved by ``offset`` and kept at or before ``end``."""

        def clamp(t: float) -> float:
            return min(max(t + offset, offset), end)

        words = tuple(
            Word(w.word, clamp(w.start), max(clamp(w.end), clamp(w.start)), w.probability)
            for s in segments
            for w in s.words
        )
        return cls(words, tuple(clamp(s.end) for s in segments))


@dataclass(frozen=True)
class StepResult:
    committed: tuple[Word, ...]  # words that became final in this step, in order
    tentative: tuple[Word, ...]  # the newest hypothesis after the committed words (may still change)
    forced: int  # how many of ``committed`` were committed without agreement (age or buffer limit)


def normalize(word: str) -> str:
    """The form two hypotheses are compared in: case and punctuation differ between calls."""
    return re.sub(r"[^\w']+", "", word.lower())


def join_words(words: Sequence[Word]) -> str:
    return "".join(w.word for w in words).strip()


def late_words(words: Sequence[Word], speech_end: float) -> list[Word]:
    """The words of a flush that start :data:`LATE_SECONDS` after the VAD's speech end: the next utterance's soft
    onset that the speech pad let in ("Thank you. Please. Please hold" on the joined real-speech file). The policy
    leaves them to the next window, which hears what follows them."""
    k = next((i for i, w in enumerate(words) if w.start >= speech_end + LATE_SECONDS), len(words))
    return list(words[k:])


def drop_loops(words: Sequence[Word], longest: int = 10) -> Sequence[Word]:
    """Cut a hypothesis where it starts repeating itself (Whisper's hallucination loop), keeping the first pass.

    A phrase of three or more words said twice in a row, or one or two words said three times, is taken for a
    loop: people rarely do that, and committing it would duplicate text. The exception is a phrase said twice
    and then left for other words, each copy taking real time (:func:`_said_twice`).
    """
    keys = [normalize(w.word) for w in words]
    for i in range(len(keys)):
        for n in range(1, min(longest, (len(keys) - i) // 2) + 1):
            if keys[i : i + n] != keys[i + n : i + 2 * n]:
                continue
            if keys[i : i + n] == keys[i + 2 * n : i + 3 * n] or (n >= 3 and not _said_twice(words, keys, i, n)):
                return words[: i + n]
    return words


def _said_twice(words: Sequence[Word], keys: Sequence[str], i: int, n: int) -> bool:
    """A phrase said twice by a person ("... erase your temporary greeting. Your temporary greeting has been
    removed": two prompts of the joined real-speech file), not by Whisper: other words follow the second copy
    (a loop runs on to the end of the window), and the second copy starts after the first and takes at least
    half its time (a re-read prompt is squeezed into the last moment of the window)."""
    after = keys[i + 2 * n : i + 2 * n + 1]
    if not after or after[0] == keys[i]:
        return False
    first, second = words[i : i + n], words[i + n : i + 2 * n]
    took = first[-1].end - first[0].start
    return second[0].start >= first[-1].end - _SAY_SLACK and second[-1].end - second[0].start >= 0.5 * took > 0
