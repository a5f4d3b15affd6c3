"""Text normalizers applied at scoring time, each with a name and a version stored with every run.

``whisper-english`` is Whisper's English normalizer (the code transformers ships, with the British-to-American
spelling map of openai/whisper in ``data/english_spelling.json``): what the Open ASR Leaderboard applies to
references and hypotheses, so WER computed here compares with published figures. References and hypotheses
are stored raw and normalized only when scored, so a run can be rescored with another normalizer.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SPELLING_MAP = Path(__file__).resolve().parent / "data" / "english_spelling.json"
DEFAULT_NORMALIZER = "whisper-english"
ELLIPSIS = re.compile(r"\.{2,}|\u2026")  # "...", "…": Whisper's English normalizer keeps one of their periods
# as a word ("your..." -> "your ."), which scored as an inserted word; they are pauses, not words, so they become
# spaces first (a decimal point, a single period, is left to the normalizer)


@dataclass(frozen=True)
class Normalizer:
    name: str  # what the user picks ("whisper-english", "whisper-basic", "none")
    version: str  # changes whenever the output for some text could change
    apply: Callable[[str], str] = field(repr=False, compare=False)

    def __call__(self, text: str) -> str:
        return " ".join(self.apply(text or "").split())


WHISPER_NORMALIZER_MODULE = "transformers.models.whisper.english_normalizer"


def _transformers_version() -> str:
    return importlib.metadata.version("transformers")


@functools.cache
def _whisper_normalizer_module():
    """transformers' Whisper normalizer module, read from its file without importing transformers itself.

    Why: the module is plain Python (``re``, ``unicodedata``, ``fractions``, ``regex``), but importing it through
    the package ran transformers' own start-up, 1.4 to 1.9 s on two cores, in every validation process on
    faster-whisper, which uses nothing else of transformers (the built-in sweep paid it inside its timed run).
    Where transformers is imported already (its backend), or the file no longer loads alone (a release that gives
    it package imports), the package's module is used: the same code either way, so the same text.
    """
    if WHISPER_NORMALIZER_MODULE not in sys.modules:
        package = importlib.util.find_spec("transformers")  # finds the folder; runs nothing of the package
        if package is not None and package.submodule_search_locations:
            path = Path(list(package.submodule_search_locations)[0]) / "models" / "whisper" / "english_normalizer.py"
            spec = importlib.util.spec_from_file_location("_asrqa_whisper_normalizer", path)
            if path.is_file() and spec is not None and spec.loader is not None:
                module = importlib.util.module_from_spec(spec)
                try:
                    spec.loader.exec_module(module)
                    return module
                except ImportError:  # it imports from its package now: take the package's way
                    pass
    return importlib.import_module(WHISPER_NORMALIZER_MODULE)


@functools.lru_cache(maxsize=1)
def _spelling_map() -> tuple[dict[str, str], str]:
    raw = SPELLING_MAP.read_bytes()
    return json.loads(raw), hashlib.sha256(raw).hexdigest()[:12]


def _whisper_english() -> Normalizer:
    mapping, digest = _spelling_map()
    version = f"transformers-{_transformers_version()}+spelling-{digest}+ellipsis-1"
    english = _whisper_normalizer_module().EnglishTextNormalizer(mapping)
    return Normalizer(DEFAULT_NORMALIZER, version, lambda text: english(ELLIPSIS.sub(" ", text)))


def _whisper_basic() -> Normalizer:
    basic = _whisper_normalizer_module().BasicTextNormalizer()
    return Normalizer("whisper-basic", f"transformers-{_transformers_version()}", basic)


def _none() -> Normalizer:
    return Normalizer("none", "1", lambda text: text)


_FACTORIES: dict[str, Callable[[], Normalizer]] = {
    DEFAULT_NORMALIZER: _whisper_english,
    "whisper-basic": _whisper_basic,
    "none": _none,
}
NORMALIZERS = tuple(_FACTORIES)


@functools.cache
def get_normalizer(name: str = DEFAULT_NORMALIZER) -> Normalizer:
    """The named normalizer; ``ValueError`` naming the choices for an unknown name."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown normalizer {name!r}; choose one of: {', '.join(NORMALIZERS)}")
    return _FACTORIES[name]()
