"""Typed results and options shared by every stage of the engine.

Results are frozen dataclasses (never bare tuples or dicts across modules) so that a caller can rely on the
field names, and a ``Transcript`` records the options that produced it, which makes every result reproducible.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass, field
from typing import Any

BACKENDS = ("faster-whisper", "transformers")
COMPRESSION_RATIO_THRESHOLD = 2.4  # Whisper's: text that compresses more than this is a repetition loop
LOGPROB_THRESHOLD = -1.0  # Whisper's: a mean token log probability below this is decoded again (or silence)
# Whisper's language codes (its tokenizer's, both backends; yue since large-v3). A code outside them used to fail
# every file of a batch, or every row of a validation run with a traceback, once a window reached the tokenizer.
WHISPER_LANGUAGES = tuple(
    "af am ar as az ba be bg bn bo br bs ca cs cy da de el en es et eu fa fi fo fr gl gu ha haw he hi hr ht hu hy id "
    "is it ja jw ka kk km kn ko la lb ln lo lt lv mg mi mk ml mn mr ms mt my ne nl nn no oc pa pl ps pt ro ru sa sd "
    "si sk sl sn so sq sr su sv sw ta te tg th tk tl tr tt uk ur uz vi yi yo zh yue".split()
)
LANGUAGES_HINT = "python -m asr languages lists them"  # where a refused code's message sends the user


def language_code(code: str | None) -> str | None:
    """``code`` as Whisper spells its codes, lower case without spaces: ``EN`` and ``En`` were refused as unknown
    languages. Applied by the options themselves (:class:`DecodeOptions`, the validation run's), so every caller
    stores and compares one spelling."""
    return code.strip().lower() if isinstance(code, str) else code


@dataclass(frozen=True)
class Word:
    word: str  # the word as the model spelled it, with its leading space
    start: float  # seconds from the start of the audio
    end: float  # seconds from the start of the audio
    probability: float  # the model's confidence in the word's tokens, 0..1


@dataclass(frozen=True)
class Segment:
    start: float  # seconds from the start of the audio
    end: float  # seconds from the start of the audio
    text: str  # the segment's text, stripped
    words: tuple[Word, ...] = ()  # empty unless word timestamps were asked for
    avg_logprob: float = 0.0  # mean token log probability of the decoded window
    no_speech_prob: float = 0.0  # the model's probability that the window holds no speech


@dataclass(frozen=True)
class DecodeOptions:
    """How to decode. Calls take ``options`` plus overrides applied with :func:`dataclasses.replace`."""

    language: str | None = None  # None: "en" for English-only models, detected for multilingual ones
    task: str = "transcribe"  # "transcribe" or "translate" (multilingual models only)
    beam_size: int = 1  # 1 is greedy; 5 is Whisper's default beam search
    temperature: float = 0.0  # sampling temperature; 0 decodes deterministically
    word_timestamps: bool = True  # cross-attention word alignment; needed by streaming and the UI
    initial_prompt: str | None = None  # text fed as previous context (the streaming policy feeds back commits)
    batch_size: int = 8  # windows per model call in long-form transcription
    vad_filter: bool = True  # drop non-speech before decoding (stops hallucinations on silence and noise)
    no_speech_threshold: float = 0.6  # with logprob_threshold, Whisper's rule to drop a window as silence
    # below logprob_threshold a window is decoded again hotter, or dropped as silence when no_speech is high
    logprob_threshold: float = LOGPROB_THRESHOLD
    # text compressing better than compression_ratio_threshold is a loop: decoded again hotter (None: never)
    compression_ratio_threshold: float | None = COMPRESSION_RATIO_THRESHOLD
    fallback_temperatures: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)  # Whisper's schedule for those retries
    timestamp_tokens: bool = True  # Whisper's timestamp mode (both backends), with its seek rule: a window whose
    # decode ends at a timestamp before its end has the rest decoded (asr/backends/seek.py). On the real-speech dev
    # set 4.6% WER against 5.1% with <|notimestamps|> (faster-whisper). Words and segments come from the alignment.
    long_timestamp_tokens: bool = False  # full-context transcription: timestamp mode also on recordings of two
    # minutes or more (asr.transcribe.LONG_FORM_SECONDS). False (the default): they decode as faster-whisper's
    # BatchedInferencePipeline does, with <|notimestamps|> and windows packed from the VAD's sentences (VadOptions.
    # for_long_form), and their transcripts' options say so. Against timestamp mode with 2 s pauses (README
    # Performance): 13-minute dev file 5.4% -> 4.6% WER (the pipeline's), joined dev file 3.7% -> 3.6%, held-out
    # prompts joined 1.9% both ways and 4.1% -> 4.4%, at 1.07x the pipeline's throughput instead of 0.97x.
    condition_words: int = 0  # full-context transcription: the last this-many words of a window's text are the
    # prompt of the next window of its recording, as Whisper conditions on previous text, unless that window was
    # not decoded cleanly or repeats itself (see asr.transcribe.condition_prompt). 0 (the default): every window on
    # its own. 15 helps the joined real-speech dev file (3.74% -> 3.02% WER) but not the held-out prompts joined the
    # same way (1.94% -> 3.16%; 14 minutes of them 4.15% -> 3.79%: 11 errors more of 3081), so it is off unless asked.
    condition_run: int = 8  # ... in runs of at most this many windows: each run starts unprompted, so the runs of
    # one long file decode side by side in batches, and a misheard word never spreads further than its run
    seed: int = 0  # run seed: a sampled retry of a window is seeded from it and the window's own audio
    max_tokens_per_second: float | None = None  # cap on generated tokens: this many per second of the window's
    # audio, plus 16 (None: Whisper's 448-token context). A looping window then stops after a few dozen tokens
    # instead of spending seconds on 448; streaming sets it, where one slow call delays every session.
    encoder_seconds: float = 10.0  # least audio the encoder sees per window. Whisper pads every window to 30 s;
    # here a batch is padded to its longest window plus 2 s, and to at least this. Short clips encode 3x faster
    # with the same WER on the built-in set (35.3% both ways; noisy sets no worse), long files are unchanged
    # (their windows are ~30 s). 30 restores Whisper's padding. Both backends pad alike (asr.backends.base).
    # Full-context transcription raises it to 30 on multilingual models (asr.transcribe.MULTILINGUAL_ENCODER_SECONDS).

    def __post_init__(self) -> None:
        object.__setattr__(self, "language", language_code(self.language))  # "EN" is "en"

    def validate(self) -> DecodeOptions:
        """Reject bad values and combinations with a message that quotes the value."""
        if self.language and self.language not in WHISPER_LANGUAGES:  # "" is None (detect), as the backends read it
            raise ValueError(
                f"language {self.language!r} is not a Whisper language code (en, fr, de, es, zh, ...; {LANGUAGES_HINT})"
            )
        if self.task not in ("transcribe", "translate"):
            raise ValueError(f"task must be 'transcribe' or 'translate', not {self.task!r}")
        if not isinstance(self.beam_size, int) or self.beam_size < 1:
            raise ValueError(f"beam_size must be an integer >= 1, not {self.beam_size!r}")
        if not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, not {self.batch_size!r}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, not {self.temperature!r}")
        if not 1.0 <= self.encoder_seconds <= 30.0:
            raise ValueError(f"encoder_seconds must be between 1 and 30, not {self.encoder_seconds!r}")
        if self.max_tokens_per_second is not None and not self.max_tokens_per_second > 0:
            raise ValueError(f"max_tokens_per_second must be > 0 or None, not {self.max_tokens_per_second!r}")
        if not isinstance(self.condition_words, int) or self.condition_words < 0:
            raise ValueError(f"condition_words must be an integer >= 0, not {self.condition_words!r}")
        if not isinstance(self.condition_run, int) or self.condition_run < 1:
            raise ValueError(f"condition_run must be an integer >= 1, not {self.condition_run!r}")
        if any(t <= 0 for t in self.fallback_temperatures):
            raise ValueError(f"fallback temperatures must be > 0, not {self.fallback_temperatures!r}")
        return self

    def replace(self, **changes: Any) -> DecodeOptions:
        return dataclasses.replace(self, **changes).validate()

    def max_new_tokens(self, seconds: float) -> int | None:
        """Tokens a window of ``seconds`` may generate (None: no cap beyond the model's context)."""
        if self.max_tokens_per_second is None:
            return None
        return int(seconds * self.max_tokens_per_second) + 16


@dataclass(frozen=True)
class Transcript:
    text: str  # the whole transcript, segments joined with single spaces
    segments: tuple[Segment, ...]
    words: tuple[Word, ...]  # every segment's words in order (empty without word timestamps)
    language: str
    duration: float  # seconds of audio given
    speech_seconds: float  # seconds the VAD judged to be speech (what was decoded)
    compute_seconds: float  # wall seconds spent transcribing, decoding of the file excluded
    model: str  # the model name or path it was asked for
    backend: str  # "faster-whisper" or "transformers"
    options: DecodeOptions = field(default_factory=DecodeOptions)
    vad: Any = None  # the asr.vad.VadOptions that found the speech (None: no VAD), recorded with the decoding
    windows_retried: int = 0  # windows decoded again by the temperature fallback
    windows_split: int = 0  # windows decoded again in halves because their words covered too little speech
    windows_conditioned: int = 0  # windows prompted with the text of the window before them (condition_words)

    @property
    def rtfx(self) -> float:
        """Speed as audio seconds per compute second (higher is faster; the Open ASR Leaderboard's RTFx); inf for
        an instant result."""
        return self.duration / self.compute_seconds if self.compute_seconds > 0 else float("inf")

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape the CLI prints and the store keeps."""
        return {
            "text": self.text,
            "words": [dataclasses.asdict(w) for w in self.words],
            "segments": [{k: v for k, v in dataclasses.asdict(s).items() if k != "words"} for s in self.segments],
            "language": self.language,
            "duration": self.duration,
            "speech_seconds": self.speech_seconds,
            "compute_seconds": self.compute_seconds,
            "rtfx": self.rtfx,
            "model": self.model,
            "backend": self.backend,
            "options": dataclasses.asdict(self.options),
            "vad": dataclasses.asdict(self.vad) if self.vad is not None else None,
            "windows_retried": self.windows_retried,
            "windows_split": self.windows_split,
            "windows_conditioned": self.windows_conditioned,
        }


def compression_ratio(text: str) -> float:
    """Bytes over zlib-compressed bytes: Whisper's test for a decoder stuck repeating itself.

    Above :data:`COMPRESSION_RATIO_THRESHOLD` the text is a loop: the decoder retries it hotter, and scoring
    flags it as a runaway.
    """
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


SENTENCE_ENDS = (".", "?", "!", "。", "？", "！")


def split_sentences(words: tuple[Word, ...]) -> list[tuple[Word, ...]]:
    """Split after every word that ends a sentence, so segments and subtitles stay sentence-sized.

    Both backends decode a window without timestamp tokens (more accurate and faster, as faster-whisper's batched
    pipeline does), so segments are rebuilt from the aligned words.
    """
    sentences: list[tuple[Word, ...]] = []
    current: list[Word] = []
    for w in words:
        current.append(w)
        if w.word.rstrip().endswith(SENTENCE_ENDS):
            sentences.append(tuple(current))
            current = []
    if current:
        sentences.append(tuple(current))
    return sentences
