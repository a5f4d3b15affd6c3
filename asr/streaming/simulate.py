"""Streaming on a simulated live clock: what a live user would see, computed faster than real time.

The audio is cut into chunks that "arrive" on a simulated clock, as a browser sends them. The scheduler's rounds
run for real, unthreaded; the clock advances by each round's cost and jumps to the next chunk's arrival when the
worker is idle. So update costs and commit latencies (the clock when a word became final minus the time its audio
ended) are what a live user would see, while an hour of audio takes minutes. With several sessions the streams
share one model and one worker, as several testers would.

The cost of a round is its measured compute (``clock="measured"``: this machine as loaded now; the audio each
round sees, and so the text, changes with the load) or a deterministic model of what it decoded
(``clock="modelled"``, :mod:`asr.streaming.clock`: the same audio and options give the same result every run).
``cpu_share`` below 1 charges every round ``1 / cpu_share`` times its cost on either clock: the same stream on a
CPU shared with other work (a validation sweep beside it), still deterministic on the modelled clock.

This is the engine's own driver of a :class:`~asr.streaming.session.StreamingSession` (a pure function of the
audio, the options and the backend's speed): the streaming benchmark and evaluation's streaming mode both run it,
so their latency and WER figures are the same measurement.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.backends.base import Backend
from asr.streaming.clock import CLOCKS, CostModel, cost_model_for
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
    active: tuple[int, ...] = ()  # sessions not yet finished after the round (what its compute is shared by)
    cost_seconds: float = 0.0  # what the clock advanced by: the measured compute or the modelled cost, / cpu_share
    lag_seconds: float = 0.0  # the largest lag (received minus processed audio) of any session as the round began


@dataclass(frozen=True)
class SimulatedStream:
    """Everything the simulated live run observed."""

    audio_seconds: float  # length of the (longest) stream
    clock_seconds: float  # simulated clock at the end (audio length plus the final lag)
    rounds: tuple[Round, ...]
    updates: tuple[UpdateRecord, ...]  # each change of what a session showed, in clock order
    words: tuple[CommittedWord, ...]  # every committed word of every session, in commit order
    texts: tuple[str, ...]  # each session's final committed text
    max_buffer_seconds: float  # the longest buffer any session held
    recording_bytes: int  # all sessions' kept recordings (int16 on disk)
    clock: str = "measured"  # what the clock advanced by (see CLOCKS)
    cost_model: CostModel | None = None  # the modelled clock's coefficients (None: measured)
    cpu_share: float = 1.0  # share of the CPU the worker had: each round cost 1 / cpu_share times its compute
    catchup_windows: tuple[int, ...] = ()  # each session's windows decoded in catch-up mode (asr.streaming.adapt)

    @property
    def max_lag_seconds(self) -> float:
        """The furthest any session's text fell behind its voice, as a round began."""
        return max((r.lag_seconds for r in self.rounds), default=0.0)

    def latencies(self, session: int | None = None) -> np.ndarray:
        """Commit latency of every committed word (of one session, or of all)."""
        return np.asarray([w.latency for w in self.words if session is None or w.session == session], dtype=float)


ProgressCallback = Callable[[float], None]  # the simulated clock after every decoding round, and once more when
# every word is committed (before the sessions close): where a benchmark samples memory
UpdateCallback = Callable[[int, StreamUpdate, float], None]  # (session, what it shows, clock) after each round
MAX_IDLE_ROUNDS = 50  # rounds with nothing to decode after the last chunk before a stream is declared stuck


class StuckStream(RuntimeError):
    """A stream that stopped making progress after its last chunk (a session that never finishes)."""


