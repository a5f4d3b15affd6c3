"""Streaming on a simulated live clock: what a live user would see, computed faster than real time.

The audio is cut into chunks that "arrive" on a simulated clock, as a browser sends them. The scheduler's rounds
run for real, unthreaded; the clock advances by each round's measured compute and jumps to the next chunk's
arrival when the worker is idle. So update costs and commit latencies (the clock when a word became final minus
the time its audio ended) are what a user on this machine would see live, while an hour of audio takes minutes.
With several sessions the streams share one model and one worker, as several testers would.

This is the engine's own driver of a :class:`~asr.streaming.session.StreamingSession` (a pure function of the
audio, the options and the backend's speed): the streaming benchmark and evaluation's streaming mode both run it,
so their latency and WER figures are the same measurement.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.backends.base import Backend
from asr.streaming.policy import StreamOptions
from asr.streaming.scheduler import RoundReport, Scheduler
from asr.streaming.session import StreamingSession, StreamUpdate

DEFAULT_CHUNK_SECONDS = 0.5  # what the Live page's browser sends


@dataclass(frozen=True)
class CommittedWord:
    """One committed word of one session, with the two times its latency is made of."""

    session: int  # which stream (0 .. sessions - 1)
    text: str  # the word as committed (with its leading space, as Whisper writes it)
    start: float  # audio time the word starts, seconds from the stream's start
    end: float  # audio time the word ends
    commit_time: float  # simulated clock when the word became final

    @property
    def latency(self) -> float:
        """Seconds from the end of the word's audio to its commit: what a live user waits for final text."""
        return self.commit_time - self.end


@dataclass(frozen=True)
class UpdateRecord:
    """What one session showed after one worker round that decoded something (for flips and first commits)."""

    session: int
    clock: float  # simulated clock when the update was shown (the round's end)
    committed: str  # the session's committed text then
    tentative: str  # its tentative text then (may be changed by later updates: a flip)


@dataclass(frozen=True)
class Round:
    """One worker round that decoded something."""

    clock: float  # simulated clock at the round's start
    compute_seconds: float  # measured compute of the round
    windows: int  # windows decoded in the round (one per session served)


@dataclass(frozen=True)
class SimulatedStream:
    """Everything the simulated live run observed."""

    audio_seconds: float  # length of the stream (per session)
    clock_seconds: float  # simulated clock at the end (audio length plus the final lag)
    rounds: tuple[Round, ...]
    updates: tuple[UpdateRecord, ...]  # each change of what a session showed, in clock order
    words: tuple[CommittedWord, ...]  # every committed word of every session, in commit order
    texts: tuple[str, ...]  # each session's final committed text
    max_buffer_seconds: float  # the longest buffer any session held
    recording_bytes: int  # all sessions' kept recordings (int16 on disk)

    def latencies(self, session: int | None = None) -> np.ndarray:
        """Commit latency of every committed word (of one session, or of all)."""
        return np.asarray([w.latency for w in self.words if session is None or w.session == session], dtype=float)


ProgressCallback = Callable[[float], None]  # the simulated clock after every decoding round, and once more when
# every word is committed (before the sessions close): where a benchmark samples memory


def simulate(
    audio: np.ndarray,
    backend: Backend | Scheduler,
    options: StreamOptions | None = None,
    *,
    sessions: int = 1,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    on_round: ProgressCallback | None = None,
) -> SimulatedStream:
    """Stream float32 16 kHz ``audio`` to ``sessions`` sessions in ``chunk_seconds`` pieces on a simulated clock.

    ``backend`` may be an unthreaded :class:`Scheduler` (a caller that warmed it up or shares it) or a backend,
    for which one is made. A failed session raises its error (:meth:`StreamingSession.finish`).
    """
    if sessions < 1 or not chunk_seconds > 0:
        raise ValueError(f"sessions must be >= 1 and chunk_seconds > 0, not {sessions} and {chunk_seconds}")
    scheduler = backend if isinstance(backend, Scheduler) else Scheduler(backend, threaded=False)
    options = options or StreamOptions(max_session_seconds=audio.size / SAMPLE_RATE + 60.0)
    run = _Run(np.asarray(audio, dtype=np.float32), scheduler, options, sessions, chunk_seconds, on_round)
    try:
        run.stream()
        run.drain()
        return run.result()
    finally:
        run.close()


