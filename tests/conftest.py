"""Shared fixtures: real speech made with espeak-ng, and the real tiny.en model loaded once per test session."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import asr  # noqa: F401  (first: it sets the OpenMP wait policy before a test module loads torch or CTranslate2)
from evaluation.prompts import HARVARD_LISTS
from evaluation.scoring import score

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# The project's first ten Harvard sentences, the third spelt out: espeak-ng runs "It's easy" together, and tiny.en
# then mishears that sentence and the next ("the nepf it well. It's the name of chicken"), which the WER bounds of
# the streaming and backend tests are not about.
HARVARD = [*HARVARD_LISTS[:2], "It is easy to tell the depth of a well.", *HARVARD_LISTS[3:10]]


def wer(reference: str, hypothesis: str) -> float:
    """The project's one WER (evaluation.scoring, Whisper's English normalizer), so tests judge what users see."""
    return score(reference, hypothesis).wer


def check_invariants(result) -> None:
    """Times never go backwards, words lie inside their segment, nothing ends after the audio."""
    previous = 0.0
    for seg in result.segments:
        assert 0.0 <= seg.start <= seg.end <= result.duration + 1e-6
        for w in seg.words:
            assert seg.start - 1e-6 <= w.start <= w.end <= seg.end + 1e-6, (seg, w)
            assert w.start >= previous - 1e-6, "word timestamps must never go backwards"
            assert 0.0 <= w.probability <= 1.0
            previous = w.start


def speak(text: str, path: Path, voice: str = "en-us", speed: int = 150) -> Path:
    """Real speech from espeak-ng (22.05 kHz mono WAV), so tests need no committed audio for most cases."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make test installs it)")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return path


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("audio")


@pytest.fixture(scope="session")
def speech_wav(audio_dir) -> Path:
    """About 11 s of speech: four Harvard sentences; its reference text is ``speech_text``."""
    return speak(" ".join(HARVARD[:4]), audio_dir / "speech.wav")


@pytest.fixture(scope="session")
def speech_text() -> str:
    return " ".join(HARVARD[:4])


@pytest.fixture(scope="session")
def long_wav(audio_dir) -> Path:
    """About 27 s of speech, 48 kHz stereo: longer than one Whisper window once silence is added."""
    raw = speak(" ".join(HARVARD), audio_dir / "long_raw.wav")
    out = audio_dir / "long.wav"
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "2", str(out), "pad", "2", "3"], check=True)
    return out


@pytest.fixture(scope="session")
def fw_backend():
    """The real tiny.en on faster-whisper, loaded once for the whole session."""
    from asr.backends import get_backend

    return get_backend("whisper-tiny.en", "faster-whisper")


@pytest.fixture(scope="session")
def silence() -> np.ndarray:
    return np.zeros(16_000 * 5, np.float32)


@pytest.fixture(scope="session")
def faint_noise() -> np.ndarray:
    return (np.random.default_rng(0).standard_normal(16_000 * 5) * 0.003).astype(np.float32)


@pytest.fixture(scope="session")
def real_set() -> Path:
    """The real-speech set (Debian's Asterisk prompts, built by scripts/setup.sh): its folder."""
    from evaluation.realspeech import real_dir

    path = real_dir()
    if not (path / "metadata.csv").is_file():
        pytest.skip("real-speech dataset not built (scripts/setup.sh or python -m evaluation make-real)")
    return path


RAY_MODULES = {"test_eval_ray", "test_scaleout_bench"}  # each starts a local Ray: never two at once


def pytest_collection_modifyitems(config, items) -> None:
    """Under ``make test`` (``-n 2 --dist loadgroup``) a test file runs whole on one worker, so its module-scoped
    fixtures (a dashboard, a local Ray, a sweep) are made once, not once per worker; the Ray files share a group,
    since two local Rays on one machine would compete for its two cores and its ports."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    for item in items:
        stem = item.path.stem
        item.add_marker(pytest.mark.xdist_group("ray" if stem in RAY_MODULES else stem))
