"""A streaming session: one user's stream, fed in chunks, read as committed and tentative text.

``feed`` converts the chunk and appends it, then returns: it never waits for the model. Gradio keeps only the
newest chunk of a stream while a handler is busy, so a handler that transcribed inline would lose audio; here the
shared scheduler's worker takes all audio received so far whenever it comes round. The session holds the audio
buffer (bounded by the policy, at most 30 s), the VAD state and the policy; the scheduler calls ``prepare``,
``window`` and ``apply`` from its worker. The whole recording is kept as int16 in an unlinked temporary file,
so an hour of audio costs disk, not memory.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import soxr

from asr.audio import SAMPLE_RATE, AudioError, to_float32, to_mono
from asr.backends import DEFAULT_BACKEND
from asr.models import default_model
from asr.results import DecodeOptions, Word
from asr.streaming.adapt import WindowMode, window_mode
from asr.streaming.policy import Hypothesis, Request, StreamOptions, StreamPolicy, join_words
from asr.streaming.scheduler import Scheduler, get_scheduler
from asr.vad import FRAME, StreamingVad

logger = logging.getLogger(__name__)


class StreamingError(RuntimeError):
    """The worker could not decode this session's audio (the message says why)."""


@dataclass(frozen=True)
class StreamUpdate:
    """What a user sees at one moment of the stream."""

    committed: str = ""  # final text: it never changes again, it only grows
    tentative: str = ""  # the newest hypothesis after the committed text; may still change
    tentative_words: tuple[Word, ...] = ()  # the same as words with absolute times (what a flip count compares)
    audio_seconds: float = 0.0  # audio received so far
    processed_seconds: float = 0.0  # audio the model has decoded or the VAD has judged silent
    update_seconds: float = 0.0  # compute of the last model call that served this session
    lag_seconds: float = 0.0  # received minus processed: how far the text is behind the voice
    committed_words: tuple[Word, ...] = ()  # the committed words with absolute times
    catchup_windows: int = 0  # windows decoded in catch-up mode so far (StreamOptions.catchup_lag_seconds)
    finished: bool = False  # finish() has committed everything; no more updates will come
    error: str = ""  # why the worker gave up on this session (finish() raises it); empty when all is well


class _Recording:
    """The whole stream as int16 in an unlinked temporary file (230 MB of float32 per hour stays off the heap)."""

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile(prefix="asrqa-stream-")
        self.samples = 0

    def append(self, audio: np.ndarray) -> None:
        pcm = np.clip(np.rint(audio * 32768.0), -32768, 32767).astype("<i2")
        self._file.write(pcm.tobytes())
        self.samples += pcm.size

    def read(self) -> np.ndarray:
        self._file.flush()
        self._file.seek(0)
        data = np.frombuffer(self._file.read(), dtype="<i2")
        self._file.seek(0, 2)
        return data.astype(np.float32) / 32768.0

    def close(self) -> None:
        self._file.close()


class _Converter:
    """Chunks of any rate, dtype and layout to mono float32 at 16 kHz; one resampler stream per session, so
    chunk edges leave no clicks."""

    def __init__(self) -> None:
        self._rate: int | None = None
        self._stream: soxr.ResampleStream | None = None

    def __call__(self, chunk) -> np.ndarray:
        rate, data = chunk if isinstance(chunk, tuple) else (SAMPLE_RATE, chunk)
        if not isinstance(rate, (int, np.integer)) or rate <= 0:
            raise AudioError(f"audio chunk: sample rate must be a positive integer, not {rate!r}")
        mono = to_mono(to_float32(np.asarray(data), what="audio chunk"), what="audio chunk")
        if rate != self._rate:
            tail = self.flush()
            self._rate = int(rate)
            self._stream = None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, "float32")
            if tail.size:
                return np.concatenate([tail, self._resample(mono)])
        return self._resample(mono)

    def _resample(self, mono: np.ndarray) -> np.ndarray:
        if self._stream is None:
            return np.ascontiguousarray(mono, dtype=np.float32)
        return self._stream.resample_chunk(np.ascontiguousarray(mono, dtype=np.float32))

    def flush(self) -> np.ndarray:
        if self._stream is None:
            return np.zeros(0, np.float32)
        return self._stream.resample_chunk(np.zeros(0, np.float32), last=True)


