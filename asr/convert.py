"""Import a CTranslate2 Whisper model into a Hugging Face Whisper folder, once, cached.

Why: the bundled weights are CTranslate2 (what faster-whisper runs), but the transformers backend needs a
Hugging Face folder (``config.json``, ``generation_config.json``, ``model.safetensors``, tokenizer and feature
extractor files) that ``WhisperForConditionalGeneration.from_pretrained`` and ``pipeline(...)`` load offline.
The weights are read straight from ``model.bin`` (format version 6, parsed below), un-fused and renamed; every
dimension comes from the weights themselves, the special-token ids from ``tokenizer.json``, and suppressed
tokens, alignment heads and language ids from the CTranslate2 ``config.json``.

The folder is written to a temporary sibling and renamed into place, so a crash never leaves half a model,
and it is re-used on the next start as long as the source ``model.bin`` has not changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from asr.models import ResolvedModel, cache_dir

logger = logging.getLogger(__name__)

CONVERTER_VERSION = 1  # bump when the output changes, so cached folders are rebuilt
STAMP_FILE = "asrqa_source.json"  # records what the folder was converted from
TIME_PRECISION = 0.02  # seconds per Whisper timestamp token
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16, 5: np.uint16}  # 5: bfloat16 bits
_NON_LANGUAGE = {
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
}
_lock = threading.Lock()


class ConversionError(RuntimeError):
    """A CTranslate2 folder that cannot be imported, with the file and the reason."""


@dataclass(frozen=True)
class Ct2Model:
    spec: str  # "WhisperSpec" for Whisper
    revision: int
    variables: dict[str, np.ndarray]  # name -> array (aliases resolved)


@dataclass(frozen=True)
class WhisperDims:
    """The architecture, read from the weights' shapes (never assumed from a model name)."""

    n_mels: int
    d_model: int
    encoder_layers: int
    decoder_layers: int
    encoder_heads: int
    decoder_heads: int
    encoder_ffn: int
    decoder_ffn: int
    vocab_size: int
    max_source_positions: int
    max_target_positions: int

    @property
    def multilingual(self) -> bool:
        return self.vocab_size >= 51865  # openai/whisper's rule: English-only vocabularies are one token shorter


