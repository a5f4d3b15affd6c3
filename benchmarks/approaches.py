"""The transcribers ``python -m benchmarks asr`` puts side by side, all on one loaded model in one process.

Each approach turns a list of recordings (mono float32 at 16 kHz) into one :class:`Decoded` per recording.
Ours goes through :func:`asr.transcribe.transcribe_many` with the options a validation run uses, so the whole
list is one batched job; faster-whisper's own entry points get one recording per call, as a user calls them.
The faster-whisper approaches reuse the ``WhisperModel`` inside our faster-whisper backend, so model, weights,
compute type and threads are the same and only the decoding differs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from asr.backends import Backend, get_backend
from asr.results import DecodeOptions
from asr.transcribe import transcribe_many

LIBRARY_BATCH = 8  # BatchedInferencePipeline's default batch, as our decode batch


@dataclass(frozen=True)
class Decoded:
    text: str
    language: str | None  # the language the approach decoded in (detected, forced, or "en" for English-only)
    unseeded: bool = False  # some of its text came from the library's fallback sampling, unseeded: one draw


Transcriber = Callable[[Sequence[np.ndarray]], list[Decoded]]


@dataclass
class Models:
    """The backends an approach may need, loaded on first use and shared by every approach."""

    model: str
    device: str = "auto"
    language: str | None = None  # forced on every approach (None: English-only models' own, or detected)
    _loaded: dict[str, Backend] = field(default_factory=dict)

    def backend(self, name: str) -> Backend:
        if name not in self._loaded:
            self._loaded[name] = get_backend(self.model, name, self.device)
        return self._loaded[name]

    @property
    def whisper_model(self):
        """faster-whisper's ``WhisperModel`` as our backend loaded it."""
        return self.backend("faster-whisper").whisper_model


@dataclass(frozen=True)
class Approach:
    name: str
    label: str
    build: Callable[[Models], Transcriber]  # loading happens here, outside the timings


def _ours(backend_name: str, **changes) -> Callable[[Models], Transcriber]:
    """Our engine with the options a validation run uses, and ``changes`` to them."""

    def build(models: Models) -> Transcriber:
        backend = models.backend(backend_name)
        options = DecodeOptions(word_timestamps=False, language=models.language, **changes)

        def run(audios: Sequence[np.ndarray]) -> list[Decoded]:
            return [
                Decoded(t.text, t.language) for t in transcribe_many(list(audios), backend=backend, options=options)
            ]

        return run

    return build


def _library(batched: bool = False, **kwargs) -> Callable[[Models], Transcriber]:
    """``WhisperModel.transcribe`` (or ``BatchedInferencePipeline.transcribe``) per recording, library defaults
    except those in ``kwargs``; the segments generator is consumed inside the timing."""

    def build(models: Models) -> Transcriber:
        from faster_whisper import BatchedInferencePipeline

        model = models.whisper_model
        call = BatchedInferencePipeline(model).transcribe if batched else model.transcribe

        def run(audios: Sequence[np.ndarray]) -> list[Decoded]:
            out = []
            for audio in audios:
                segments, info = call(audio, language=models.language, **kwargs)
                segments = list(segments)
                text = " ".join(s.text.strip() for s in segments).strip()
                sampled = any((getattr(s, "temperature", None) or 0.0) > 0 for s in segments)
                out.append(Decoded(text, info.language, sampled))
            return out

        return run

    return build


APPROACHES = {
    a.name: a
    for a in (
        Approach("ours-fw", "ours, faster-whisper (defaults)", _ours("faster-whisper")),
        Approach("ours-tf", "ours, transformers (defaults)", _ours("transformers")),
        Approach(  # what conditioning on the window before costs and gives, on a long file
            "ours-fw-conditioned",
            "ours, faster-whisper, each window prompted by the 15 words before",
            _ours("faster-whisper", condition_words=15),
        ),
        Approach(  # the default before long recordings decoded as the batched pipeline does
            "ours-fw-stamped-long",
            "ours, faster-whisper, recordings of 2+ minutes in timestamp mode, 2 s pauses",
            _ours("faster-whisper", long_timestamp_tokens=True),
        ),
        Approach("fw-greedy", "faster-whisper transcribe, greedy", _library(beam_size=1)),
        Approach(  # what the library's greedy owes to its text conditioning, on a long file
            "fw-greedy-unconditioned",
            "faster-whisper transcribe, greedy, condition_on_previous_text=False",
            _library(beam_size=1, condition_on_previous_text=False),
        ),
        Approach("fw-beam5", "faster-whisper transcribe, beam 5", _library(beam_size=5)),
        Approach("fw-vad", "faster-whisper transcribe, greedy + VAD", _library(beam_size=1, vad_filter=True)),
        Approach(
            "fw-batched",
            "faster-whisper BatchedInferencePipeline, greedy",
            _library(batched=True, beam_size=1, batch_size=LIBRARY_BATCH),
        ),
    )
}
DEFAULT_APPROACHES = tuple(  # these three are variants for long files (one window: next to no difference)
    a for a in APPROACHES if a not in ("ours-fw-conditioned", "ours-fw-stamped-long", "fw-greedy-unconditioned")
)
LONG_APPROACHES = ("ours-fw", "ours-tf", "fw-greedy", "fw-batched")  # a long file: the whole-file paths