class _AudioBuffer:
    """The samples from the policy's buffer start to the newest audio (trimmed as the policy moves on)."""

    def __init__(self) -> None:
        self.origin = 0  # absolute sample index of ``data[0]``
        self.data = np.zeros(0, np.float32)

    def append(self, audio: np.ndarray) -> None:
        self.data = np.concatenate([self.data, audio]) if self.data.size else audio.copy()

    def trim(self, start_seconds: float) -> None:
        drop = int(start_seconds * SAMPLE_RATE) - self.origin
        if drop > 0:
            self.data = self.data[drop:].copy()
            self.origin += drop

    def slice(self, start: float, end: float) -> np.ndarray:
        a = max(int(round(start * SAMPLE_RATE)) - self.origin, 0)
        b = max(int(round(end * SAMPLE_RATE)) - self.origin, a)
        return self.data[a:b]


class StreamingSession:
    """One user's stream on a shared model. ``feed`` from the UI thread; read ``update`` at any time.

    All sessions of a (model, backend) share one loaded model and one scheduler worker. Pass ``scheduler`` to
    drive a private, unthreaded scheduler yourself (the benchmark's simulated clock does).
    """

    def __init__(
        self,
        model: str | None = None,
        backend: str = DEFAULT_BACKEND,
        options: StreamOptions | None = None,
        *,
        device: str = "auto",
        scheduler: Scheduler | None = None,
    ) -> None:
        self.options = (options or StreamOptions()).validate()
        self._scheduler = scheduler or get_scheduler(model or default_model(), backend, device)
        self._lock = threading.Lock()
        self._inbox: list[np.ndarray] = []  # converted audio the worker has not taken yet
        self._received = 0  # samples accepted by feed
        self._limit = int(self.options.max_session_seconds * SAMPLE_RATE)
        self._converter = _Converter()
        self._recording = _Recording() if self.options.keep_recording else None
        self._finish_requested = False
        self._closed = False
        self._error: BaseException | None = None
        self._done = threading.Event()
        self._state = StreamUpdate()
        # worker side: touched only by the scheduler's round
        self._policy = StreamPolicy(self.options)
        self._vad = StreamingVad()
        self._vad_samples = 0
        self._buffer = _AudioBuffer()
        self._words: list[Word] = []
        self._text = ""
        self._window_lag = 0.0  # how late the window in flight was planned (what catch-up mode reads)
        self._catchup_windows = 0
        self._scheduler.register(self)

    # ---- the UI side ----------------------------------------------------------------------------------------
    def feed(self, chunk) -> bool:
        """Append a chunk (``(rate, ndarray)`` of any dtype and layout, or a 16 kHz float array) and return.

        Returns False when the chunk was not taken: the session is finished or closed, or past
        ``max_session_seconds``. Raises :class:`asr.audio.AudioError` for unusable samples (NaN, bad rate).
        """
        if chunk is None:
            return True
        with self._lock:
            if self._finish_requested or self._closed:
                logger.warning("audio fed to a finished streaming session was ignored")
                return False
            audio = self._converter(chunk)
            room = self._limit - self._received
            taken = self._accept(audio[: max(room, 0)])
        if taken:
            self._scheduler.wake()
        return taken or audio.size == 0

    def _accept(self, audio: np.ndarray) -> bool:
        if audio.size == 0:
            return False
        self._inbox.append(audio)
        self._received += audio.size
        if self._recording is not None:
            self._recording.append(audio)
        return True

    def update(self) -> StreamUpdate:
        """The latest state; never blocks on the model."""
        with self._lock:
            received = self._received / SAMPLE_RATE
            processed = min(self._state.processed_seconds, received)
            return dataclasses.replace(
                self._state, audio_seconds=received, processed_seconds=processed, lag_seconds=received - processed
            )

    def end(self) -> None:
        """Mark the end of the stream and return at once; the worker commits the rest (``finish`` waits)."""
        with self._lock:
            if self._finish_requested:
                return
            self._finish_requested = True
            if not self._closed:
                self._accept(self._converter.flush()[: max(self._limit - self._received, 0)])
        self._scheduler.wake()

    def finish(self, timeout: float | None = None) -> StreamUpdate:
        """End the stream: wait until all audio is decoded, commit the rest, and return the final update."""
        self.end()
        if not self._scheduler.threaded:
            self._scheduler.drain(self._done)
        if not self._done.wait(timeout):
            raise TimeoutError(f"the stream was not fully decoded within {timeout} s")
        if self._error is not None:
            raise StreamingError(f"streaming failed: {self._error}") from self._error
        return self.update()

    def recording(self) -> np.ndarray:
        """Everything received so far, mono float32 at 16 kHz (empty with ``keep_recording=False``)."""
        with self._lock:
            return self._recording.read() if self._recording is not None else np.zeros(0, np.float32)

    def close(self) -> None:
        """Leave the scheduler and delete the recording; the session cannot be fed again."""
        self._scheduler.unregister(self)
        with self._lock:
            self._closed = True
            if self._recording is not None:
                self._recording.close()
                self._recording = None
        self._done.set()

    def __enter__(self) -> StreamingSession:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- the worker side (called by the scheduler) ----------------------------------------------------------
    def decode_options(self, windows: int) -> DecodeOptions:
        """How to decode this session's window in a round of ``windows`` windows: beam search while the worker
        can afford it; greedy, and a buffer trimmed at ``busy_trim_seconds``, once ``greedy_from_windows``
        sessions share the round or while this session lags (see :mod:`asr.streaming.adapt`)."""
        return self._mode(windows).decode

    def _mode(self, windows: int) -> WindowMode:
        return window_mode(self.options, windows, self._window_lag)

    @property
    def done(self) -> bool:
        """Finished, failed or closed: the worker will do nothing more for this session."""
        return self._done.is_set()

    @property
    def recording_bytes(self) -> int:
        """Size of the kept recording (int16, on disk)."""
        recording = self._recording
        return recording.samples * 2 if recording is not None else 0

    @property
    def buffer_seconds(self) -> float:
        """Audio held for the next window (bounded by ``max_buffer_seconds`` plus what arrived meanwhile)."""
        return self._buffer.data.size / SAMPLE_RATE

    def prepare(self) -> Request | None:
        """Take all new audio through the VAD into the policy; return the window to decode, if any."""
        if self._done.is_set() or self._error is not None:
            return None
        with self._lock:
            inbox, self._inbox = self._inbox, []
            finishing = self._finish_requested and not self._policy.finished
            received = self._received / SAMPLE_RATE
        if inbox:
            self._absorb(np.concatenate(inbox) if len(inbox) > 1 else inbox[0])
        if finishing and not self._policy.finishing:
            pad = (-self._vad_samples) % FRAME
            if pad:
                self._absorb(np.zeros(pad, np.float32))
            self._policy.finish()
        request = self._policy.plan()
        if request is not None:  # audio that arrived while the window waited for the worker
            self._window_lag = max(received - request.due, 0.0)
        settled = self._policy.take_settled()
        self._take(settled)
        self._buffer.trim(self._policy.buffer_start)
        self._publish(0.0, committed_changed=bool(settled))
        return request

    def _take(self, committed: Sequence[Word]) -> None:
        if committed:
            self._words.extend(committed)
            self._text = (self._text + "".join(w.word for w in committed)).lstrip()

    def _absorb(self, audio: np.ndarray) -> None:
        self._buffer.append(audio)
        self._vad_samples += audio.size
        self._policy.insert(self._vad.accept(audio))

    def window(self, request: Request) -> np.ndarray:
        return self._buffer.slice(request.start, request.end)

    def apply(self, request: Request, hypothesis: Hypothesis, compute_seconds: float, windows: int = 1) -> None:
        """Take the model's words for ``request``, decoded in a round of ``windows`` windows."""
        mode = self._mode(windows)
        self._catchup_windows += mode.catching_up
        result = self._policy.step(request, hypothesis, busy=mode.short_trim)
        self._take(result.committed)
        self._buffer.trim(self._policy.buffer_start)
        self._publish(compute_seconds, committed_changed=bool(result.committed))
        if self._policy.finished:
            self._done.set()

    def skipped_speech(self, request: Request, hypothesis: Hypothesis) -> bool:
        return self._policy.skipped_speech(request, hypothesis)

    def fail(self, error: BaseException) -> None:
        self._error = error
        with self._lock:
            self._state = dataclasses.replace(self._state, error=f"{type(error).__name__}: {error}")
        self._done.set()

    def _publish(self, compute_seconds: float, committed_changed: bool = False) -> None:
        state = self._state
        words = tuple(self._words) if committed_changed else state.committed_words
        new = StreamUpdate(
            committed=self._text,
            tentative=join_words(self._policy.tentative),
            tentative_words=self._policy.tentative,
            processed_seconds=self._policy.processed_until,
            update_seconds=compute_seconds or state.update_seconds,
            committed_words=words,
            catchup_windows=self._catchup_windows,
            finished=self._policy.finished,
        )
        with self._lock:
            self._state = new
        if self._policy.finished:
            self._done.set()
