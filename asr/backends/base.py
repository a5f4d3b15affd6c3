"""The one interface every backend implements, so that policy and evaluation never see a library object.

Also the few helpers both backends need the same way (device choice, thread count, per-window seeds), so that
neither backend decides them differently.
"""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from asr.results import DecodeOptions, Segment


@dataclass(frozen=True)
class WindowResult:
    segments: tuple[Segment, ...]  # times are relative to the start of the window
    language: str  # the language decoded: forced, detected for this window, or "en" for English-only models
    avg_logprob: float = 0.0  # mean log probability of the generated tokens and end-of-text (Whisper's measure)
    no_speech_prob: float = 0.0  # the model's probability that the window holds no speech
    text: str = ""  # the decoded text, also when the window was judged silent (the fallback's rules read it)
    temperature: float = 0.0  # the temperature that produced it (> 0 only for a fallback retry)
    silent: bool = False  # dropped by Whisper's no-speech rule (no_speech_prob high and avg_logprob low)


class BackendError(RuntimeError):
    """A backend that cannot be used (missing package, bad model folder), with what to do about it.

    The message is kept to one line (library errors such as the hub's offline OSError span several), because
    the CLIs and the dashboard promise one line per failure.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).split()))


class EncodedWindows(Protocol):
    """Windows a backend has made ready to decode (features, encoder output, language), decoded once or again.

    The temperature fallback decodes a window again at up to five temperatures; a backend that keeps its
    encoding saves the features and the encoder on every retry (most of a retry's cost on CPU).
    """

    def decode(
        self, options: DecodeOptions, indices: Sequence[int] | None = None, words: bool = True
    ) -> list[WindowResult]:
        """The windows at ``indices`` (default: all, in order) decoded under ``options``: exactly what
        ``transcribe_windows`` of those windows alone under ``options`` gives, whatever was decoded before.
        Only the decoding settings may differ from the options the windows were encoded under (temperature,
        beam size), not the language, prompt or encoder padding. ``words=False``: only the text, probabilities
        and silence are needed (the fallback's rules); words may be left out, and a decode of the same
        windows and options with words then gives the same text with its words."""
        ...


@dataclass(frozen=True)
class DecodedAgain:
    """:class:`EncodedWindows` for a backend that keeps no encoding: each decode is a ``transcribe_windows``
    call (its words always included), remembered, so that asking again for the same window and options (the
    fallback asks for the retry it keeps, with words) costs nothing."""

    backend: Backend
    windows: Sequence[np.ndarray]
    _done: dict = field(default_factory=dict, repr=False, compare=False)  # (index, options) -> result

    def decode(
        self, options: DecodeOptions, indices: Sequence[int] | None = None, words: bool = True
    ) -> list[WindowResult]:
        chosen = list(range(len(self.windows))) if indices is None else list(indices)
        todo = [i for i in chosen if (i, options) not in self._done]
        if todo:
            decoded = self.backend.transcribe_windows([self.windows[i] for i in todo], options)
            self._done.update({(i, options): r for i, r in zip(todo, decoded)})
        return [self._done[(i, options)] for i in chosen]


@runtime_checkable
class Backend(Protocol):
    name: str  # "faster-whisper" or "transformers"
    model: str  # the model name or path it was loaded from
    device: str  # "cpu" or "cuda"
    multilingual: bool

    def transcribe_windows(
        self,
        windows: Sequence[np.ndarray],
        options: DecodeOptions,
        prompts: Sequence[str | None] | None = None,
        prefixes: Sequence[str | None] | None = None,
    ) -> list[WindowResult]:
        """Decode up to ``options.batch_size`` windows of <= 30 s mono 16 kHz audio in one model call.

        ``prompts`` gives each window its own previous-text prompt (the streaming policy feeds back each
        session's committed text); ``None`` uses ``options.initial_prompt`` for all. ``prefixes`` forces the
        start of each window's transcript (the streaming policy's committed words inside the window): the
        model only generates what follows, and the returned words include the prefix with aligned times.
        Each window gets its own language (detected per window on multilingual models unless
        ``options.language`` forces one). At ``options.temperature`` > 0 each window is sampled alone with
        :func:`window_seed`, so its text depends on the run seed and its own audio, never on batch-mates.
        Implementations must be safe to call from several threads.
        """
        ...

    def encode_windows(self, windows: Sequence[np.ndarray], options: DecodeOptions) -> EncodedWindows:
        """``windows`` (with ``options.initial_prompt``) made ready to decode, possibly several times; its
        ``decode(options)`` equals ``transcribe_windows(windows, options)``. :class:`DecodedAgain` if the
        backend keeps nothing between decodes."""
        ...


def cpu_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count): both backends' threads."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.cache
def one_blas_thread() -> None:
    """Pins numpy's BLAS to one thread in this process, for good (idempotent; both backends call it on load).

    Why: the log-mel features are a matrix product (``mel_filters @ magnitudes``) in numpy's OpenBLAS, which
    splits it by its thread count, and on some CPUs (seen on an AMD EPYC with OpenBLAS's Zen kernels; not on
    the Intel machines) the features then differ in their last bits with that count. Whisper's greedy text on a
    hard clip follows them: Ray workers (OMP_NUM_THREADS=1) transcribed 1 row in 12 differently from the
    dashboard (2 threads). One thread everywhere makes a transcript independent of the process that made it.
    Set once and never restored, so no concurrent session can see another's count; the product is a few
    milliseconds of a window's decode, and nothing else in the engine multiplies matrices in numpy.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def pick_device(device: str, library: str = "torch") -> str:
    """``auto`` -> ``cuda`` when ``library`` ("torch" or "ctranslate2") sees a GPU, else ``cpu``."""
    if device not in ("auto", "cpu", "cuda"):
        raise BackendError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "cpu":
        return device
    if library == "ctranslate2":
        import ctranslate2

        has_cuda = ctranslate2.get_cuda_device_count() > 0
    else:
        import torch

        has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise BackendError(f"device 'cuda' was asked for, but {library} sees no CUDA device; use --device cpu")
    return "cuda" if has_cuda else "cpu"


MEL_FRAMES = 3000  # Whisper's 30 s of 10 ms mel frames
MEL_FRAMES_PER_SECOND = MEL_FRAMES // 30
LANGUAGE_SURE = 0.8  # a language detected with less probability on a window encoded shorter than 30 s is
# detected again, and the window decoded, on Whisper's 30 s encoding, on both backends (whisper-base, 60
# es/fr/it/ru dev prompts: 3 wrong languages, Russian heard as Ukrainian at 0.50 and 0.58, and 2 of them right at
# 30 s). 0.8, not 0.7: on an AMD CPU, where CTranslate2 computes with DNNL instead of Intel MKL, one of those
# Russian prompts was Ukrainian at 0.77 on its 15 s encoding (Russian at 30 s); no wrong short guess on either
# machine was above it


def encoder_frames(frames: int, encoder_seconds: float) -> int:
    """Mel frames to pad a window of ``frames`` to before encoding: Whisper's 3000 (30 s), or below
    ``encoder_seconds`` < 30 the window plus 2 s, rounded up to a whole second and at least ``encoder_seconds``.
    The encoder runs in proportionally less time; the 2 s of trailing silence and the floor keep tiny windows from
    looping. Both backends pad the same way, so they encode a window alike."""
    if encoder_seconds >= 30.0:
        return MEL_FRAMES
    per_second = MEL_FRAMES_PER_SECOND
    needed = frames + 2 * per_second
    return min(MEL_FRAMES, max(int(encoder_seconds * per_second), -(-needed // per_second) * per_second))


def window_seed(seed: int, audio: np.ndarray, temperature: float) -> int:
    """The sampling seed of one window: from the run seed, the window's own samples and the temperature.

    Hashing the audio (not the window's position) keeps a window's sampled retry the same whatever batch,
    file position or worker it is decoded in.
    """
    digest = hashlib.sha256(np.ascontiguousarray(audio, np.float32).tobytes())
    digest.update(f"{seed}:{temperature:.3f}".encode())
    return int.from_bytes(digest.digest()[:4], "little") & 0x7FFFFFFF