def read_ct2_model(path: Path) -> Ct2Model:
    """Parse a CTranslate2 ``model.bin`` (binary version 6) into named arrays."""
    data = memoryview(Path(path).read_bytes())
    pos = 0

    def take(fmt: str):
        nonlocal pos
        value = struct.unpack_from(fmt, data, pos)[0]
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        n = take("<H")  # counts the trailing NUL
        text = bytes(data[pos : pos + n - 1]).decode("utf-8")
        pos += n
        return text

    version = take("<I")
    if version != 6:
        raise ConversionError(f"{path}: CTranslate2 model.bin version {version} is not supported (expected 6)")
    spec, revision = string(), take("<I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(take("<I")):
        name = string()
        dims = [take("<I") for _ in range(take("<B"))]
        dtype_code = take("<B")
        nbytes = take("<I")
        if dtype_code not in _DTYPES:
            raise ConversionError(f"{path}: variable {name!r} has unknown dtype code {dtype_code}")
        array = np.frombuffer(data[pos : pos + nbytes], dtype=_DTYPES[dtype_code]).reshape(dims)
        if dtype_code == 5:  # bfloat16: the high half of a float32
            array = (array.astype(np.uint32) << 16).view(np.float32)
        variables[name] = array
        pos += nbytes
    for _ in range(take("<I")):
        alias, target = string(), string()
        variables[alias] = variables[target]
    return Ct2Model(spec, revision, variables)


def whisper_dims(v: dict[str, np.ndarray]) -> WhisperDims:
    def layers(prefix: str) -> int:
        return len({m.group(1) for k in v if (m := re.match(rf"{prefix}/layer_(\d+)/", k))})

    return WhisperDims(
        n_mels=int(v["encoder/conv1/weight"].shape[1]),
        d_model=int(v["encoder/conv1/weight"].shape[0]),
        encoder_layers=layers("encoder"),
        decoder_layers=layers("decoder"),
        encoder_heads=int(v["encoder/num_heads"]),
        decoder_heads=int(v["decoder/num_heads"]),
        encoder_ffn=int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn=int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        vocab_size=int(v["decoder/embeddings/weight"].shape[0]),
        max_source_positions=int(v["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(v["decoder/position_encodings/encodings"].shape[0]),
    )


def _float(v: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A weight as float32; int8 weights are de-quantized with their per-row scale."""
    array = v[name]
    if array.dtype == np.int8:
        scale = v[name + "_scale"].astype(np.float32)
        return array.astype(np.float32) / scale.reshape(-1, *([1] * (array.ndim - 1)))
    return array.astype(np.float32)


def hf_state_dict(v: dict[str, np.ndarray], dims: WhisperDims) -> dict[str, np.ndarray]:
    """CTranslate2 names and fused projections -> Hugging Face Whisper names (``proj_out`` is tied)."""
    d = dims.d_model
    out: dict[str, np.ndarray] = {}

    def linear(src: str, dst: str, rows: slice = slice(None), bias: bool = True) -> None:
        out[f"{dst}.weight"] = _float(v, f"{src}/weight")[rows]
        if bias:
            out[f"{dst}.bias"] = _float(v, f"{src}/bias")[rows]

    def norm(src: str, dst: str) -> None:
        out[f"{dst}.weight"] = _float(v, f"{src}/gamma")
        out[f"{dst}.bias"] = _float(v, f"{src}/beta")

    def qkv(src: str, dst: str, fused_from: int) -> None:
        names = ("q_proj", "k_proj", "v_proj")[fused_from:]
        for i, proj in enumerate(names):
            linear(src, f"{dst}.{proj}", slice(i * d, (i + 1) * d), bias=proj != "k_proj")

    for side, n_layers in (("encoder", dims.encoder_layers), ("decoder", dims.decoder_layers)):
        hf = f"model.{side}"
        out[f"{hf}.embed_positions.weight"] = _float(v, f"{side}/position_encodings/encodings")
        norm(f"{side}/layer_norm", f"{hf}.layer_norm")
        for i in range(n_layers):
            src, dst = f"{side}/layer_{i}", f"{hf}.layers.{i}"
            norm(f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm")
            qkv(f"{src}/self_attention/linear_0", f"{dst}.self_attn", 0)
            linear(f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj")
            norm(f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm")
            linear(f"{src}/ffn/linear_0", f"{dst}.fc1")
            linear(f"{src}/ffn/linear_1", f"{dst}.fc2")
            if side == "decoder":
                norm(f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm")
                linear(f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj")
                qkv(f"{src}/attention/linear_1", f"{dst}.encoder_attn", 1)
                linear(f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj")
    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"model.encoder.{conv}")
    out["model.decoder.embed_tokens.weight"] = _float(v, "decoder/embeddings/weight")
    return {k: np.ascontiguousarray(a) for k, a in out.items()}


@dataclass(frozen=True)
class SpecialTokens:
    """Ids of Whisper's special tokens, looked up by their text in ``tokenizer.json``."""

    ids: dict[str, int]  # content -> id for every added token

    def __getitem__(self, content: str) -> int:
        return self.ids[content]

    @property
    def languages(self) -> dict[str, int]:
        return {t: i for t, i in self.ids.items() if t not in _NON_LANGUAGE}


def special_tokens(tokenizer_json: dict) -> SpecialTokens:
    return SpecialTokens({t["content"]: int(t["id"]) for t in tokenizer_json["added_tokens"]})


def generation_config_dict(dims: WhisperDims, ct2_config: dict, tokens: SpecialTokens) -> dict:
    """What openai/whisper-* ``generation_config.json`` holds, for English-only or multilingual models."""
    from asr.alignment import default_heads  # one rule for both backends and the conversion

    eot, sot = tokens["<|endoftext|>"], tokens["<|startoftranscript|>"]
    config = {
        "alignment_heads": [
            list(h) for h in ct2_config.get("alignment_heads") or default_heads(dims.decoder_layers, dims.decoder_heads)
        ],
        "begin_suppress_tokens": list(ct2_config.get("suppress_ids_begin") or [220, eot]),
        "suppress_tokens": list(ct2_config.get("suppress_ids") or []),
        "bos_token_id": sot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "decoder_start_token_id": sot,
        "no_timestamps_token_id": tokens["<|notimestamps|>"],
        "prev_sot_token_id": tokens["<|startofprev|>"],
        "max_initial_timestamp_index": 50,
        "max_length": dims.max_target_positions,
        "return_timestamps": False,
        "is_multilingual": dims.multilingual,
    }
    if dims.multilingual:
        by_id = {i: t for t, i in tokens.ids.items()}
        lang_ids = ct2_config.get("lang_ids") or sorted(tokens.languages.values())
        config["lang_to_id"] = {by_id[i]: i for i in lang_ids if i in by_id}
        config["task_to_id"] = {"transcribe": tokens["<|transcribe|>"], "translate": tokens["<|translate|>"]}
        config["forced_decoder_ids"] = [[1, None], [2, tokens["<|transcribe|>"]]]
    else:
        config["forced_decoder_ids"] = [[1, tokens["<|notimestamps|>"]]]
    return config


def model_config(dims: WhisperDims, generation: dict):
    from transformers import WhisperConfig

    return WhisperConfig(
        vocab_size=dims.vocab_size,
        num_mel_bins=dims.n_mels,
        encoder_layers=dims.encoder_layers,
        decoder_layers=dims.decoder_layers,
        encoder_attention_heads=dims.encoder_heads,
        decoder_attention_heads=dims.decoder_heads,
        encoder_ffn_dim=dims.encoder_ffn,
        decoder_ffn_dim=dims.decoder_ffn,
        d_model=dims.d_model,
        max_source_positions=dims.max_source_positions,
        max_target_positions=dims.max_target_positions,
        decoder_start_token_id=generation["decoder_start_token_id"],
        bos_token_id=generation["bos_token_id"],
        eos_token_id=generation["eos_token_id"],
        pad_token_id=generation["pad_token_id"],
        suppress_tokens=generation["suppress_tokens"],
        begin_suppress_tokens=generation["begin_suppress_tokens"],
        architectures=["WhisperForConditionalGeneration"],
        tie_word_embeddings=True,
        dtype="float32",
    )


def build_tokenizer(tokenizer_file: Path, dims: WhisperDims):
    """A ``WhisperTokenizerFast`` from ``tokenizer.json``, with Whisper's special and timestamp tokens.

    The special tokens are registered in id order so that ``<|notimestamps|>`` is the last one: transformers
    finds the first timestamp id as "last special id + 1". Timestamp tokens (``<|0.00|>`` ...) fill the rest of
    the model's vocabulary as ordinary added tokens, as on the hub's Whisper tokenizers.
    """
    from transformers import AddedToken, WhisperTokenizerFast

    added = sorted(json.loads(Path(tokenizer_file).read_text())["added_tokens"], key=lambda t: t["id"])
    specials = [t["content"] for t in added if t["content"] != "<|endoftext|>"]
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(tokenizer_file), extra_special_tokens=specials, model_max_length=dims.max_target_positions
    )
    n_timestamps = dims.vocab_size - len(tokenizer)
    tokenizer.add_tokens(
        [
            AddedToken(f"<|{i * TIME_PRECISION:.2f}|>", lstrip=False, rstrip=False, normalized=False, special=False)
            for i in range(n_timestamps)
        ]
    )
    if len(tokenizer) != dims.vocab_size:
        raise ConversionError(f"{tokenizer_file}: tokenizer has {len(tokenizer)} tokens, model {dims.vocab_size}")
    return tokenizer


def convert(src: Path, out: Path) -> Path:
    """Write the Hugging Face folder for the CTranslate2 model in ``src`` into ``out`` (which must not exist)."""
    from safetensors.numpy import save_file
    from transformers import GenerationConfig, WhisperFeatureExtractor

    src, out = Path(src), Path(out)
    for name in ("model.bin", "config.json", "tokenizer.json"):
        if not (src / name).exists():
            raise ConversionError(f"{src} has no {name}: not a CTranslate2 Whisper model folder")
    ct2 = read_ct2_model(src / "model.bin")
    if ct2.spec != "WhisperSpec":
        raise ConversionError(f"{src}/model.bin is a {ct2.spec}, not a Whisper model")
    dims = whisper_dims(ct2.variables)
    ct2_config = json.loads((src / "config.json").read_text())
    tokens = special_tokens(json.loads((src / "tokenizer.json").read_text()))
    generation = generation_config_dict(dims, ct2_config, tokens)
    out.mkdir(parents=True)
    save_file(hf_state_dict(ct2.variables, dims), str(out / "model.safetensors"), metadata={"format": "pt"})
    model_config(dims, generation).save_pretrained(out)
    GenerationConfig(**generation).save_pretrained(out)
    build_tokenizer(src / "tokenizer.json", dims).save_pretrained(out)
    WhisperFeatureExtractor(feature_size=dims.n_mels).save_pretrained(out)
    logger.info("converted %s (%s) into %s", src, dims, out)
    return out


def _stamp(src: Path) -> dict:
    stat = (src / "model.bin").stat()
    return {"source": str(src), "size": stat.st_size, "mtime": int(stat.st_mtime), "version": CONVERTER_VERSION}


def _folder_name(model: ResolvedModel) -> str:
    """The model's registered name, or a folder's name plus a hash of its path (two folders may share a name)."""
    path = Path(model.name).expanduser()
    if not path.is_dir():
        return model.name.replace("/", "--")
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]
    return f"{path.resolve().name}-{digest}"


def hf_model_dir(model: ResolvedModel) -> Path:
    """The Hugging Face folder for ``model``: CTranslate2 models are converted once into the cache."""
    if model.format != "ctranslate2":
        return Path(model.path)
    src = Path(model.path)
    out = cache_dir() / "hf" / _folder_name(model)
    with _lock:
        if _is_current(out, src):
            return out
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            convert(src, tmp)
            (tmp / STAMP_FILE).write_text(json.dumps(_stamp(src)))
            _swap_in(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def _is_current(out: Path, src: Path) -> bool:
    try:
        return json.loads((out / STAMP_FILE).read_text()) == _stamp(src)
    except (OSError, ValueError):
        return False


def _swap_in(tmp: Path, out: Path) -> None:
    """Rename the finished folder into place; a stale one is moved aside first and then deleted."""
    out.parent.mkdir(parents=True, exist_ok=True)
    old = out.with_name(f".{out.name}.old-{os.getpid()}")
    if out.exists():
        out.rename(old)
    try:
        tmp.rename(out)
    except OSError:
        if not out.exists():  # another process did not win the race: something is really wrong
            raise
    shutil.rmtree(old, ignore_errors=True)
