"""Every private third-party call the engine relies on, in one place, checked against the installed versions.

Why: the backends reach inside faster-whisper (its word alignment, prompt builder, suppressed-token list and
punctuation merging, none of which is public API), transformers (Whisper's private word grouping and the
``GenerationMixin.generate`` bypass of Whisper's own ``generate``, the attention-implementation switch, the
encoder's forward pass on fewer than 30 s of frames) and
Silero's ONNX graph (its input names). Any of these can change in a minor release without notice. Each touch
point is a function here; before first use, :func:`check` compares the package's version with the versions
these touch points were written and tested against and confirms the objects still have the shape we use, and
fails with one message naming the package, the versions and the touch point. ``ASRQA_UNTESTED_OK=1`` turns
an untested *version* into a warning (a missing attribute stays an error).
"""

from __future__ import annotations

import functools
import importlib.metadata
import inspect
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

logger = logging.getLogger(__name__)

# package -> version prefixes the touch points below were written and tested against
TESTED = {
    "faster-whisper": ("1.2.",),
    "ctranslate2": ("4.",),
    "transformers": ("5.",),
    "onnxruntime": ("1.",),
}
SILERO_INPUTS = ("input", "h", "c")  # what faster-whisper's Silero v6 ONNX graph is fed (StreamingVad feeds it)


class CompatError(RuntimeError):
    """An installed library whose private parts no longer match what the engine uses."""


def check_version(package: str, installed: str | None = None) -> str:
    """The installed version of ``package``; :class:`CompatError` when it is not one the touch points know."""
    version = installed or importlib.metadata.version(package)
    tested = TESTED[package]
    if version.startswith(tested):
        return version
    message = (
        f"{package} {version} is installed, but asr/compat.py was written and tested against {package} "
        f"{' or '.join(p + 'x' for p in tested)}: its private calls may have changed. Install a tested version "
        f"(see requirements.txt), or re-run tests/test_compat.py and update TESTED in asr/compat.py."
    )
    if os.environ.get("ASRQA_UNTESTED_OK") == "1":
        logger.warning("%s", message)
        return version
    raise CompatError(message)


def require(owner: Any, name: str, params: Sequence[str] = (), *, package: str) -> Any:
    """``owner.name``, checked to exist (and to take ``params``), else :class:`CompatError` naming it."""
    target = getattr(owner, name, None)
    where = f"{getattr(owner, '__name__', type(owner).__name__)}.{name}"
    if target is None:
        raise CompatError(f"{package} {_installed(package)} has no {where}, which asr/compat.py relies on")
    if params:
        try:
            have = inspect.signature(target).parameters
        except (TypeError, ValueError):  # a compiled function without a signature: only existence is checked
            return target
        missing = [p for p in params if p not in have]
        if missing:
            raise CompatError(
                f"{package} {_installed(package)}: {where} no longer takes {', '.join(missing)} "
                "(asr/compat.py relies on it)"
            )
    return target


