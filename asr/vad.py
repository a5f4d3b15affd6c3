"""Voice activity detection: the Silero VAD v6 model that faster-whisper ships, run through onnxruntime.

Why: Whisper invents sentences for silence and faint noise. Only audio the VAD calls speech is decoded, so
silence gives an empty transcript rather than a hallucination, and long files are packed into <= 30 s windows
of speech, which is how both backends get past Whisper's 30-second context.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from asr import compat
from asr.audio import SAMPLE_RATE
from asr.backends.base import cpu_cores

FRAME = 512  # Silero's window at 16 kHz (32 ms)
CONTEXT = 64  # samples of the previous window Silero v6 expects in front of each window
MAX_WINDOW_SECONDS = 30.0  # Whisper's context
BLOCK_SAMPLES = 600 * SAMPLE_RATE  # VAD runs over ten minutes at a time


@dataclass(frozen=True)
class VadOptions:
    """How speech is found. The defaults were chosen on real speech (the real-speech dev set, tiny.en): with
    0.2 s of padding and 0.16 s pauses ending a span, utterance starts were cut ("Please enter" came out as
    "He sent to") and a 25 s prompt of many short spans decoded as its first sentence only; faster-whisper's
    own sequential defaults (0.4 s pad, 2 s pauses) keep onsets and natural pauses (dev WER 6.3% -> 5.1%)."""

    threshold: float = 0.5  # speech probability above which a frame is speech
    min_speech_seconds: float = 0.25  # shorter bursts are dropped (clicks, breaths)
    min_silence_seconds: float = 2.0  # a pause at least this long ends a span; shorter pauses stay in the window
    speech_pad_seconds: float = 0.4  # kept on each side of a span so word onsets and ends are not clipped
    max_speech_seconds: float = MAX_WINDOW_SECONDS  # longer spans are split at their quietest point
    # A long recording decoded without timestamp tokens (asr.transcribe._recording_vad) is searched with the batched
    # pipeline's rule instead: every pause this long ends a span and no burst is too short, so windows pack full
    # from sentences (the 13-minute dev file: 27 windows, not 29 of spans cut near 30 s); see for_long_form
    long_form_min_silence_seconds: float = 0.16
    long_form_min_speech_seconds: float = 0.0
    # A recording's first span starts at its first sample when less than a span-ending pause precedes it (see
    # with_lead_in): whisper-base, 49 of the 672 es/fr/it/ru prompts of 6+ words, 5 errors fewer, Russian's 15
    # dev prompts +2.7 -> +1.3 points over the library; English dev text unchanged (docs/performance-log.md)
    keep_lead_in: bool = True

    def for_long_form(self) -> VadOptions:
        """The options a long recording decoded without timestamp tokens is searched with (recorded with it)."""
        return dataclasses.replace(
            self,
            min_silence_seconds=self.long_form_min_silence_seconds,
            min_speech_seconds=self.long_form_min_speech_seconds,
        )


@dataclass(frozen=True)
class SpeechSpan:
    start: int  # first sample of speech
    end: int  # one past the last sample

    @property
    def seconds(self) -> float:
        return (self.end - self.start) / SAMPLE_RATE


def speech_probabilities(audio: np.ndarray) -> np.ndarray:
    """One speech probability per 512-sample frame of ``audio`` (the last frame zero-padded)."""
    if audio.size == 0:
        return np.zeros(0, np.float32)
    padded = np.pad(audio, (0, (-audio.size) % FRAME))
    return np.asarray(compat.silero_model()(padded), dtype=np.float32).reshape(-1)


def _ms(seconds: float) -> int:
    """Silero's options are whole milliseconds; the project's settings are seconds (as the streaming ones)."""
    return int(round(seconds * 1000))


def speech_spans(audio: np.ndarray, options: VadOptions | None = None) -> list[SpeechSpan]:
    """Spans of speech in mono 16 kHz audio, in order, never overlapping."""
    return speech_spans_many([audio], options)[0]


def speech_spans_many(
    audios: list[np.ndarray], options: VadOptions | Sequence[VadOptions] | None = None
) -> list[list[SpeechSpan]]:
    """:func:`speech_spans` of each recording (with its own options, given a list), its blocks and the
    recordings run side by side on threads.

    Why: Silero runs one thread per call (faster-whisper's session), 1.5 s of one core on a 13-minute file while
    the other core idles. Blocks bound the VAD's working copies (an hour at once would hold three copies of the
    audio) and each block starts Silero afresh, so a block's spans are the same whichever thread finds them, and
    the result is the one of the blocks run one after another; a span cut at a block edge becomes two adjacent
    spans, which pack_windows joins again.
    """
    get_speech_timestamps, FwVadOptions = compat.silero_speech_timestamps()
    each = list(options) if isinstance(options, Sequence) else [options or VadOptions()] * len(audios)
    fw_options = [
        FwVadOptions(
            threshold=o.threshold,
            min_speech_duration_ms=_ms(o.min_speech_seconds),
            min_silence_duration_ms=_ms(o.min_silence_seconds),
            speech_pad_ms=_ms(o.speech_pad_seconds),
            max_speech_duration_s=o.max_speech_seconds,
        )
        for o in each
    ]

    def block_spans(unit: tuple[int, int]) -> list[SpeechSpan]:
        index, offset = unit
        block = audios[index][offset : offset + BLOCK_SAMPLES]
        found = get_speech_timestamps(block, fw_options[index], sampling_rate=SAMPLE_RATE)
        ends = ((offset + int(s["start"]), offset + min(int(s["end"]), block.size)) for s in found)
        return [SpeechSpan(start, end) for start, end in ends if end > start]

    units = [(i, offset) for i, audio in enumerate(audios) for offset in range(0, audio.size, BLOCK_SAMPLES)]
    threads = min(len(units), cpu_cores())
    if threads > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="vad") as pool:
            found = list(pool.map(block_spans, units))
    else:
        found = [block_spans(u) for u in units]
    spans: list[list[SpeechSpan]] = [[] for _ in audios]
    for (index, _), block in zip(units, found):
        spans[index] += block
    return spans


@dataclass(frozen=True)
class Window:
    """Speech spans packed end to end into at most 30 s of audio, with the map back to file time."""

    audio: np.ndarray = field(repr=False)
    spans: tuple[SpeechSpan, ...]  # the spans it holds, in file samples
    _starts: tuple[int, ...] = field(repr=False, default=())  # where each span begins inside the window

    @property
    def offset(self) -> float:
        return self.spans[0].start / SAMPLE_RATE if self.spans else 0.0

    @property
    def seconds(self) -> float:
        return self.audio.size / SAMPLE_RATE

    def to_file_time(self, t: float, *, is_end: bool = False) -> float:
        """Map a time inside the window to the file: each packed span keeps its own offset."""
        if not self.spans:
            return t
        sample = int(round(t * SAMPLE_RATE))
        i = bisect.bisect_left(self._starts, sample) if is_end else bisect.bisect_right(self._starts, sample)
        i = min(max(i - 1, 0), len(self.spans) - 1)
        span = self.spans[i]
        return min(span.start + sample - self._starts[i], span.end) / SAMPLE_RATE


def with_lead_in(spans: list[SpeechSpan], options: VadOptions) -> list[SpeechSpan]:
    """The spans, the first one started at the recording's first sample when less than a span-ending pause
    (``min_silence_seconds``) precedes it and the span still fits one window.

    Why: the VAD's start (its pad included) can clip the first word's onset, and whisper-base detects a short
    prompt's language, and reads its first words, from that onset: faster-whisper's ``transcribe`` reads a
    recording from its first sample, and so do we where nothing but a short lead-in comes before the speech (on
    session 10's machine es/vm-whichbox was Portuguese from 0.2 s in, Spanish from its first sample). A longer
    lead-in is a pause: it stays out, as silence there is what makes Whisper invent words.
    """
    if not options.keep_lead_in or not spans:
        return spans
    first = spans[0]
    if (
        0 < first.start < int(options.min_silence_seconds * SAMPLE_RATE)
        and first.end <= MAX_WINDOW_SECONDS * SAMPLE_RATE
    ):
        return [SpeechSpan(0, first.end), *spans[1:]]
    return spans


def group_spans(spans: list[SpeechSpan], max_seconds: float = MAX_WINDOW_SECONDS) -> list[tuple[SpeechSpan, ...]]:
    """Group consecutive spans into windows no longer than ``max_seconds`` (as faster-whisper batches).

    Pure: no audio is copied, so a caller can plan an hour of windows and cut each only when it is decoded.
    """
    limit = int(max_seconds * SAMPLE_RATE)
    groups: list[tuple[SpeechSpan, ...]] = []
    current: list[SpeechSpan] = []
    length = 0
    for span in spans:
        span = SpeechSpan(span.start, min(span.end, span.start + limit))
        if current and length + (span.end - span.start) > limit:
            groups.append(tuple(current))
            current, length = [], 0
        current.append(span)
        length += span.end - span.start
    if current:
        groups.append(tuple(current))
    return groups


def pack_windows(audio: np.ndarray, spans: list[SpeechSpan], max_seconds: float = MAX_WINDOW_SECONDS) -> list[Window]:
    """Concatenate consecutive spans into windows no longer than ``max_seconds``."""
    return [make_window(audio, group) for group in group_spans(spans, max_seconds)]


def split_group(audio: np.ndarray, spans: tuple[SpeechSpan, ...]) -> list[tuple[SpeechSpan, ...]]:
    """A window's speech in two halves of about equal length: between spans where it holds several, else at
    the quietest 32 ms of the span's middle third (a pause between words, rarely inside one)."""
    lengths = np.cumsum([s.end - s.start for s in spans])
    if len(spans) >= 2:
        k = int(np.argmin(np.abs(lengths[:-1] - lengths[-1] / 2))) + 1
        return [spans[:k], spans[k:]]
    span = spans[0]
    third = (span.end - span.start) // 3
    middle = audio[span.start + third : span.end - third]
    n = middle.size // FRAME
    if n < 1:
        return []
    energy = (middle[: n * FRAME].reshape(n, FRAME).astype(np.float64) ** 2).mean(axis=1)
    cut = span.start + third + int(np.argmin(energy)) * FRAME + FRAME // 2
    return [(SpeechSpan(span.start, cut),), (SpeechSpan(cut, span.end),)]


def make_window(audio: np.ndarray, spans: tuple[SpeechSpan, ...]) -> Window:
    """Cut and join the spans' audio, keeping where each span began in the file."""
    starts, pos = [], 0
    for s in spans:
        starts.append(pos)
        pos += s.end - s.start
    data = np.concatenate([audio[s.start : s.end] for s in spans]).astype(np.float32, copy=False)
    return Window(audio=data, spans=tuple(spans), _starts=tuple(starts))


class StreamingVad:
    """Speech probabilities for audio that arrives in pieces, carrying Silero's context between calls.

    Feed any number of samples; each complete 512-sample frame gets one probability. Used by the streaming
    session to skip silence and to detect the pause that ends an utterance.
    """

    def __init__(self) -> None:
        self._pending = np.zeros(0, np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self.frames_done = 0

    def accept(self, audio: np.ndarray) -> np.ndarray:
        data = np.concatenate([self._pending, audio.astype(np.float32, copy=False)])
        n = data.size // FRAME
        self._pending = data[n * FRAME :]
        if n == 0:
            return np.zeros(0, np.float32)
        frames = data[: n * FRAME].reshape(n, FRAME)
        contexts = np.vstack([self._context[None, :], frames[:-1, -CONTEXT:]])
        self._context = frames[-1, -CONTEXT:].copy()
        batch = np.concatenate([contexts, frames], axis=1)
        h = np.zeros((1, 1, 128), dtype=np.float32)
        c = np.zeros((1, 1, 128), dtype=np.float32)
        out = compat.silero_run(batch, h, c)
        self.frames_done += n
        return np.asarray(out, dtype=np.float32).reshape(-1)
