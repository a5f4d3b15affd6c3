"""faster-whisper (CTranslate2) backend: int8 on CPU, float16 on CUDA; the fast default.

A batch of windows is encoded in one call, each window's language is detected from that encoding (multilingual
models, no language forced), and the windows of one language are generated together in one batched call, each
with its own prompt and forced prefix (which lets the streaming scheduler batch windows of several sessions).
Words are then aligned by the model's cross-attention (faster-whisper's ``find_alignment``). Nothing a window
gets depends on its batch-mates: batches are grouped by padded length and language, word timing is computed
per window, and fallback retries are greedy, not sampled (see ``_retry_settings``: CTranslate2's sampler cannot
be seeded per call), so a retry's tokens are the same alone or beside other windows; the fallback decodes them
from the batch's kept encoder output (:mod:`asr.backends.encodings`). Windows decode in Whisper's timestamp mode, and a window
whose decode stopped at a timestamp before its end has the rest decoded in a follow-up batch, as Whisper's own
loop seeks on (:mod:`asr.backends.seek`).
The faster-whisper internals used live in :mod:`asr.compat`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np

from asr import compat
from asr.audio import SAMPLE_RATE
from asr.backends.base import (
    LANGUAGE_SURE,
    MEL_FRAMES,
    BackendError,
    EncodedWindows,
    WindowResult,
    cpu_cores,
    encoder_frames,
    one_blas_thread,
    pick_device,
)
from asr.backends.encodings import Encoded
from asr.backends.seek import applies, seek_point
from asr.models import ResolvedModel, converted_dir
from asr.results import DecodeOptions, Segment, Word, split_sentences

logger = logging.getLogger(__name__)

try:
    from faster_whisper import WhisperModel
    from faster_whisper.tokenizer import Tokenizer
except ImportError as exc:  # pragma: no cover - exercised only without the package
    raise BackendError("the faster-whisper backend needs faster-whisper: pip install faster-whisper") from exc

PREPEND_PUNCTUATION = "\"'“¿([{-"  # faster-whisper's defaults: punctuation merged into the next word
APPEND_PUNCTUATION = "\"'.。,，!！?？:：”)]}、"  # ... and into the previous word
RETRY_NO_REPEAT_NGRAM = 3  # a fallback retry never repeats a 3-gram (see _retry_settings)


class FasterWhisperBackend:
    name = "faster-whisper"

    def __init__(
        self,
        model: ResolvedModel,
        device: str = "auto",
        compute_type: str | None = None,
        cpu_threads: int | None = None,
    ) -> None:
        compat.faster_whisper_parts()  # fail here, with the version, if its private calls changed
        one_blas_thread()  # the features, hence the text, the same in every process (see its docstring)
        self.model = model.name
        self.device = pick_device(device, "ctranslate2")
        self.compute_type = compute_type or ("float16" if self.device == "cuda" else "int8")
        try:  # resolving a hub id may download or convert: its failures are load failures too
            path = _ct2_path(model)
            self._whisper = WhisperModel(
                path, device=self.device, compute_type=self.compute_type, cpu_threads=cpu_threads or cpu_cores()
            )
        except Exception as exc:
            raise BackendError(f"cannot load model {model.name!r} with faster-whisper: {exc}") from exc
        self.multilingual = bool(self._whisper.model.is_multilingual)
        any_language = Tokenizer(self._whisper.hf_tokenizer, self.multilingual, task="transcribe", language="en")
        self._suppress = list(compat.fw_suppressed_tokens(any_language))  # the same for every language
        self._text_tokenizer = any_language  # text tokens are the same in every language (prompt lengths)

    @property
    def whisper_model(self) -> WhisperModel:
        """The library object, for benchmarks that call faster-whisper directly."""
        return self._whisper

    def transcribe_windows(
        self,
        windows: Sequence[np.ndarray],
        options: DecodeOptions,
        prompts: Sequence[str | None] | None = None,
        prefixes: Sequence[str | None] | None = None,
    ) -> list[WindowResult]:
        prompts = list(prompts) if prompts is not None else [options.initial_prompt] * len(windows)
        prefixes = list(prefixes) if prefixes is not None else [None] * len(windows)
        if options.temperature > 0 and len(windows) > 1:  # a fallback retry: one window at a time
            return [self.transcribe_windows([w], options, [p], [f])[0] for w, p, f in zip(windows, prompts, prefixes)]
        return self._encoded(windows, options, prompts).decode(options, prefixes=prefixes)

    def encode_windows(self, windows: Sequence[np.ndarray], options: DecodeOptions) -> EncodedWindows:
        """The windows' features, encoder outputs and languages, kept to decode them again without encoding."""
        return self._encoded(windows, options, [options.initial_prompt] * len(windows))

    def _encoded(self, windows: Sequence[np.ndarray], options: DecodeOptions, prompts: list[str | None]) -> Encoded:
        """Windows grouped by padded length and prompt length, each group encoded in one call (and split by
        language); a window whose language was unclear on a short encoding is encoded again at 30 s."""
        feats = [self._whisper.feature_extractor(np.asarray(w, np.float32))[..., :-1] for w in windows]
        frames = [_encoder_frames(f, options.encoder_seconds) for f in feats]
        keys = [(n, self._prompt_length(p)) for n, p in zip(frames, prompts)]
        groups: list[tuple[list[int], str, object]] = []
        pending = [(n, [i for i, key in enumerate(keys) if key == (n, k)]) for n, k in sorted(set(keys))]
        unsure: list[int] = []  # windows whose language was unclear on a short encoding: encoded at 30 s next
        while pending:
            target, group = pending.pop(0)
            groups += self._encode(feats, group, target, options, unsure)
            if not pending and unsure:  # by prompt length again, on Whisper's 30 s encoding (never deferred)
                lengths = sorted({keys[i][1] for i in unsure})
                pending = [(MEL_FRAMES, [i for i in unsure if keys[i][1] == k]) for k in lengths]
                unsure = []
        return Encoded(self, list(windows), prompts, [f.shape[-1] for f in feats], groups)

    def _prompt_length(self, prompt: str | None) -> int:
        """Tokens before ``<|startoftranscript|>``. CTranslate2 generates windows together only when that token
        sits at one position in all of them, so windows are grouped by it (streaming sessions with committed
        texts of different lengths, batched in one scheduler round, failed with "requires the
        <|startoftranscript|> token to be at the same position in all batches")."""
        if not prompt or not prompt.strip():
            return 0
        tokens = len(self._text_tokenizer.encode(" " + prompt.strip()))
        return 1 + min(tokens, self._whisper.max_length // 2 - 1)  # <|startofprev|> + what get_prompt keeps

    def _encode(
        self, feats: list[np.ndarray], group: list[int], frames: int, options: DecodeOptions, unsure: list[int]
    ) -> Iterator[tuple[list[int], str, object]]:
        """(windows, language, encoder output) per language of the group, in a fixed (sorted) order.

        The group is encoded once; only a group of several languages is encoded again per language, since the
        language token starts the prompt and the alignment of every window generated together. On an encoding
        shorter than Whisper's 30 s, a window whose language is unclear (see :data:`LANGUAGE_SURE`) is not
        yielded but added to ``unsure``, for the caller to encode at 30 s, where detection is Whisper's own.
        """
        encoded = compat.fw_encode(self._whisper, np.stack([compat.fw_pad_or_trim(feats[i], frames) for i in group]))
        languages, sure = self._languages(encoded, options, len(group))
        if frames < MEL_FRAMES and not all(sure):
            unsure += [i for i, ok in zip(group, sure) if not ok]
            languages = [lang if ok else "" for lang, ok in zip(languages, sure)]
        for language in sorted(set(languages) - {""}):
            idx = [i for i, lang in zip(group, languages) if lang == language]
            if len(idx) < len(group):
                sub = np.stack([compat.fw_pad_or_trim(feats[i], frames) for i in idx])
                yield idx, language, compat.fw_encode(self._whisper, sub)
            else:
                yield idx, language, encoded

    def _languages(self, encoded, options: DecodeOptions, n: int) -> tuple[list[str], list[bool]]:
        """Each window's language, and whether it is clear: English-only models are "en"; multilingual ones
        use ``options.language`` or detect each window's (clear when its probability is >= LANGUAGE_SURE)."""
        if not self.multilingual:
            return ["en"] * n, [True] * n
        if options.language:
            return [options.language] * n, [True] * n
        detected = [probs[0] for probs in self._whisper.model.detect_language(encoded)]
        return [token[2:-2] for token, _ in detected], [p >= LANGUAGE_SURE for _, p in detected]

    def _decode(
        self,
        encoded,
        windows: list[np.ndarray],
        language: str,
        prompts: list[str | None],
        prefixes: list[str | None],
        frames: list[int],
        options: DecodeOptions,
        generated: list[tuple[list[int], float, float]] | None = None,
    ) -> tuple[list[tuple[WindowResult, int | None]], list[tuple[list[int], float, float]]]:
        """Each window's result, and where its decode stopped when Whisper's rule says to decode on from there;
        and the generation it came from (given ``generated``, an earlier one of these windows, it is not redone)."""
        tokenizer = Tokenizer(self._whisper.hf_tokenizer, self.multilingual, task=options.task, language=language)
        starts = [
            compat.fw_prompt(
                self._whisper,
                tokenizer,
                tokenizer.encode(" " + p.strip()) if p and p.strip() else [],
                prefix=f.strip() if f and f.strip() else None,
                timestamps=options.timestamp_tokens,
            )
            for p, f in zip(prompts, prefixes)
        ]
        generated = generated or self._generate(encoded, starts, windows, options)
        cuts = [
            seek_point(g[0], tokenizer.timestamp_begin, w.size) if applies(options, f) else (g[0], None)
            for g, w, f in zip(generated, windows, prefixes)
        ]
        # CTranslate2 returns the forced prefix as the start of each sequence, so text and words cover it
        tokens = [[t for t in kept if t < tokenizer.eot] for kept, _ in cuts]
        words: list[tuple[Word, ...]] = [()] * len(windows)
        if options.word_timestamps and any(tokens):
            aligned = compat.fw_align(self._whisper, tokenizer, tokens, encoded, frames)
            words = [_timed_words(a) for a in aligned]
        results = []
        for (_, avg_logprob, no_speech), toks, ws, window, (_, seek) in zip(generated, tokens, words, windows, cuts):
            text = tokenizer.decode(toks).strip()
            silent = no_speech > options.no_speech_threshold and avg_logprob < options.logprob_threshold
            seconds = (seek or window.size) / SAMPLE_RATE  # what the kept tokens cover
            segments = () if silent else _segments(text, ws, seconds, avg_logprob, no_speech)
            results.append(WindowResult(segments, language, avg_logprob, no_speech, text, options.temperature, silent))
        return [(r, None if r.silent else seek) for r, (_, seek) in zip(results, cuts)], generated

    def _generate(
        self, encoded, starts: list[list[int]], windows: list[np.ndarray], options: DecodeOptions
    ) -> list[tuple[list[int], float, float]]:
        """(tokens, avg_logprob, no_speech_prob) per window, in one batched call (greedy, beam search, or a
        fallback retry at a temperature > 0: see :func:`_retry_settings`)."""
        seconds = max(w.size for w in windows) / SAMPLE_RATE
        max_length = self._whisper.max_length
        if (cap := options.max_new_tokens(seconds)) is not None:
            max_length = min(max_length, max(len(s) for s in starts) + cap)  # CTranslate2 counts the prompt too
        generated = self._whisper.model.generate(
            encoded,
            starts,
            beam_size=options.beam_size if options.temperature <= 0 else 1,
            **_retry_settings(options.temperature),
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=True,
            suppress_tokens=self._suppress,
        )
        out = []
        for g in generated:
            n = len(g.sequences_ids[0])
            out.append((g.sequences_ids[0], float(g.scores[0]) * n / (n + 1), float(g.no_speech_prob)))
        return out


def _retry_settings(temperature: float) -> dict:
    """How a fallback "temperature" is decoded here: greedy with a repetition penalty that grows with it and no
    repeated 3-gram, rather than sampled. CTranslate2 seeds its sampler once per worker thread, at first use, so
    no seed given before a call makes that call's samples reproducible; this keeps a retry the same on every
    run and in every batch, and it breaks the loops the fallback exists for."""
    if temperature <= 0:
        return {}
    return {"repetition_penalty": 1.0 + temperature / 2, "no_repeat_ngram_size": RETRY_NO_REPEAT_NGRAM}


def _encoder_frames(features: np.ndarray, encoder_seconds: float) -> int:
    """Mel frames to pad a window to (:func:`asr.backends.base.encoder_frames`). CTranslate2 encodes fewer frames
    in proportionally less time."""
    return encoder_frames(features.shape[-1], encoder_seconds)


def _timed_words(alignment: list[dict]) -> tuple[Word, ...]:
    """faster-whisper's word-time clean-up for one window: words at a sentence end or after the window's start
    longer than twice the median word are cut to that, and punctuation joins its word. Per window, so a
    window's times never depend on the window decoded before it in the batch."""
    if not alignment:
        return ()
    durations = np.array([w["end"] - w["start"] for w in alignment])
    durations = durations[durations.nonzero()]
    median = min(0.7, float(np.median(durations))) if durations.size else 0.0
    longest = median * 2
    if durations.size:
        marks = ".。!！?？"
        for i in range(1, len(alignment)):
            if alignment[i]["end"] - alignment[i]["start"] > longest:
                if alignment[i]["word"] in marks:
                    alignment[i]["end"] = alignment[i]["start"] + longest
                elif alignment[i - 1]["word"] in marks:
                    alignment[i]["start"] = alignment[i]["end"] - longest
    compat.fw_merge_punctuations(alignment, PREPEND_PUNCTUATION, APPEND_PUNCTUATION)
    words = [[w["word"], float(w["start"]), float(w["end"]), float(w["probability"])] for w in alignment if w["word"]]
    if words and words[0][2] > median * 4 and words[0][2] - words[0][1] > longest:
        words[0][1] = max(0.0, words[0][2] - longest)  # a first word stretched over the leading pause
    return tuple(Word(w, round(s, 2), round(max(e, s), 2), float(np.clip(p, 0.0, 1.0))) for w, s, e, p in words)


def _segments(
    text: str, words: tuple[Word, ...], duration: float, avg_logprob: float, no_speech_prob: float
) -> tuple[Segment, ...]:
    """One segment per sentence, rebuilt from the aligned words (the window is decoded without timestamps)."""
    if not text:
        return ()
    scores = {"avg_logprob": avg_logprob, "no_speech_prob": float(no_speech_prob)}
    if not words:
        return (Segment(0.0, duration, text, (), **scores),)
    return tuple(
        Segment(s[0].start, s[-1].end, "".join(w.word for w in s).strip(), s, **scores) for s in split_sentences(words)
    )


def _ct2_path(model: ResolvedModel) -> str:
    """faster-whisper needs CTranslate2 weights: Hugging Face models are converted once into the cache."""
    if model.format == "ctranslate2":
        return model.path
    if model.format == "hub" and ("faster-whisper" in model.path or "ct2" in model.path.lower()):
        return model.path  # a CTranslate2 repository on the hub: faster-whisper downloads it itself
    out = converted_dir(model.path)
    if (out / "model.bin").exists():
        return str(out)
    try:
        from ctranslate2.converters import TransformersConverter

        from asr.backends.hf_support import no_progress_bars
    except ImportError as exc:
        raise BackendError(
            "converting a Hugging Face model for faster-whisper needs ctranslate2 and transformers"
        ) from exc
    logger.info("converting %s to CTranslate2 into %s", model.path, out)
    tmp = out.with_name(out.name + ".tmp")
    with no_progress_bars():  # transformers' "Loading weights" bar, in the CLI's output (as loading does)
        TransformersConverter(model.path, copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(
            str(tmp), quantization="float16", force=True
        )
    Path(tmp).rename(out)
    return str(out)
