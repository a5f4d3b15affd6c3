"""Full-context transcription of audio of any length, on any backend.

The VAD finds speech, speech is packed into <= 30 s windows, and windows are decoded in batches. This is how
both backends get past Whisper's 30-second context (the recipe's pipeline fails there), and why silence and
faint noise give an empty transcript rather than an invented sentence. Several recordings can be transcribed
together (:func:`transcribe_many`) so that short utterances share batches, which is what evaluation needs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from asr.audio import SAMPLE_RATE, AudioSource, load_audio
from asr.backends import DEFAULT_BACKEND, Backend, WindowResult, get_backend
from asr.models import default_model
from asr.results import DecodeOptions, Segment, Transcript, Word, compression_ratio
from asr.vad import MAX_WINDOW_SECONDS, SpeechSpan, VadOptions, Window, group_spans, make_window, speech_spans

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[float, float], None]  # (audio seconds done, audio seconds in all); may raise to cancel


@dataclass(frozen=True)
class _Job:
    index: int  # which recording
    spans: tuple[SpeechSpan, ...]  # the speech the window holds, in file samples


def transcribe(
    audio: AudioSource,
    *,
    backend: Backend | None = None,
    model: str | None = None,
    backend_name: str = DEFAULT_BACKEND,
    options: DecodeOptions | None = None,
    vad: VadOptions | None = None,
    progress: ProgressCallback | None = None,
) -> Transcript:
    """Transcribe one recording (path, bytes, Gradio tuple or 16 kHz array)."""
    return transcribe_many(
        [audio], backend=backend, model=model, backend_name=backend_name, options=options, vad=vad, progress=progress
    )[0]


def transcribe_many(
    audios: Sequence[AudioSource],
    *,
    backend: Backend | None = None,
    model: str | None = None,
    backend_name: str = DEFAULT_BACKEND,
    options: DecodeOptions | None = None,
    vad: VadOptions | None = None,
    progress: ProgressCallback | None = None,
) -> list[Transcript]:
    """Transcribe several recordings, sharing model batches between them. Results keep the input order."""
    options = (options or DecodeOptions()).validate()
    backend = backend or get_backend(model or default_model(), backend_name)
    arrays = [load_audio(a) for a in audios]
    started = time.perf_counter()
    # Windows hold copies of the speech: an hour of it is ~200 MB, so each batch's windows are made only when
    # that batch is decoded, then dropped.
    jobs = [_Job(i, spans) for i, a in enumerate(arrays) for spans in _window_spans(a, options, vad)]
    total = sum(a.size for a in arrays) / SAMPLE_RATE
    per_audio: list[list[Segment]] = [[] for _ in arrays]
    languages: list[dict[str, float]] = [{} for _ in arrays]  # per recording: seconds of speech per language
    compute = [0.0] * len(arrays)
    done = 0.0
    for start in range(0, len(jobs), options.batch_size):
        batch = jobs[start : start + options.batch_size]
        windows = [make_window(arrays[j.index], j.spans) for j in batch]
        t0 = time.perf_counter()
        results = _with_fallback(
            backend, windows, options, backend.transcribe_windows([w.audio for w in windows], options)
        )
        spent = time.perf_counter() - t0
        batch_audio = sum(w.seconds for w in windows) or 1.0
        for job, window, result in zip(batch, windows, results):
            per_audio[job.index].extend(_to_file_time(s, window) for s in result.segments)
            if result.segments:
                seen = languages[job.index]
                seen[result.language] = seen.get(result.language, 0.0) + window.seconds
            compute[job.index] += spent * window.seconds / batch_audio
            done += window.seconds
        if progress:
            progress(min(done, total), total)
    if progress:
        progress(total, total)
    overhead = (time.perf_counter() - started - sum(compute)) / max(len(arrays), 1)
    return [
        _transcript(segs, arr, _language(languages[i], options, backend), compute[i] + overhead, backend, options)
        for i, (segs, arr) in enumerate(zip(per_audio, arrays))
    ]


def _language(seconds: dict[str, float], options: DecodeOptions, backend: Backend) -> str:
    """A recording's language: the one most of its decoded speech was detected in (ties: the first)."""
    if seconds:
        return max(seconds, key=lambda lang: seconds[lang])
    return options.language or ("en" if not backend.multilingual else "")


def _window_spans(audio: np.ndarray, options: DecodeOptions, vad: VadOptions | None) -> list[tuple[SpeechSpan, ...]]:
    if options.vad_filter:
        spans = speech_spans(audio, vad)
    else:
        step = int(MAX_WINDOW_SECONDS * SAMPLE_RATE)
        spans = [SpeechSpan(s, min(s + step, audio.size)) for s in range(0, audio.size, step)]
    return group_spans(spans)


def _looping(result: WindowResult, options: DecodeOptions) -> float:
    """How far a window's text is past the compression-ratio threshold (> 0: the decoder repeated itself)."""
    if options.compression_ratio_threshold is None:
        return 0.0
    return compression_ratio(" ".join(s.text for s in result.segments)) - options.compression_ratio_threshold


def _with_fallback(
    backend: Backend, windows: list[Window], options: DecodeOptions, results: list[WindowResult]
) -> list[WindowResult]:
    """Decode looping windows again at Whisper's rising temperatures, as Whisper does one window at a time.

    Batched decoding has no fallback of its own, and tiny models at temperature 0 sometimes loop ("the, the,
    the, ..."), which turns one utterance's WER into 1000 %. Only the looping windows are decoded again.
    """
    results = list(results)
    for i, window in enumerate(windows):
        best = results[i]
        for temperature in options.fallback_temperatures if _looping(best, options) > 0 else ():
            hotter = options.replace(temperature=temperature, beam_size=1)
            retry = backend.transcribe_windows([window.audio], hotter)[0]
            if _looping(retry, options) < _looping(best, options):
                best = retry
            if _looping(best, options) <= 0:
                break
        results[i] = best
    return results


def _to_file_time(segment: Segment, window: Window) -> Segment:
    words = tuple(
        Word(w.word, window.to_file_time(w.start), window.to_file_time(w.end, is_end=True), w.probability)
        for w in segment.words
    )
    start = window.to_file_time(segment.start)
    end = max(window.to_file_time(segment.end, is_end=True), start)
    return Segment(start, end, segment.text, words, segment.avg_logprob, segment.no_speech_prob)


def _transcript(
    segments: list[Segment],
    audio: np.ndarray,
    language: str,
    compute_seconds: float,
    backend: Backend,
    options: DecodeOptions,
) -> Transcript:
    segments.sort(key=lambda s: s.start)
    duration = audio.size / SAMPLE_RATE
    segments = [_clamp(s, duration) for s in segments]
    return Transcript(
        text=" ".join(s.text for s in segments).strip(),
        segments=tuple(segments),
        words=tuple(w for s in segments for w in s.words),
        language=language,
        duration=duration,
        speech_seconds=sum(s.end - s.start for s in segments),
        compute_seconds=max(compute_seconds, 0.0),
        model=backend.model,
        backend=backend.name,
        options=options,
    )


def _clamp(segment: Segment, duration: float) -> Segment:
    """Keep every time inside the audio and every word inside its segment (invariants the tests check)."""
    start = min(max(segment.start, 0.0), duration)
    end = min(max(segment.end, start), duration)
    words = []
    for w in segment.words:
        ws = min(max(w.start, start), end)
        words.append(Word(w.word, ws, min(max(w.end, ws), end), w.probability))
    return Segment(start, end, segment.text, tuple(words), segment.avg_logprob, segment.no_speech_prob)
