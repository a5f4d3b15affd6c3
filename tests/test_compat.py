"""The private third-party touch points in asr/compat.py: each works on the installed libraries, and a changed
version or a vanished attribute fails with one message naming the package, the version and the touch point."""

from __future__ import annotations

import numpy as np
import pytest

from asr import compat


@pytest.mark.parametrize("package", sorted(compat.TESTED))
def test_installed_versions_are_the_tested_ones(package):
    assert compat.check_version(package).startswith(compat.TESTED[package])


def test_an_untested_version_fails_with_what_to_do(monkeypatch):
    monkeypatch.delenv("ASRQA_UNTESTED_OK", raising=False)
    with pytest.raises(compat.CompatError, match=r"faster-whisper 9\.0\.0 is installed.*tested against faster-whisper"):
        compat.check_version("faster-whisper", installed="9.0.0")


def test_an_untested_version_can_be_allowed_with_a_warning(monkeypatch, caplog):
    monkeypatch.setenv("ASRQA_UNTESTED_OK", "1")
    assert compat.check_version("transformers", installed="6.0.0") == "6.0.0"
    assert "transformers 6.0.0 is installed" in caplog.text


def test_a_vanished_attribute_or_parameter_is_named():
    from faster_whisper import WhisperModel

    with pytest.raises(compat.CompatError, match=r"no WhisperModel\.find_alignment_v2"):
        compat.require(WhisperModel, "find_alignment_v2", package="faster-whisper")
    with pytest.raises(compat.CompatError, match=r"WhisperModel\.get_prompt no longer takes hotword_list"):
        compat.require(WhisperModel, "get_prompt", ("tokenizer", "hotword_list"), package="faster-whisper")


def test_faster_whisper_touch_points(fw_backend, speech_wav):
    """Prompt, encoder, alignment, suppressed tokens and punctuation merging on the real tiny.en."""
    from faster_whisper.tokenizer import Tokenizer

    from asr.audio import load_audio

    whisper = fw_backend.whisper_model
    tokenizer = Tokenizer(whisper.hf_tokenizer, False)
    prompt = compat.fw_prompt(whisper, tokenizer, [], prefix=None)
    assert prompt == [tokenizer.sot, tokenizer.no_timestamps]
    assert tokenizer.no_timestamps not in compat.fw_prompt(whisper, tokenizer, [], None, timestamps=True)
    suppressed = compat.fw_suppressed_tokens(tokenizer)
    assert tokenizer.sot in suppressed and tokenizer.no_speech in suppressed
    features = whisper.feature_extractor(load_audio(speech_wav)[: 5 * 16000])[..., :-1]
    encoded = compat.fw_encode(whisper, compat.fw_pad_or_trim(features, 3000)[None])
    text = tokenizer.encode(" The birch canoe slid on the smooth planks.")
    [words] = compat.fw_align(whisper, tokenizer, [text], encoded, [features.shape[-1]])
    assert [w["word"] for w in words][:3] == [" The", " birch", " canoe"]
    compat.fw_merge_punctuations(words, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
    assert [w["word"] for w in words if w["word"]][-1] == " planks."


def test_silero_inputs_and_run():
    model = compat.silero_model()
    assert sorted(i.name for i in model.session.get_inputs()) == sorted(compat.SILERO_INPUTS)
    frames = np.zeros((3, 64 + 512), np.float32)
    state = np.zeros((1, 1, 128), np.float32)
    probabilities = np.asarray(compat.silero_run(frames, state, state)).reshape(-1)
    assert probabilities.shape == (3,) and (probabilities < 0.5).all()
    run, options = compat.silero_speech_timestamps()
    assert run(np.zeros(16000, np.float32), options(), sampling_rate=16000) == []


def test_transformers_touch_points():
    from transformers import WhisperTokenizer

    from asr.convert import hf_model_dir
    from asr.models import resolve

    tokenizer = WhisperTokenizer.from_pretrained(hf_model_dir(resolve("whisper-tiny.en")))
    tokens = tokenizer(" Hello world.", add_special_tokens=False).input_ids
    words, word_tokens, _ = compat.hf_combine_tokens_into_words(tokenizer, tokens, "english")
    assert words == [" Hello", " world."] and sum(map(len, word_tokens)) == len(tokens)
    parts = compat.transformers_parts()
    assert callable(parts["generate"]) and callable(parts["set_attn"])
