"""The one interface every backend implements, so that policy and evaluation never see a library object."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from asr.results import DecodeOptions, Segment


@dataclass(frozen=True)
class WindowResult:
    segments: tuple[Segment, ...]  # times are relative to the start of the window
    language: str  # the language decoded ("en" for English-only models)


class BackendError(RuntimeError):
    """A backend that cannot be used (missing package, bad model folder), with what to do about it.

    The message is kept to one line (library errors such as the hub's offline OSError span several), because
    the CLIs and the dashboard promise one line per failure.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(" ".join(str(message).split()))


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
        Implementations must be safe to call from several threads.
        """
        ...