def simulate(
    audio: np.ndarray | Sequence[np.ndarray],
    backend: Backend | Scheduler,
    options: StreamOptions | None = None,
    *,
    sessions: int | None = None,
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
    stop_with_last_chunk: bool = False,
    on_round: ProgressCallback | None = None,
    on_update: UpdateCallback | None = None,
    clock: str = "measured",
    cost_model: CostModel | None = None,
    cpu_share: float = 1.0,
) -> SimulatedStream:
    """Stream float32 16 kHz audio to sessions in ``chunk_seconds`` pieces on one simulated clock.

    ``audio`` is one array, streamed to each of ``sessions`` sessions (default 1: testers saying the same thing),
    or one array per session (different streams of any lengths sharing the worker). ``stop_with_last_chunk``
    ends each stream as its last chunk arrives (a tester pressing stop as they finish speaking); otherwise every
    stream ends once the worker is idle after the last chunk (a tester who waits for the text to settle).
    ``backend`` may be an unthreaded :class:`Scheduler` (a caller that warmed it up or shares it) or a backend,
    for which one is made. A failed session raises its error (:meth:`StreamingSession.finish`). ``clock`` is
    "measured" or "modelled"; the modelled clock uses ``cost_model``, by default the one calibrated for the
    backend's model (:func:`asr.streaming.clock.cost_model_for`). ``cpu_share`` (0 < share <= 1) is the share
    of the CPU the worker gets: each round advances the clock by its cost divided by it.
    """
    streams = _streams(audio, sessions)
    if not chunk_seconds > 0:
        raise ValueError(f"chunk_seconds must be > 0, not {chunk_seconds}")
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {', '.join(CLOCKS)}, not {clock!r}")
    if not 0 < cpu_share <= 1:
        raise ValueError(f"cpu_share must be > 0 and <= 1, not {cpu_share!r}")
    scheduler = backend if isinstance(backend, Scheduler) else Scheduler(backend, threaded=False)
    if clock == "modelled" and cost_model is None:
        cost_model = cost_model_for(scheduler.backend.model, scheduler.backend.name)
    longest = max(a.size for a in streams) / SAMPLE_RATE
    options = options or StreamOptions(max_session_seconds=longest + 60.0)
    cost = cost_model if clock == "modelled" else None
    run = _Run(streams, scheduler, options, chunk_seconds, stop_with_last_chunk, on_round, on_update, cost, cpu_share)
    try:
        run.stream()
        run.drain()
        return run.result()
    finally:
        run.close()


def _streams(audio: np.ndarray | Sequence[np.ndarray], sessions: int | None) -> list[np.ndarray]:
    if isinstance(audio, np.ndarray):
        if sessions is not None and sessions < 1:
            raise ValueError(f"sessions must be >= 1, not {sessions}")
        return [np.asarray(audio, dtype=np.float32)] * (sessions or 1)
    streams = [np.asarray(a, dtype=np.float32) for a in audio]
    if not streams or (sessions is not None and sessions != len(streams)):
        raise ValueError(f"sessions must be >= 1 and match the {len(streams)} streams given, not {sessions}")
    return streams


