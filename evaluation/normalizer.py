"""Text normalizers applied at scoring time, each with a name and a version stored with every run.

``whisper-english`` is Whisper's English normalizer (the code transformers ships, with the British-to-American
spelling map of openai/whisper in ``data/english_spelling.json``): what the Open ASR Leaderboard applies to
references and hypotheses, so WER computed here compares with published figures. References and hypotheses
are stored raw and normalized only when scored, so a run can be rescored with another normalizer.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
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


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


@functools.lru_cache(maxsize=1)
def _spelling_map() -> tuple[dict[str, str], str]:
    raw = SPELLING_MAP.read_bytes()
    return json.loads(raw), hashlib.sha256(raw).hexdigest()[:12]


def _whisper_english() -> Normalizer:
    from transformers.models.whisper.english_normalizer import EnglishTextNormalizer

    mapping, digest = _spelling_map()
    version = f"transformers-{_transformers_version()}+spelling-{digest}+ellipsis-1"
    english = EnglishTextNormalizer(mapping)
    return Normalizer(DEFAULT_NORMALIZER, version, lambda text: english(ELLIPSIS.sub(" ", text)))


def _whisper_basic() -> Normalizer:
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    return Normalizer("whisper-basic", f"transformers-{_transformers_version()}", BasicTextNormalizer())


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
