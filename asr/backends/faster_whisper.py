"""faster-whisper (CTranslate2) backend: int8 on CPU, float16 on CUDA; the fast default.

Windows are decoded with faster-whisper's own batched pipeline (one encoder call and one batched generate per
batch, then its word alignment), so our full-context path runs at the library's speed. The one change is that
each window may carry its own prompt, which lets the streaming scheduler batch windows of several sessions.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE
from asr.backends.base import BackendError, WindowResult
from asr.models import ResolvedModel, cache_dir
from asr.results import DecodeOptions, Segment, Word, split_sentences

logger = logging.getLogger(__name__)

try:
    from faster_whisper import BatchedInferencePipeline, WhisperModel
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.tokenizer import Tokenizer
    from faster_whisper.transcribe import TranscriptionOptions, get_suppressed_tokens
except ImportError as exc:  # pragma: no cover - exercised only without the package
    raise BackendError("the faster-whisper backend needs faster-whisper: pip install faster-whisper") from exc


def pick_device(device: str) -> str:
    if device not in ("auto", "cpu", "cuda"):
        raise BackendError(f"device must be auto, cpu or cuda, not {device!r}")
    if device != "auto":
        return device
    import ctranslate2

    return "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"


class _PromptedPipeline(BatchedInferencePipeline):
    """faster-whisper's batched pipeline, with one prompt per window instead of one for the whole batch."""

    prompts: list[list[int]] = []
    max_new_tokens: int | None = None

    def generate_segment_batched(self, features, tokenizer, options):
        model = self.model
        encoder_output = model.encode(features)
        max_length = model.max_length
        if self.max_new_tokens is not None:  # CTranslate2's max_length counts the prompt too
            max_length = min(max_length, max(len(p) for p in self.prompts) + self.max_new_tokens)
        results = model.model.generate(
            encoder_output,
            [list(p) for p in self.prompts],
            beam_size=options.beam_size,
            patience=options.patience,
            length_penalty=options.length_penalty,
            max_length=max_length,
            suppress_blank=options.suppress_blank,
            suppress_tokens=options.suppress_tokens,
            return_scores=True,
            return_no_speech_prob=True,
            sampling_temperature=options.temperatures[0],
            sampling_topk=0 if options.temperatures[0] > 0 else 1,  # topk 1 would stay greedy at any temperature
            repetition_penalty=options.repetition_penalty,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
        )
        output = []
        for result in results:
            seq_len = len(result.sequences_ids[0])
            cum_logprob = result.scores[0] * (seq_len**options.length_penalty)
            output.append(
                dict(
                    avg_logprob=cum_logprob / (seq_len + 1),
                    no_speech_prob=result.no_speech_prob,
                    tokens=result.sequences_ids[0],
                )
            )
        return encoder_output, output


class FasterWhisperBackend:
    name = "faster-whisper"

    def __init__(
        self,
        model: ResolvedModel,
        device: str = "auto",
        compute_type: str | None = None,
        cpu_threads: int | None = None,
    ) -> None:
        self.model = model.name
        self.device = pick_device(device)
        self.compute_type = compute_type or ("float16" if self.device == "cuda" else "int8")
        try:  # resolving a hub id may download or convert: its failures are load failures too
            path = _ct2_path(model)
            self._whisper = WhisperModel(
                path,
                device=self.device,
                compute_type=self.compute_type,
                cpu_threads=cpu_threads or os.cpu_count() or 1,
            )
        except Exception as exc:
            raise BackendError(f"cannot load model {model.name!r} with faster-whisper: {exc}") from exc
        self._pipe = _PromptedPipeline(self._whisper)
        self.multilingual = bool(self._whisper.model.is_multilingual)
        self._lock = threading.Lock()

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
        if not windows:
            return []
        prompts = list(prompts) if prompts is not None else [options.initial_prompt] * len(windows)
        prefixes = list(prefixes) if prefixes is not None else [None] * len(windows)
        feats = [self._whisper.feature_extractor(w)[..., :-1] for w in windows]
        language = self._language(options, feats[0])
        tokenizer = Tokenizer(self._whisper.hf_tokenizer, self.multilingual, task=options.task, language=language)
        topts = _transcription_options(options, tokenizer)
        # CTranslate2 returns the forced prefix as the start of each sequence, so text and word alignment cover it
        prompt_ids = [
            self._whisper.get_prompt(
                tokenizer,
                tokenizer.encode(" " + p.strip()) if p and p.strip() else [],
                without_timestamps=True,
                prefix=f.strip() if f and f.strip() else None,
            )
            for p, f in zip(prompts, prefixes)
        ]
        metadata = [{"offset": 0.0, "duration": w.size / SAMPLE_RATE, "segments": []} for w in windows]
        # Windows are grouped by the length they are padded to, so a window's transcript never depends on which
        # other windows share its batch (an utterance scores the same whatever --limit selects).
        frames = [_encoder_frames(f, options.encoder_seconds) for f in feats]
        results: list[WindowResult] = [WindowResult((), language)] * len(windows)
        for target in sorted(set(frames)):
            group = [i for i, n in enumerate(frames) if n == target]
            features = np.stack([pad_or_trim(feats[i], target) for i in group])
            with self._lock:
                self._pipe.prompts = [prompt_ids[i] for i in group]
                self._pipe.max_new_tokens = options.max_new_tokens(max(windows[i].size for i in group) / SAMPLE_RATE)
                self._pipe.last_speech_timestamp = 0.0
                outputs = self._pipe.forward(features, tokenizer, [metadata[i] for i in group], topts)
            for i, out in zip(group, outputs):
                results[i] = WindowResult(_segments(out, options), language)
        return results

    def _language(self, options: DecodeOptions, features: np.ndarray) -> str:
        if not self.multilingual:
            return "en"
        if options.language:
            return options.language
        language, _, _ = self._whisper.detect_language(features=features)
        return language


