"""Streaming mode of a validation run: rows through the live engine on a simulated clock, scored like any row.

Each row's (noisy, channel-coded) audio, or several rows joined into one long stream with pauses between them
(``stream_seconds``), is fed in browser-sized chunks to a :class:`asr.streaming.StreamingSession` on an
unthreaded scheduler. As in ``benchmarks stream``, the worker's rounds run for real and the simulated clock
jumps ahead to the next chunk's arrival when the worker is idle, so an hour of streams takes minutes. By default
the clock advances by the *modelled* cost of each round (:mod:`asr.streaming.clock`, calibrated on this machine
for the model), so a row's committed text, latencies and flips are the same on every run, under any load and
whatever other rows streamed beside it; ``clock="measured"`` advances it by the measured compute instead (what a
user on this machine, loaded as it is now, would see; it changes from run to run).

What is measured per row (the committed words are assigned to rows by their times in the stream):
- ``first_commit_s``: from the start of the row's first committed word in the audio to its commit;
- commit latency of every committed word (clock at commit minus the word's end, as ``benchmarks stream``);
- ``flips``: words shown that a later update changed or took back (the words of the previous display that the
  word alignment to the next display does not keep);
- ``duplicate_words``: committed words whose audio an already committed word with the same text covers, and
  commits that start by repeating, word for word, the three or more words committed just before them (Whisper
  re-reading its prompt over a short final window).

``sessions`` streams run at once on one worker, as that many testers sharing it (their windows are batched and
share one clock). The measured compute of each row is reported beside (``compute_seconds``), never on the clock.
"""

from __future__ import annotations

import difflib
import math
import queue
import re
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.backends import Backend, get_copies
from asr.backends.base import cpu_cores
from asr.results import Word
from asr.streaming.clock import CLOCKS, CostModel, cost_model_for
from asr.streaming.policy import StreamOptions
from asr.streaming.scheduler import Scheduler
from asr.streaming.simulate import simulate

MODES = ("offline", "streaming", "both")
MAX_SESSIONS = 64  # the most streams one worker runs at once (StreamModeOptions and --stream-sessions check it)
T = TypeVar("T")
DUPLICATE_LOOKBACK = 8  # committed words checked for a duplicate of a new one
MIN_REPEAT = 3  # a new commit starting with this many words just committed repeats them


class StreamModeError(ValueError):
    """Bad streaming-mode options, in one line."""


@dataclass(frozen=True)
class StreamModeOptions:
    """How rows are streamed. Frozen; change with :func:`dataclasses.replace`."""

    stream_seconds: float | None = None  # join consecutive rows into streams at least this long; None: one each
    pause_seconds: float = 0.7  # silence between joined rows (a pause between two sentences)
    sessions: int = 1  # streams at once on one worker (testers sharing it; their windows share one clock)
    chunk_seconds: float = 0.5  # what the browser sends at a time
    clock: str = "modelled"  # what the simulated clock advances by: the cost model (reproducible) or "measured"

    def validate(self) -> StreamModeOptions:
        if self.stream_seconds is not None and not (math.isfinite(self.stream_seconds) and self.stream_seconds > 0):
            raise StreamModeError(f"stream seconds must be a positive number, not {self.stream_seconds!r}")
        if not (0 <= self.pause_seconds <= 10):
            raise StreamModeError(f"pause seconds must be between 0 and 10, not {self.pause_seconds!r}")
        if not isinstance(self.sessions, int) or not 1 <= self.sessions <= MAX_SESSIONS:
            raise StreamModeError(f"stream sessions must be an integer from 1 to {MAX_SESSIONS}, not {self.sessions!r}")
        if not 0.02 <= self.chunk_seconds <= 5:
            raise StreamModeError(f"chunk seconds must be between 0.02 and 5, not {self.chunk_seconds!r}")
        if self.clock not in CLOCKS:
            raise StreamModeError(f"stream clock must be one of {', '.join(CLOCKS)}, not {self.clock!r}")
        return self


@dataclass(frozen=True)
class StreamOutcome:
    """What streaming made of one row."""

    text: str  # the committed words of the row
    first_commit_s: float | None  # None when nothing was committed
    latencies: tuple[float, ...]  # per committed word
    flips: int
    duplicate_words: int
    compute_seconds: float  # the row's share of its stream's rounds


def plan_streams(seconds: Sequence[float], keys: Sequence[str], stream_seconds: float | None) -> list[list[int]]:
    """Row indices grouped into streams: consecutive rows with the same key (condition) until ``stream_seconds``."""
    streams: list[list[int]] = []
    total = 0.0
    for i, (length, key) in enumerate(zip(seconds, keys, strict=True)):
        if not streams or stream_seconds is None or total >= stream_seconds or keys[streams[-1][0]] != key:
            streams.append([])
            total = 0.0
        streams[-1].append(i)
        total += length
    return streams


