"""Full-context transcription of audio of any length, on any backend.

The VAD finds speech, speech is packed into <= 30 s windows, and windows are decoded in batches. This is how
both backends get past Whisper's 30-second context (the recipe's pipeline fails there), and why silence and
faint noise give an empty transcript rather than an invented sentence. Several recordings can be transcribed
together (:func:`transcribe_many`) so that short utterances share batches, which is what evaluation needs.
A window's text never depends on its batch-mates (see :mod:`asr.backends.base`), so a recording gives the same
transcript alone, in any batch and on every run.

Windows of one recording can be conditioned on the text before them, as Whisper's loop is (``condition_words``;
off by default: it helped the joined dev file but costs the held-out prompts joined 11 errors more of 3081 words,
see docs/performance-log.md, "Decoding chosen on real speech"). When on, the words "caller" and "star" come out right once the window before said them,
and a window waits for the one before, so a recording's windows go in runs of ``condition_run``: run k's n-th window is decoded in
round n together with the n-th window of every other run (of this and every other recording), which keeps the
batches full; each run starts unprompted, and a window that needed the fallback, was split, or decoded to nothing
prompts nothing (see :func:`condition_prompt`); nor does a window whose text repeats itself, and a prompted window
whose text fails Whisper's compression test is decoded again without its prompt (a prompt leads a window whose
speech really repeats itself astray: :func:`asr.fallback.repeats_itself`).
Which run a window is in depends only on its recording's own windows and the options, so the text never depends on
batch size or batch-mates.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from asr.audio import SAMPLE_RATE, AudioSource, load_audio
from asr.backends import DEFAULT_BACKEND, Backend, get_backend
from asr.fallback import repeats_itself, undercovered, with_fallback
from asr.models import default_model
from asr.results import DecodeOptions, Segment, Transcript, Word
from asr.vad import (
    MAX_WINDOW_SECONDS,
    SpeechSpan,
    VadOptions,
    Window,
    group_spans,
    make_window,
    speech_spans_many,
    split_group,
    with_lead_in,
)

logger = logging.getLogger(__name__)

MULTILINGUAL_ENCODER_SECONDS = 30.0  # multilingual models encode Whisper's full 30 s per window. whisper-base on 15
# dev prompts each of es/fr/it/ru: on the Intel machines a 15 s floor matched the library (17.3% against 17.4%), but
# on the AMD EPYC one it gave 20.1% against the library's 18.5%, French +3.3 and Russian +1.8 points; 30 s gave 18.0%
# (es 35.4, fr 11.6, it 14.7 = the library's; ru 12.5 against 14.7) at 1.8x the CPU of 15 s, still under the
# library's. English-only models keep DecodeOptions.encoder_seconds (chosen on English)
LONG_FORM_SECONDS = 120.0  # recordings at least this long decode with <|notimestamps|> when
# DecodeOptions.long_timestamp_tokens is off (docs/performance-log.md, "Decoding chosen on real speech"); the one dev prompt of two windows
# (priv-callee-options, 31 s) lost words without timestamp tokens (dev WER 4.5% -> 4.9%), so shorter ones never do
ProgressCallback = Callable[[float, float], None]  # (audio seconds done, audio seconds in all); may raise to cancel


@dataclass(frozen=True)
class _Job:
    index: int  # which recording
    spans: tuple[SpeechSpan, ...]  # the speech the window holds, in file samples
    key: int  # the job's number, in recording and window order
    after: int | None  # the job before it in its run, whose text prompts it (None: the first of its run)


@dataclass(frozen=True)
class DecodedWindow:
    """One window as full-context transcription decoded it (what :func:`condition_prompt` reads)."""

    segments: list[Segment]  # in file time
    language: str
    retried: bool  # decoded again by the temperature fallback
    split: bool  # decoded again in halves because its words covered too little of its speech
    avg_logprob: float = 0.0  # mean token log probability of the decode kept
    conditioned: bool = False  # the decode kept was prompted by the window before (condition_words)


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
    finished: Callable[[int, Transcript], None] | None = None,
) -> list[Transcript]:
    """Transcribe several recordings, sharing model batches between them. Results keep the input order.
    ``finished(index, transcript)`` is called as each recording's last window is decoded (``compute_seconds``
    shares out the time so far), so a caller whose ``progress`` raises to stop keeps what was done."""
    vad = vad or VadOptions()
    backend = backend or get_backend(model or default_model(), backend_name)
    options = _for_model((options or DecodeOptions()).validate(), backend)
    arrays = [load_audio(a) for a in audios]
    started = time.perf_counter()
    state, rounds = _State(len(arrays)), _rounds(arrays, options, vad)
    left = Counter(job.index for jobs in rounds for job in jobs)  # windows of each recording still to decode

    def build(i: int) -> Transcript:
        overhead = (time.perf_counter() - started - sum(state.compute)) / max(len(arrays), 1)  # VAD, windows, ...
        options_i, vad_i = _recording_options(arrays[i], options), _recording_vad(arrays[i], options, vad)
        return _transcript(arrays[i], i, state, overhead, backend, options_i, vad_i)

    def window_done(i: int) -> None:
        left[i] -= 1
        if finished is not None and left[i] <= 0:  # (< 0: a recording without speech, called before any batch)
            finished(i, build(i))

    for i in (i for i in range(len(arrays)) if not left[i]):
        window_done(i)
    _run_rounds(backend, arrays, rounds, options, state, progress, window_done)
    return [build(i) for i in range(len(arrays))]


def _recording_options(audio: np.ndarray, options: DecodeOptions) -> DecodeOptions:
    """How a recording's windows decode: one of :data:`LONG_FORM_SECONDS` or more without timestamp tokens when
    ``options.long_timestamp_tokens`` is off (measured on the real-speech long files, see docs/performance-log.md)."""
    if _long(audio) and options.timestamp_tokens and not options.long_timestamp_tokens:
        return options.replace(timestamp_tokens=False)
    return options


def _recording_vad(audio: np.ndarray, options: DecodeOptions, vad: VadOptions) -> VadOptions:
    """How a recording's speech is found: a long one decoded without timestamp tokens is searched as the batched
    pipeline searches it (:meth:`VadOptions.for_long_form`: its windows pack full from sentences), others with
    ``vad`` (its pause rule was chosen on the real-speech prompts)."""
    return vad.for_long_form() if _long(audio) and not _recording_options(audio, options).timestamp_tokens else vad


def _long(audio: np.ndarray) -> bool:
    return audio.size >= LONG_FORM_SECONDS * SAMPLE_RATE


def _rounds(arrays: list[np.ndarray], options: DecodeOptions, vad: VadOptions) -> list[list[_Job]]:
    """Every recording's windows as jobs, in rounds: round n holds the n-th window of every run (a run is
    ``condition_run`` consecutive windows of a recording; without conditioning, every window is in round 0)."""
    rounds: list[list[_Job]] = [[]]
    key = 0
    for i, windows in enumerate(_window_spans(arrays, options, vad)):
        for n, spans in enumerate(windows):
            step = n % options.condition_run if options.condition_words else 0
            if step == len(rounds):
                rounds.append([])
            rounds[step].append(_Job(i, spans, key, key - 1 if step else None))
            key += 1
    return rounds


def _run_rounds(
    backend: Backend,
    arrays: list[np.ndarray],
    rounds: list[list[_Job]],
    options: DecodeOptions,
    state: _State,
    progress: ProgressCallback | None,
    window_done: Callable[[int], None] = lambda index: None,
) -> None:
    """Decode the rounds in order, in batches, each window prompted by the one before it in its run."""
    total = sum(a.size for a in arrays) / SAMPLE_RATE
    done = 0.0
    prompts: dict[int, str | None] = {}  # job key -> what it prompts the next window of its run with
    for jobs in rounds:
        for start in range(0, len(jobs), options.batch_size):
            batch = jobs[start : start + options.batch_size]
            # Windows hold copies of the speech: an hour of it is ~200 MB, so each batch's windows are made only
            # when that batch is decoded, then dropped.
            windows = [make_window(arrays[j.index], j.spans) for j in batch]
            asked = [prompts.pop(j.after, None) if j.after is not None else None for j in batch]
            t0 = time.perf_counter()
            each = [_recording_options(arrays[j.index], options) for j in batch]
            decoded = _decode(backend, [arrays[j.index] for j in batch], windows, options, asked, each)
            spent = time.perf_counter() - t0
            batch_audio = sum(w.seconds for w in windows) or 1.0
            for job, window, result in zip(batch, windows, decoded):
                prompts[job.key] = condition_prompt(result, options)
                state.add(job.index, result, window.seconds, spent * window.seconds / batch_audio)
                done += window.seconds
                window_done(job.index)
            if progress:
                progress(min(done, total), total)
    if progress:
        progress(total, total)


def condition_prompt(decoded: DecodedWindow, options: DecodeOptions) -> str | None:
    """The prompt a window gives the next window of its run: its last ``options.condition_words`` words.

    None (the next window decodes unprompted) when conditioning is off or when this window was not decoded
    cleanly: retried by the fallback (Whisper resets its prompt after a hot retry too), decoded in halves, empty,
    or repeating itself (:func:`asr.fallback.repeats_itself`), so that a misheard, looping or repeating window does
    not lead the next one astray."""
    text = " ".join(s.text for s in decoded.segments)
    words = text.split()
    if not options.condition_words or decoded.retried or decoded.split or not words:
        return None
    if repeats_itself(text, options):
        return None
    return " ".join(words[-options.condition_words :])


@dataclass
class _State:
    """What the batches have produced so far, per recording."""

    n: int
    segments: list[list[Segment]] = field(default_factory=list)
    languages: list[dict[str, float]] = field(default_factory=list)  # seconds of decoded speech per language
    compute: list[float] = field(default_factory=list)
    retried: list[int] = field(default_factory=list)
    split: list[int] = field(default_factory=list)
    conditioned: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.segments = [[] for _ in range(self.n)]
        self.languages = [{} for _ in range(self.n)]
        self.compute, self.retried, self.split = [0.0] * self.n, [0] * self.n, [0] * self.n
        self.conditioned = [0] * self.n

    def add(self, index: int, result: DecodedWindow, seconds: float, compute: float) -> None:
        self.segments[index].extend(result.segments)
        if result.segments:
            seen = self.languages[index]
            seen[result.language] = seen.get(result.language, 0.0) + seconds
        self.compute[index] += compute
        self.retried[index] += result.retried
        self.split[index] += result.split
        self.conditioned[index] += result.conditioned


def _decode(
    backend: Backend,
    files: list[np.ndarray],
    windows: list[Window],
    options: DecodeOptions,
    prompts: list[str | None] | None = None,
    each: list[DecodeOptions] | None = None,
) -> list[DecodedWindow]:
    """One batched call per prompt and options (each window with its prompt, None: ``options.initial_prompt``,
    and its options, ``each``, default ``options``), Whisper's fallback for the windows that need it, and every
    window whose words cover much less than its speech decoded again in halves, unprompted (kept when the halves
    give more words). A prompted window whose text repeats itself is decoded again without its prompt."""
    audio = [w.audio for w in windows]
    each = each or [options] * len(windows)
    prompts = prompts or [None] * len(windows)
    results, retried = _with_fallback(backend, audio, each, [p or o.initial_prompt for p, o in zip(prompts, each)])
    conditioned = _unmisled(backend, audio, each, prompts, results, retried)
    out = []
    for file, window, result, again, opts, cond in zip(files, windows, results, retried, each, conditioned):
        segments = [_to_file_time(s, window) for s in result.segments]
        halves = split_group(file, window.spans) if undercovered(result, window.seconds) else []
        split = False
        if len(halves) == 2:
            parts = _decode(backend, [file, file], [make_window(file, h) for h in halves], opts)
            whole = [s for p in parts for s in p.segments]
            if _word_count(whole) > _word_count(segments):
                segments, split = whole, True
                logger.info("a %.1f s window ended early; decoded again in halves", window.seconds)
        out.append(DecodedWindow(segments, result.language, again, split, result.avg_logprob, cond and not split))
    return out


def _unmisled(
    backend: Backend,
    audio: list[np.ndarray],
    each: list[DecodeOptions],
    prompts: list[str | None],
    results: list,
    retried: list[bool],
) -> list[bool]:
    """Every window whose prompted decode repeats itself (:func:`asr.fallback.repeats_itself`) decoded again
    without its prompt, in place in ``results`` and ``retried``; which windows keep a prompted decode."""
    misled = [
        i for i, (p, r, o) in enumerate(zip(prompts, results, each)) if p and not r.silent and repeats_itself(r.text, o)
    ]
    if misled:
        plain = [each[i] for i in misled]
        again, hot = _with_fallback(backend, [audio[i] for i in misled], plain, [o.initial_prompt for o in plain])
        for i, r, a in zip(misled, again, hot):
            results[i], retried[i] = r, a
        logger.info("%d windows misled by their prompt decoded again without it", len(misled))
    return [bool(p) and i not in misled for i, p in enumerate(prompts)]


def _with_fallback(
    backend: Backend, audio: list[np.ndarray], each: list[DecodeOptions], prompts: list[str | None]
) -> tuple[list, list[bool]]:
    """Whisper's fallback on the windows of each prompt and options together (a retry keeps its window's prompt,
    as in Whisper's loop); a window's result never depends on the windows decoded beside it."""
    results: list = [None] * len(audio)
    retried = [False] * len(audio)
    keys = list(zip(prompts, each))
    for prompt, options in dict.fromkeys(keys):
        idx = [i for i, key in enumerate(keys) if key == (prompt, options)]
        asked = options if prompt == options.initial_prompt else options.replace(initial_prompt=prompt)
        kept, again = with_fallback(backend, [audio[i] for i in idx], asked)
        for i, r, a in zip(idx, kept, again):
            results[i], retried[i] = r, a
    return results, retried


def _for_model(options: DecodeOptions, backend: Backend) -> DecodeOptions:
    """The options as this backend's model decodes them: on a multilingual model the encoder sees at least
    :data:`MULTILINGUAL_ENCODER_SECONDS` per window (the recorded options say so)."""
    if backend.multilingual and options.encoder_seconds < MULTILINGUAL_ENCODER_SECONDS:
        return options.replace(encoder_seconds=MULTILINGUAL_ENCODER_SECONDS)
    return options


def _word_count(segments: list[Segment]) -> int:
    return sum(len(s.text.split()) for s in segments)


def _language(seconds: dict[str, float], options: DecodeOptions, backend: Backend) -> str:
    """A recording's language: the one most of its decoded speech was detected in (ties: the first)."""
    if seconds:
        return max(seconds, key=lambda lang: seconds[lang])
    return options.language or ("en" if not backend.multilingual else "")