class _Run:
    """The state of one simulation: the clock, the chunks fed so far, and what was observed."""

    def __init__(self, audio, scheduler, options, sessions, chunk_seconds, on_round) -> None:
        self.audio, self.scheduler, self.on_round = audio, scheduler, on_round
        self.step = max(int(round(chunk_seconds * SAMPLE_RATE)), 1)
        self.n_chunks = math.ceil(audio.size / self.step)
        self.sessions = [StreamingSession(options=options, scheduler=scheduler) for _ in range(sessions)]
        self.clock, self.fed, self.max_buffer = 0.0, 0, 0.0
        self.rounds: list[Round] = []
        self.updates: list[UpdateRecord] = []
        self.words: list[CommittedWord] = []
        self.seen = [0] * sessions
        self.last_shown = [("", "")] * sessions

    def _arrival(self, chunk: int) -> float:
        return min((chunk + 1) * self.step, self.audio.size) / SAMPLE_RATE

    def stream(self) -> None:
        """Feed chunks as the clock reaches their arrival; run rounds; jump the clock over idle time."""
        while True:
            while self.fed < self.n_chunks and self._arrival(self.fed) <= self.clock + 1e-9:
                piece = self.audio[self.fed * self.step : (self.fed + 1) * self.step]
                for s in self.sessions:
                    s.feed(piece)
                self.fed += 1
            report = self.scheduler.run_once()
            self.max_buffer = max([self.max_buffer] + [s.buffer_seconds for s in self.sessions])
            if report.windows:
                self._round(report)
            elif self.fed < self.n_chunks:
                self.clock = self._arrival(self.fed)
            else:
                return

    def drain(self) -> None:
        """End every stream and run rounds until each has committed all of its words."""
        for s in self.sessions:
            s.end()
        while not all(s.done for s in self.sessions):
            report = self.scheduler.run_once()
            if report.windows:
                self._round(report)
            else:  # the VAD's last judgement still costs time the user waits
                self.clock += report.compute_seconds
                self._collect([s.update() for s in self.sessions])
        for s in self.sessions:
            s.finish()  # raises the error of a failed session
        if self.on_round is not None:
            self.on_round(self.clock)

    def _round(self, report: RoundReport) -> None:
        self.rounds.append(Round(self.clock, report.compute_seconds, report.windows))
        self.clock += report.compute_seconds
        self._collect([s.update() for s in self.sessions])
        if self.on_round is not None:
            self.on_round(self.clock)

    def _collect(self, shown: list[StreamUpdate]) -> None:
        for i, update in enumerate(shown):
            if (update.committed, update.tentative) != self.last_shown[i]:
                self.updates.append(UpdateRecord(i, self.clock, update.committed, update.tentative))
                self.last_shown[i] = (update.committed, update.tentative)
            for w in update.committed_words[self.seen[i] :]:
                self.words.append(CommittedWord(i, w.word, w.start, w.end, self.clock))
            self.seen[i] = len(update.committed_words)

    def result(self) -> SimulatedStream:
        return SimulatedStream(
            audio_seconds=self.audio.size / SAMPLE_RATE,
            clock_seconds=self.clock,
            rounds=tuple(self.rounds),
            updates=tuple(self.updates),
            words=tuple(self.words),
            texts=tuple(s.update().committed for s in self.sessions),
            max_buffer_seconds=self.max_buffer,
            recording_bytes=sum(s.recording_bytes for s in self.sessions),
        )

    def close(self) -> None:
        for s in self.sessions:
            s.close()
