"""Backends behind one Protocol, and a process-wide cache so every page and session shares one loaded model."""

from __future__ import annotations

import threading

from asr.backends.base import Backend, BackendError, WindowResult, pick_device
from asr.models import resolve
from asr.results import BACKENDS

__all__ = [
    "Backend",
    "BackendError",
    "WindowResult",
    "load_backend",
    "get_backend",
    "get_copies",
    "check_language",
    "DEFAULT_BACKEND",
]

DEFAULT_BACKEND = "faster-whisper"
_LIBRARY = {"faster-whisper": "ctranslate2", "transformers": "torch"}  # what each backend asks for a GPU
_cache: dict[tuple[str, str, str, str], Backend] = {}
_cache_lock = threading.Lock()


def load_backend(model: str, backend: str = DEFAULT_BACKEND, device: str = "auto") -> Backend:
    """Load ``model`` on ``backend``; raises ``UnknownModelError`` or ``BackendError`` with what to do."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    resolved = resolve(model)
    if backend == "faster-whisper":
        from asr.backends.faster_whisper import FasterWhisperBackend

        return FasterWhisperBackend(resolved, device=device)
    try:
        from asr.backends.transformers import TransformersBackend
    except ImportError as exc:
        raise BackendError(f"the transformers backend needs transformers and torch: {exc}") from exc
    return TransformersBackend(resolved, device=device)


def get_backend(model: str, backend: str = DEFAULT_BACKEND, device: str = "auto") -> Backend:
    """Like :func:`load_backend`, but loads each model once per process and backend.

    The cache is keyed by where the weights are (the resolved model) and the device actually used, so
    " whisper-tiny.en", a folder given by two paths, or ``auto`` and ``cpu`` on a machine without a GPU share
    one loaded model.
    """
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    resolved = resolve(model)
    key = (resolved.format, resolved.path, backend, pick_device(device, _LIBRARY[backend]))
    with _cache_lock:
        if key not in _cache:
            _cache[key] = load_backend(model, backend, device)
        return _cache[key]


def get_copies(model: str, device: str, count: int, cpu_threads: int = 1) -> list[Backend]:
    """``count`` faster-whisper copies of ``model`` with ``cpu_threads`` threads each, kept in the same cache as
    :func:`get_backend`'s models: lanes that decode side by side each need a model of their own, and loading them
    once per process lets every streaming run after the first start at once (loading and warming two copies of
    tiny.en took about 1.7 s of each built-in streaming sweep, 3-4% of its wall time)."""
    from asr.backends.faster_whisper import FasterWhisperBackend

    resolved = resolve(model)
    device = pick_device(device, _LIBRARY["faster-whisper"])
    copies = []
    with _cache_lock:
        for k in range(count):
            key = (resolved.format, resolved.path, f"faster-whisper, {cpu_threads} thread(s), copy {k}", device)
            if key not in _cache:
                _cache[key] = FasterWhisperBackend(resolved, device=device, cpu_threads=cpu_threads)
            copies.append(_cache[key])
    return copies


def check_language(backend: Backend, model: str, language: str | None) -> None:
    """Refuse a forced language an English-only model cannot decode: it was ignored, and the files were decoded
    in English under a setting that said otherwise. Worded for the command lines' ``--language``."""
    if language not in (None, "", "en") and not backend.multilingual:
        raise BackendError(
            f"--language {language}: {model} is English-only; pick a multilingual model (python -m asr models) "
            "or leave --language out"
        )