def join(audios: Sequence[np.ndarray], pause: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """One stream of the rows with ``pause`` seconds of silence between them, and each row's (start, end) in it."""
    gap = np.zeros(int(round(pause * SAMPLE_RATE)), np.float32)
    parts, spans, at = [], [], 0
    for i, audio in enumerate(audios):
        if i:
            parts.append(gap)
            at += gap.size
        parts.append(np.asarray(audio, np.float32))
        spans.append((at / SAMPLE_RATE, (at + audio.size) / SAMPLE_RATE))
        at += audio.size
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), spans


def _norm(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


class _Trace:
    """One stream's committed words with their commit clock, and the shown words later changed."""

    def __init__(self) -> None:
        self.committed: list[tuple[Word, float]] = []
        self.flipped: list[Word] = []
        self.duplicates: list[Word] = []
        self.shown: list[Word] = []
        self.compute = 0.0

    def observe(self, committed: Sequence[Word], tentative: Sequence[Word], clock: float) -> None:
        batch = list(committed[len(self.committed) :])
        repeated = self._repeat(batch)
        for i, word in enumerate(batch):
            if i < repeated or self._duplicate(word):
                self.duplicates.append(word)
            self.committed.append((word, clock))
        shown = [*committed, *tentative]
        old, new = [_norm(w.word) for w in self.shown], [_norm(w.word) for w in shown]
        kept: set[int] = set()
        for block in difflib.SequenceMatcher(None, old, new, autojunk=False).get_matching_blocks():
            kept.update(range(block.a, block.a + block.size))
        self.flipped.extend(w for i, w in enumerate(self.shown) if i not in kept)
        self.shown = shown

    def _repeat(self, batch: Sequence[Word]) -> int:
        """Words at the start of a new commit that repeat, word for word, the ones committed just before it (3 or
        more: a re-decoded prompt; people rarely say three words twice in a row)."""
        before = [_norm(w.word) for w, _ in self.committed]
        new = [_norm(w.word) for w in batch]
        for k in range(min(len(new), len(before)), MIN_REPEAT - 1, -1):
            if new[:k] == before[-k:]:
                return k
        return 0

    def _duplicate(self, word: Word) -> bool:
        for old, _ in self.committed[-DUPLICATE_LOOKBACK:]:
            overlap = min(old.end, word.end) - max(old.start, word.start)
            shorter = max(min(old.end - old.start, word.end - word.start), 1e-3)
            if _norm(old.word) == _norm(word.word) and overlap >= 0.5 * shorter:
                return True
        return False


def _simulate(
    streams: Sequence[np.ndarray], scheduler: Scheduler, options: StreamOptions, chunk: float, cost: CostModel | None
) -> list:
    """All streams at once on the scheduler against one simulated clock (:func:`asr.streaming.simulate.simulate`,
    each stream stopped with its last chunk; modelled with ``cost``, measured when None); their traces, in
    order, each round's measured compute shared by the streams still running."""
    traces = [_Trace() for _ in streams]

    def observe(session: int, update, clock: float) -> None:
        traces[session].observe(update.committed_words, update.tentative_words, clock)

    run = simulate(
        list(streams), scheduler, options, chunk_seconds=chunk, stop_with_last_chunk=True, on_update=observe,
        clock="measured" if cost is None else "modelled", cost_model=cost,
    )  # fmt: skip
    for r in run.rounds:
        active = r.active or tuple(range(len(traces)))
        for i in active:
            traces[i].compute += r.compute_seconds / len(active)
    return traces


def _split(trace: _Trace, spans: Sequence[tuple[float, float]]) -> list[StreamOutcome]:
    """Each row's share of a stream: words by their midpoint, cut halfway through each pause."""
    cuts = [(a[1] + b[0]) / 2 for a, b in zip(spans, spans[1:])]

    def row_of(word: Word) -> int:
        return int(np.searchsorted(cuts, (word.start + word.end) / 2))

    total = sum(e - s for s, e in spans) or 1.0
    out = []
    for k, (start, end) in enumerate(spans):
        words = [(w, c) for w, c in trace.committed if row_of(w) == k]
        first = words[0] if words else None
        out.append(
            StreamOutcome(
                text="".join(w.word for w, _ in words).strip(),
                first_commit_s=round(first[1] - first[0].start, 4) if first else None,
                latencies=tuple(round(c - w.end, 4) for w, c in words),
                flips=sum(1 for w in trace.flipped if row_of(w) == k),
                duplicate_words=sum(1 for w in trace.duplicates if row_of(w) == k),
                compute_seconds=trace.compute * (end - start) / total,
            )
        )
    return out


class StreamRunner:
    """Streams batches of row audio through one backend, ``sessions`` streams at a time.

    On the modelled clock a stream's result depends only on its own audio (each group of streams has its own
    clock, and a window decodes to the same words on any thread count: see ``tests/test_eval_streaming_clock.py``),
    so groups run in parallel on ``lanes`` one-thread copies of the model, one group per lane at a time: on two
    cores that is faster than one model on two threads, and no row changes. The measured clock keeps one lane
    (parallel groups would slow each other's measured rounds). The model is warmed on the largest window first
    (as ``benchmarks stream`` does), so the first round's allocation does not land on the first rows' latencies.
    """

    def __init__(
        self, backend: Backend, options: StreamModeOptions, stream: StreamOptions | None = None, *, lanes: int = 0
    ) -> None:
        self.options = options.validate()
        self.stream = stream or StreamOptions(keep_recording=False)
        modelled = self.options.clock == "modelled"
        self.cost = cost_model_for(backend.model, backend.name) if modelled else None  # recorded with the run
        count = (lanes or _default_lanes(backend)) if modelled else 1
        # one model per lane (a lane decodes one group at a time), loaded once per process
        backends = [backend] if count == 1 else get_copies(backend.model, backend.device, count)
        self._lanes: queue.SimpleQueue[Scheduler] = queue.SimpleQueue()
        for b in backends:
            self._lanes.put(Scheduler(b, threaded=False, name="asr-eval-stream"))
        self.lanes = count

    def _warm_up(self) -> None:
        """Each lane's model decodes the largest window once, the first time a run needs it at this size."""
        samples = int(self.stream.max_buffer_seconds * SAMPLE_RATE)
        key = (samples, self.options.sessions, self.stream.decode)
        for _ in range(self.lanes):
            scheduler = self._lanes.get()
            try:
                done = _warmed.setdefault(scheduler.backend, set())
                if key not in done:
                    window = np.zeros(samples, np.float32)
                    scheduler.backend.transcribe_windows([window] * self.options.sessions, self.stream.decode)
                    done.add(key)
            finally:
                self._lanes.put(scheduler)

    def run(
        self, audios: Sequence[np.ndarray], keys: Sequence[str], check: Callable[[], None] | None = None
    ) -> list[StreamOutcome]:
        """One outcome per row, in order; rows with the same key next to each other may share a stream.

        ``check`` is called before each group of streams (it raises to cancel the run)."""
        return self.run_beside(audios, keys, check)[0]

    def run_beside(
        self,
        audios: Sequence[np.ndarray],
        keys: Sequence[str],
        check: Callable[[], None] | None = None,
        beside: Callable[[Backend], T] | None = None,
    ) -> tuple[list[StreamOutcome], T | None]:
        """:meth:`run`, and ``beside(backend)`` run on one lane while the other lanes stream (its result second).

        Streaming mode needs each row's offline transcript too (the paired difference). Decoded first on the
        two-thread model, it used the cores about 1.3 times over, and the streams after it the same: run beside
        the streams, on a one-thread copy, it fills the cores. It decodes to the same words there (a window decodes
        alike on any thread count). The longest groups go first, so no lane is left with a long one at the end.
        """
        self._warm_up()
        seconds = [a.size / SAMPLE_RATE for a in audios]
        plan = plan_streams(seconds, keys, self.options.stream_seconds)
        groups = [plan[i : i + self.options.sessions] for i in range(0, len(plan), self.options.sessions)]
        groups.sort(key=lambda g: -max(sum(seconds[i] for i in rows) for rows in g))  # stable: ties keep order
        outcomes: list[StreamOutcome | None] = [None] * len(audios)

        def one(group: list[list[int]]) -> None:
            if check is not None:
                check()
            joined = [join([audios[i] for i in rows], self.options.pause_seconds) for rows in group]
            longest = max(a.size for a, _ in joined) / SAMPLE_RATE
            options = self.stream.replace(max_session_seconds=longest + 60.0)
            scheduler = self._lanes.get()
            try:
                traces = _simulate([a for a, _ in joined], scheduler, options, self.options.chunk_seconds, self.cost)
            finally:
                self._lanes.put(scheduler)
            for rows, (_, spans), trace in zip(group, joined, traces, strict=True):
                for i, outcome in zip(rows, _split(trace, spans), strict=True):
                    outcomes[i] = outcome

        def aside() -> T | None:
            if beside is None:
                return None
            scheduler = self._lanes.get()
            try:
                return beside(scheduler.backend)
            finally:
                self._lanes.put(scheduler)

        if self.lanes == 1:
            extra = aside()
            for group in groups:
                one(group)
        else:
            with ThreadPoolExecutor(self.lanes, thread_name_prefix="asr-eval-lane") as pool:
                side = pool.submit(aside)
                for future in [pool.submit(one, g) for g in groups]:
                    future.result()  # re-raises a lane's error (or Cancelled) here
                extra = side.result()
        return [o for o in outcomes if o is not None], extra


def _default_lanes(backend: Backend) -> int:
    """One lane per core for faster-whisper on CPU (its one-thread copies run side by side); else one."""
    return cpu_cores() if backend.name == "faster-whisper" and backend.device == "cpu" else 1


_warmed: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # backend -> the warm-ups it has decoded


def percentile(values: Sequence[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 4) if len(values) else None


__all__ = ["MODES", "StreamModeError", "StreamModeOptions", "StreamOutcome", "StreamRunner", "join", "plan_streams"]
