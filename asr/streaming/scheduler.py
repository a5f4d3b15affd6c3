"""One worker per loaded model that serves every streaming session on it, batching their windows.

Why one worker and not one thread per session: the model is one object with one set of CPU cores. Sessions that
are ready at the same moment are decoded in ONE ``transcribe_windows`` call (faster-whisper's batched generate,
each window with its own session's prompt), which costs far less than one call per session, so several live
sessions keep real time on two cores. Each round takes all audio received so far for every session, so a slow
round never loses audio: the next round simply decodes a longer buffer.

The worker is a plain loop over :meth:`Scheduler.run_once`; benchmarks and tests create a ``threaded=False``
scheduler and call ``run_once`` themselves against a simulated clock.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.backends import DEFAULT_BACKEND, Backend, get_backend
from asr.results import DecodeOptions
from asr.streaming.clock import WHISPER_SECONDS, WindowWork, encoded_seconds
from asr.streaming.policy import Hypothesis, Request

logger = logging.getLogger(__name__)


class _Client(Protocol):
    """What the scheduler needs from a session (``StreamingSession`` implements it)."""

    def decode_options(self, windows: int) -> DecodeOptions: ...

    def prepare(self) -> Request | None: ...

    def window(self, request: Request) -> np.ndarray: ...

    def apply(self, request: Request, hypothesis: Hypothesis, compute_seconds: float, windows: int) -> None: ...

    def fail(self, error: BaseException) -> None: ...

    def skipped_speech(self, request: Request, hypothesis: Hypothesis) -> bool: ...


@dataclass(frozen=True)
class RoundReport:
    """What one round of the worker did (the benchmark's clock advances by ``compute_seconds``)."""

    windows: int  # windows decoded (one per session that was ready)
    model_calls: int  # backend calls made (one per batch)
    compute_seconds: float  # wall seconds of the whole round: VAD, model calls and policy
    model_seconds: float  # wall seconds inside the backend
    work: tuple[WindowWork, ...] = ()  # every model decode of a window (what the modelled clock charges)


class Scheduler:
    """Serves the sessions registered on it with one backend; thread-safe."""

    def __init__(self, backend: Backend, *, threaded: bool = True, name: str = "") -> None:
        self.backend = backend
        self.threaded = threaded
        self._clients: list[_Client] = []
        self._cond = threading.Condition()
        self._wakeups = 0
        self._round_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._name = name or f"asr-stream-{backend.name}"

    # ---- sessions -------------------------------------------------------------------------------------------
    def register(self, client: _Client) -> None:
        with self._cond:
            self._clients.append(client)
        if self.threaded and self._thread is None:
            self._start()

    def unregister(self, client: _Client) -> None:
        with self._cond:
            if client in self._clients:
                self._clients.remove(client)

    @property
    def sessions(self) -> int:
        with self._cond:
            return len(self._clients)

    def wake(self) -> None:
        """New audio or a finish request: the worker will run a round soon."""
        with self._cond:
            self._wakeups += 1
            self._cond.notify()

    # ---- one round ------------------------------------------------------------------------------------------
    def run_once(self) -> RoundReport:
        """Absorb all new audio of every session, decode every ready window in batches, apply the results."""
        with self._round_lock:
            started = time.perf_counter()
            with self._cond:
                clients = list(self._clients)
            ready: list[tuple[_Client, Request]] = []
            for client in clients:
                try:
                    request = client.prepare()
                except Exception as exc:  # noqa: BLE001 - one broken session must not stop the others
                    logger.exception("streaming session failed while preparing a window")
                    client.fail(exc)
                    continue
                if request is not None:
                    ready.append((client, request))
            work: list[WindowWork] = []
            calls, model_seconds = self._decode(ready, work)
            return RoundReport(len(ready), calls, time.perf_counter() - started, model_seconds, tuple(work))

    def _decode(self, ready: list[tuple[_Client, Request]], work: list[WindowWork]) -> tuple[int, float]:
        groups: dict[DecodeOptions, list[tuple[_Client, Request]]] = {}
        for client, request in ready:
            groups.setdefault(client.decode_options(len(ready)), []).append((client, request))
        calls, spent_all = 0, 0.0
        for options, items in groups.items():
            for i in range(0, len(items), options.batch_size):
                batch = items[i : i + options.batch_size]
                spent_all += self._decode_batch(batch, options, len(ready), work)
                calls += 1
        return calls, spent_all

    def _decode_batch(
        self, batch: Sequence[tuple[_Client, Request]], options: DecodeOptions, round_size: int, work: list[WindowWork]
    ) -> float:
        """Decode one batch; ``round_size`` is the number of windows in the whole round (sessions adapt to it).
        Each decode of a window is appended to ``work``."""
        t0 = time.perf_counter()
        try:
            windows = [client.window(request) for client, request in batch]
            hypotheses = self._hypotheses(batch, windows, options)
            work += [self._work(w, h, options) for w, h in zip(windows, hypotheses)]
            retry = [i for i, ((c, r), h) in enumerate(zip(batch, hypotheses)) if c.skipped_speech(r, h)]
            if retry and options.encoder_seconds < WHISPER_SECONDS:
                # Whisper sometimes ends a short encoder window early; the full 30 s context does not
                full = options.replace(encoder_seconds=WHISPER_SECONDS)
                again = self._hypotheses([batch[i] for i in retry], [windows[i] for i in retry], full)
                for i, hypothesis in zip(retry, again):
                    hypotheses[i] = hypothesis
                    work.append(self._work(windows[i], hypothesis, full))
        except Exception as exc:  # noqa: BLE001 - reported to every session of the batch
            logger.exception("streaming model call failed")
            for client, _ in batch:
                client.fail(exc)
            return time.perf_counter() - t0
        spent = time.perf_counter() - t0
        for (client, request), hypothesis in zip(batch, hypotheses):
            try:
                client.apply(request, hypothesis, spent, round_size)
            except Exception as exc:  # noqa: BLE001
                logger.exception("streaming session failed while applying a hypothesis")
                client.fail(exc)
        return spent

    def _work(self, window: np.ndarray, hypothesis: Hypothesis, options: DecodeOptions) -> WindowWork:
        seconds = window.size / SAMPLE_RATE
        encoded = encoded_seconds(seconds, options, self.backend.name)
        return WindowWork(seconds, encoded, options.beam_size, len(hypothesis.words))

    def _hypotheses(
        self, batch: Sequence[tuple[_Client, Request]], windows: Sequence[np.ndarray], options: DecodeOptions
    ) -> list[Hypothesis]:
        prompts = [r.prompt or None for _, r in batch]
        prefixes = [r.prefix or None for _, r in batch]
        results = self.backend.transcribe_windows(windows, options, prompts=prompts, prefixes=prefixes)
        return [Hypothesis.from_segments(res.segments, r.start, r.end) for (_, r), res in zip(batch, results)]

    def drain(self, done: threading.Event, max_rounds: int = 100_000) -> None:
        """Run rounds on the caller's thread until ``done`` is set (unthreaded schedulers: benchmark, tests)."""
        for _ in range(max_rounds):
            if done.is_set():
                return
            self.run_once()
        raise RuntimeError("a streaming session did not finish")

    # ---- the worker thread ----------------------------------------------------------------------------------
    def _start(self) -> None:
        with self._cond:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Let the worker finish its round and end. Called at interpreter exit: a daemon thread still inside
        CTranslate2 when Python tears down aborts the process ("terminate called without an active exception")."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _loop(self) -> None:
        busy = False
        while True:
            with self._cond:
                while not busy and self._wakeups == 0 and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                self._wakeups = 0
            try:
                busy = self.run_once().windows > 0
            except Exception:  # noqa: BLE001 - the worker must outlive any error
                logger.exception("streaming worker round failed")
                busy = False


_schedulers: dict[tuple[str, str, str], Scheduler] = {}
_registry_lock = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _registry_lock:
        schedulers = list(_schedulers.values())
    for scheduler in schedulers:
        scheduler.stop()


def get_scheduler(model: str, backend: str = DEFAULT_BACKEND, device: str = "auto") -> Scheduler:
    """The process-wide scheduler of (model, backend, device), over the process-wide loaded model."""
    key = (model, backend, device)
    with _registry_lock:
        if key not in _schedulers:
            _schedulers[key] = Scheduler(get_backend(model, backend, device), name=f"asr-stream-{model}-{backend}")
        return _schedulers[key]