def _installed(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "(not installed)"


# ---- faster-whisper and CTranslate2 -------------------------------------------------------------------------


@functools.cache
def faster_whisper_parts() -> dict[str, Callable]:
    """The faster-whisper internals the backend calls, each checked once per process."""
    check_version("faster-whisper")
    check_version("ctranslate2")
    from faster_whisper import WhisperModel
    from faster_whisper import transcribe as fw
    from faster_whisper.audio import pad_or_trim

    pkg = "faster-whisper"
    return {
        "get_prompt": require(WhisperModel, "get_prompt", ("tokenizer", "previous_tokens", "prefix"), package=pkg),
        "find_alignment": require(
            WhisperModel, "find_alignment", ("tokenizer", "text_tokens", "encoder_output", "num_frames"), package=pkg
        ),
        "encode": require(WhisperModel, "encode", ("features",), package=pkg),
        "suppressed_tokens": require(fw, "get_suppressed_tokens", ("tokenizer", "suppress_tokens"), package=pkg),
        "merge_punctuations": require(fw, "merge_punctuations", ("alignment", "prepended", "appended"), package=pkg),
        "pad_or_trim": pad_or_trim,
    }


def fw_prompt(whisper, tokenizer, previous: list[int], prefix: str | None, timestamps: bool = False) -> list[int]:
    """Start tokens: ``<|startofprev|>`` + previous, sot, language, task, notimestamps (unless ``timestamps``),
    the forced prefix."""
    get_prompt = faster_whisper_parts()["get_prompt"]
    return get_prompt(whisper, tokenizer, previous, without_timestamps=not timestamps, prefix=prefix)


def fw_encode(whisper, features):
    return faster_whisper_parts()["encode"](whisper, features)


def fw_align(whisper, tokenizer, text_tokens: list[list[int]], encoder_output, num_frames: list[int]) -> list:
    """Per window, the words with start/end (window seconds), tokens and probability (cross-attention DTW)."""
    return faster_whisper_parts()["find_alignment"](whisper, tokenizer, text_tokens, encoder_output, num_frames)


def fw_suppressed_tokens(tokenizer) -> tuple[int, ...]:
    """Whisper's ``suppress_tokens=[-1]``: non-speech symbols and the special tokens, as faster-whisper lists them."""
    return tuple(faster_whisper_parts()["suppressed_tokens"](tokenizer, [-1]))


def fw_merge_punctuations(alignment: list[dict], prepended: str, appended: str) -> None:
    faster_whisper_parts()["merge_punctuations"](alignment, prepended, appended)


def fw_pad_or_trim(features, frames: int):
    return faster_whisper_parts()["pad_or_trim"](features, frames)


# ---- Silero VAD (as faster-whisper ships it) -----------------------------------------------------------------


@functools.cache
def silero_model():
    """faster-whisper's Silero v6 ONNX model, with its graph's input names checked."""
    check_version("faster-whisper")
    check_version("onnxruntime")
    from faster_whisper import vad

    model = require(vad, "get_vad_model", package="faster-whisper")()
    names = tuple(i.name for i in model.session.get_inputs())
    if sorted(names) != sorted(SILERO_INPUTS):
        raise CompatError(
            f"faster-whisper {_installed('faster-whisper')}'s Silero model takes inputs {names}, not "
            f"{SILERO_INPUTS} (asr/vad.py's StreamingVad feeds those)"
        )
    return model


def silero_run(frames, h, c):
    """One pass of Silero's graph over a batch of (context + 512-sample) frames; returns the probabilities."""
    out, _, _ = silero_model().session.run(None, dict(zip(SILERO_INPUTS, (frames, h, c))))
    return out


@functools.cache
def silero_speech_timestamps() -> tuple[Callable, type]:
    """faster-whisper's ``get_speech_timestamps`` and its ``VadOptions`` (the fields asr/vad.py fills)."""
    check_version("faster-whisper")
    from faster_whisper import vad

    fields = ("threshold", "min_speech_duration_ms", "min_silence_duration_ms", "speech_pad_ms")
    options = require(vad, "VadOptions", fields + ("max_speech_duration_s",), package="faster-whisper")
    run = require(vad, "get_speech_timestamps", ("audio", "vad_options", "sampling_rate"), package="faster-whisper")
    return run, options


# ---- transformers ---------------------------------------------------------------------------------------------


@functools.cache
def transformers_parts() -> dict[str, Any]:
    """Whisper's private word grouping, the plain ``GenerationMixin.generate``, the attention switch and the
    encoder's parts (its forward pass refuses fewer than 3000 mel frames; :func:`hf_encode` runs them itself)."""
    check_version("transformers")
    from transformers import GenerationMixin, PreTrainedModel
    from transformers.models.whisper import modeling_whisper, tokenization_whisper

    pkg = "transformers"
    return {
        "combine": require(
            tokenization_whisper, "_combine_tokens_into_words", ("tokenizer", "tokens", "language"), package=pkg
        ),
        "generate": require(GenerationMixin, "generate", ("generation_config", "logits_processor"), package=pkg),
        "set_attn": require(PreTrainedModel, "set_attn_implementation", package=pkg),
        "encoder_layer": require(
            modeling_whisper.WhisperEncoderLayer, "forward", ("hidden_states", "attention_mask"), package=pkg
        ),
    }


def hf_combine_tokens_into_words(tokenizer, tokens: list[int], language: str):
    """(words, word_tokens, word_indices) as transformers' Whisper tokenizer groups them for word timestamps."""
    return transformers_parts()["combine"](tokenizer, tokens, language)


def hf_generate(model, **kwargs):
    """``GenerationMixin.generate`` on a Whisper model, bypassing ``WhisperForConditionalGeneration.generate``.

    Whisper's own ``generate`` adds sequential seeking and forced ids that a window of <= 30 s of speech does not
    need, and it rebuilds its logits processors (slow on CPU) on every call.
    """
    return transformers_parts()["generate"](model, **kwargs)


def hf_encode(encoder, features):
    """Whisper's encoder on ``features`` (batch, mels, frames) of up to 3000 frames, as ``WhisperEncoder.forward``
    computes it for 3000 (inference: no dropout): the first frames/2 positional embeddings are added, which is what
    CTranslate2 does for a shorter input. ``WhisperEncoder.forward`` itself raises for fewer than 3000 frames."""
    import torch

    transformers_parts()
    missing = [n for n in ("conv1", "conv2", "embed_positions", "layers", "layer_norm") if not hasattr(encoder, n)]
    if missing:
        raise CompatError(f"transformers {_installed('transformers')}: WhisperEncoder has no {', '.join(missing)}")
    hidden = torch.nn.functional.gelu(encoder.conv1(features))
    hidden = torch.nn.functional.gelu(encoder.conv2(hidden)).permute(0, 2, 1)
    hidden = hidden + encoder.embed_positions.weight[: hidden.shape[1]]
    for layer in encoder.layers:
        hidden = layer(hidden, None)
        hidden = hidden[0] if isinstance(hidden, tuple) else hidden
    return encoder.layer_norm(hidden)


def hf_attn_implementation(model) -> str:
    """The attention implementation a model runs with (a private config field)."""
    transformers_parts()
    value = getattr(model.config, "_attn_implementation", None)
    if value is None:
        raise CompatError(f"transformers {_installed('transformers')}: model.config has no _attn_implementation")
    return value


def hf_set_attn_implementation(model, implementation: str) -> None:
    transformers_parts()["set_attn"](model, implementation)