def _window_spans(
    arrays: list[np.ndarray], options: DecodeOptions, vad: VadOptions
) -> list[list[tuple[SpeechSpan, ...]]]:
    """Each recording's windows (its speech spans grouped); the VAD runs on every recording at once."""
    if options.vad_filter:
        each = [_recording_vad(a, options, vad) for a in arrays]
        return [group_spans(with_lead_in(spans, o)) for spans, o in zip(speech_spans_many(arrays, each), each)]
    step = int(MAX_WINDOW_SECONDS * SAMPLE_RATE)
    return [group_spans([SpeechSpan(s, min(s + step, a.size)) for s in range(0, a.size, step)]) for a in arrays]


def _to_file_time(segment: Segment, window: Window) -> Segment:
    words = tuple(
        Word(w.word, window.to_file_time(w.start), window.to_file_time(w.end, is_end=True), w.probability)
        for w in segment.words
    )
    start = window.to_file_time(segment.start)
    end = max(window.to_file_time(segment.end, is_end=True), start)
    return Segment(start, end, segment.text, words, segment.avg_logprob, segment.no_speech_prob)


def _transcript(
    audio: np.ndarray,
    index: int,
    state: _State,
    overhead: float,
    backend: Backend,
    options: DecodeOptions,
    vad: VadOptions,
) -> Transcript:
    duration = audio.size / SAMPLE_RATE
    segments = [_clamp(s, duration) for s in sorted(state.segments[index], key=lambda s: s.start)]
    return Transcript(
        text=" ".join(s.text for s in segments).strip(),
        segments=tuple(segments),
        words=tuple(w for s in segments for w in s.words),
        language=_language(state.languages[index], options, backend),
        duration=duration,
        speech_seconds=sum(s.end - s.start for s in segments),
        compute_seconds=max(state.compute[index] + overhead, 0.0),
        model=backend.model,
        backend=backend.name,
        options=options,
        vad=vad if options.vad_filter else None,
        windows_retried=state.retried[index],
        windows_split=state.split[index],
        windows_conditioned=state.conditioned[index],
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