class _Run:
    """The state of one simulation: the clock, the chunks fed so far, and what was observed."""

    def __init__(
        self, streams, scheduler, options, chunk_seconds, stop_with_last_chunk, on_round, on_update, cost, share
    ) -> None:
        self.streams, self.scheduler, self.cost, self.share = streams, scheduler, cost, share
        self.on_round, self.on_update, self.stop_with_last_chunk = on_round, on_update, stop_with_last_chunk
        self.step = max(int(round(chunk_seconds * SAMPLE_RATE)), 1)
        self.n_chunks = [math.ceil(a.size / self.step) for a in streams]
        self.sessions = [StreamingSession(options=options, scheduler=scheduler) for _ in streams]
        self.clock, self.fed, self.max_buffer = 0.0, [0] * len(streams), 0.0
        self.rounds: list[Round] = []
        self.updates: list[UpdateRecord] = []
        self.words: list[CommittedWord] = []
        self.seen = [0] * len(streams)
        self.last_shown = [("", "")] * len(streams)

    def _arrival(self, i: int) -> float:
        return min((self.fed[i] + 1) * self.step, self.streams[i].size) / SAMPLE_RATE

    def _pending(self) -> list[int]:
        return [i for i, n in enumerate(self.n_chunks) if self.fed[i] < n]

    def _feed(self) -> None:
        for i in self._pending():
            audio, session = self.streams[i], self.sessions[i]
            while self.fed[i] < self.n_chunks[i] and self._arrival(i) <= self.clock + 1e-9:
                session.feed(audio[self.fed[i] * self.step : (self.fed[i] + 1) * self.step])
                self.fed[i] += 1
                if self.fed[i] == self.n_chunks[i] and self.stop_with_last_chunk:
                    session.end()

    def stream(self) -> None:
        """Feed chunks as the clock reaches their arrival; run rounds; jump the clock over idle time."""
        while True:
            self._feed()
            lag = self._lag()
            report = self.scheduler.run_once()
            self.max_buffer = max([self.max_buffer] + [s.buffer_seconds for s in self.sessions])
            if report.windows:
                self._round(report, lag)
                continue
            shown = [s.update() for s in self.sessions]
            if any(len(u.committed_words) != seen for u, seen in zip(shown, self.seen)):
                self._collect(shown)  # words committed without a model call: shown now, on the current clock
            if self._pending():
                self.clock = max(self.clock, min(self._arrival(i) for i in self._pending()))
            else:
                return

    def drain(self) -> None:
        """End every stream and run rounds until each has committed all of its words."""
        for s in self.sessions:
            if not s.done:
                s.end()
        idle = 0
        while not all(s.done for s in self.sessions):
            lag = self._lag()
            report = self.scheduler.run_once()
            if report.windows:
                idle = 0
                self._round(report, lag)
                continue
            self.clock += self._cost(report)  # the VAD's last judgement still costs time the user waits
            self._collect([s.update() for s in self.sessions])
            idle += 1
            if idle > MAX_IDLE_ROUNDS:
                raise StuckStream(f"a simulated stream did not finish within {MAX_IDLE_ROUNDS} idle rounds")
        for s in self.sessions:
            s.finish()  # raises the error of a failed session
        if self.on_round is not None:
            self.on_round(self.clock)

    def _cost(self, report: RoundReport) -> float:
        cost = report.compute_seconds if self.cost is None else self.cost.round(report.work)
        return cost / self.share

    def _lag(self) -> float:
        return max(s.update().lag_seconds for s in self.sessions)

    def _round(self, report: RoundReport, lag: float) -> None:
        start, cost = self.clock, self._cost(report)
        self.clock += cost
        self._collect([s.update() for s in self.sessions])
        active = tuple(i for i, s in enumerate(self.sessions) if not s.done)
        self.rounds.append(Round(start, report.compute_seconds, report.windows, active, cost, lag))
        if self.on_round is not None:
            self.on_round(self.clock)

    def _collect(self, shown: list[StreamUpdate]) -> None:
        for i, update in enumerate(shown):
            if self.on_update is not None:
                self.on_update(i, update, self.clock)
            if (update.committed, update.tentative) != self.last_shown[i]:
                self.updates.append(UpdateRecord(i, self.clock, update.committed, update.tentative))
                self.last_shown[i] = (update.committed, update.tentative)
            for w in update.committed_words[self.seen[i] :]:
                self.words.append(CommittedWord(i, w.word, w.start, w.end, self.clock))
            self.seen[i] = len(update.committed_words)

    def result(self) -> SimulatedStream:
        return SimulatedStream(
            audio_seconds=max(a.size for a in self.streams) / SAMPLE_RATE,
            clock_seconds=self.clock,
            rounds=tuple(self.rounds),
            updates=tuple(self.updates),
            words=tuple(self.words),
            texts=tuple(s.update().committed for s in self.sessions),
            max_buffer_seconds=self.max_buffer,
            recording_bytes=sum(s.recording_bytes for s in self.sessions),
            clock="measured" if self.cost is None else "modelled",
            cost_model=self.cost,
            cpu_share=self.share,
            catchup_windows=tuple(s.update().catchup_windows for s in self.sessions),
        )

    def close(self) -> None:
        for s in self.sessions:
            s.close()