def _encoder_frames(features: np.ndarray, encoder_seconds: float) -> int:
    """Mel frames to pad a window to: Whisper's 3000 (30 s), or below ``encoder_seconds`` < 30 the window plus
    2 s, rounded up to a whole second and at least ``encoder_seconds``. CTranslate2 encodes fewer frames in
    proportionally less time; the 2 s of trailing silence and the floor keep tiny windows from looping."""
    full = 3000
    if encoder_seconds >= 30.0:
        return full
    per_second = full // 30
    needed = features.shape[-1] + 2 * per_second
    return min(full, max(int(encoder_seconds * per_second), -(-needed // per_second) * per_second))


def _transcription_options(options: DecodeOptions, tokenizer: Tokenizer) -> TranscriptionOptions:
    return TranscriptionOptions(
        beam_size=options.beam_size,
        best_of=5,
        patience=1.0,
        length_penalty=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        log_prob_threshold=options.logprob_threshold,
        no_speech_threshold=options.no_speech_threshold,
        compression_ratio_threshold=2.4,
        condition_on_previous_text=False,
        prompt_reset_on_temperature=0.5,
        temperatures=[options.temperature],
        initial_prompt=None,
        prefix=None,
        suppress_blank=True,
        suppress_tokens=get_suppressed_tokens(tokenizer, [-1]),
        without_timestamps=True,  # the library's batched default: more accurate than timestamp tokens here
        max_initial_timestamp=0.0,
        word_timestamps=options.word_timestamps,
        prepend_punctuations="\"'“¿([{-",
        append_punctuations="\"'.。,，!！?？:：”)]}、",
        multilingual=False,
        max_new_tokens=None,
        clip_timestamps=[],
        hallucination_silence_threshold=None,
        hotwords=None,
    )


def _segments(window_output: list[dict], options: DecodeOptions) -> tuple[Segment, ...]:
    """One segment per sentence, rebuilt from the aligned words (the window is decoded without timestamps)."""
    segments = []
    for seg in window_output:
        text = seg["text"].strip()
        silent = seg["no_speech_prob"] > options.no_speech_threshold and seg["avg_logprob"] < options.logprob_threshold
        if not text or silent:
            continue
        scores = {"avg_logprob": float(seg["avg_logprob"]), "no_speech_prob": float(seg["no_speech_prob"])}
        words = tuple(
            Word(w["word"], float(w["start"]), float(w["end"]), float(w["probability"])) for w in seg.get("words") or ()
        )
        if not words:
            segments.append(Segment(float(seg["start"]), float(seg["end"]), text, (), **scores))
            continue
        for sentence in split_sentences(words):
            line = "".join(w.word for w in sentence).strip()
            segments.append(Segment(sentence[0].start, sentence[-1].end, line, sentence, **scores))
    return tuple(segments)


def _ct2_path(model: ResolvedModel) -> str:
    """faster-whisper needs CTranslate2 weights: Hugging Face models are converted once into the cache."""
    if model.format == "ctranslate2":
        return model.path
    if model.format == "hub" and ("faster-whisper" in model.path or "ct2" in model.path.lower()):
        return model.path  # a CTranslate2 repository on the hub: faster-whisper downloads it itself
    out = cache_dir() / "ct2-from-hf" / model.path.strip("/").replace("/", "--")
    if (out / "model.bin").exists():
        return str(out)
    try:
        from ctranslate2.converters import TransformersConverter
    except ImportError as exc:
        raise BackendError("converting a Hugging Face model for faster-whisper needs ctranslate2") from exc
    logger.info("converting %s to CTranslate2 into %s", model.path, out)
    tmp = out.with_name(out.name + ".tmp")
    TransformersConverter(model.path, copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(
        str(tmp), quantization="float16", force=True
    )
    Path(tmp).rename(out)
    return str(out)
