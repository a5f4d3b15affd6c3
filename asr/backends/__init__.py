"""Backends behind one Protocol, and a process-wide cache so every page and session shares one loaded model."""

from __future__ import annotations

import threading

from asr.backends.base import Backend, BackendError, WindowResult
from asr.models import resolve
from asr.results import BACKENDS

__all__ = ["Backend", "BackendError", "WindowResult", "load_backend", "get_backend", "DEFAULT_BACKEND"]

DEFAULT_BACKEND = "faster-whisper"
_cache: dict[tuple[str, str, str], Backend] = {}
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
    """Like :func:`load_backend`, but loads each (model, backend, device) once per process."""
    key = (model, backend, device)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = load_backend(model, backend, device)
        return _cache[key]
