"""Every entry point's OpenMP runtimes start with the project's short spin, and a user's own setting wins.

Why subprocesses with ``OMP_DISPLAY_ENV=VERBOSE``: libgomp reads its wait policy once, when it loads, and then
prints what it read to stderr, so the printout is what the runtime will do, not what ``os.environ`` says later.
torch and CTranslate2 each bring their own libgomp, so a process that loads both prints two blocks; one of
them showing the default spin count means that library was imported before ``asr`` set the policy.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CLIP = REPO / "evaluation" / "builtin" / "audio" / "en-029_f5_03.flac"
LIBRARIES = "import torch, ctranslate2, onnxruntime"
# What each entry point imports first (``python -m PKG`` imports PKG, then PKG.__main__); the libraries are
# imported after it, as the entry point's own code would import them.
ENTRY_MODULES = {
    "python -m asr": "asr.cli",
    "python -m dashboard": "dashboard.__main__",
    "python -m evaluation": "evaluation.cli",
    "python -m benchmarks": "benchmarks.__main__",
    "Ray actor (evaluation.ray_executor)": "evaluation.ray_executor",
    "dashboard app (gradio)": "dashboard.app",
}
SPIN = re.compile(r"GOMP_SPINCOUNT = '(\d+)'")
SHORT_SPIN = "10000"  # asr.OMP_WAIT's GOMP_SPINCOUNT, as libgomp prints it


def _run(argv: list[str], **env_changes: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(OMP_DISPLAY_ENV="VERBOSE", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONPATH=str(REPO))
    env.update(env_changes)
    return subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def _spin_counts(stderr: str) -> list[str]:
    return SPIN.findall(stderr)


@pytest.mark.parametrize("entry", ENTRY_MODULES)
def test_each_entry_point_sets_the_policy_before_an_openmp_runtime_loads(entry):
    out = _run([sys.executable, "-c", f"import {ENTRY_MODULES[entry]}; {LIBRARIES}"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert _spin_counts(out.stderr) == [SHORT_SPIN, SHORT_SPIN], f"{entry}: {out.stderr[-2000:]}"


def test_a_real_transcription_from_the_command_line_runs_with_the_policy():
    out = _run([sys.executable, "-m", "asr", "transcribe", str(CLIP), "--no-progress"])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip(), "a transcript"
    spins = _spin_counts(out.stderr)
    assert spins and set(spins) == {SHORT_SPIN}, out.stderr[-2000:]


@pytest.mark.parametrize(
    ("variable", "value", "spin"),
    [("OMP_WAIT_POLICY", "ACTIVE", "30000000000"), ("GOMP_SPINCOUNT", "12345", "12345")],
)
def test_a_users_own_setting_wins(variable, value, spin):
    script = f"import asr, os; print(os.environ.get('OMP_WAIT_POLICY')); {LIBRARIES}"
    out = _run([sys.executable, "-c", script], **{variable: value})
    assert out.returncode == 0, out.stderr[-2000:]
    assert _spin_counts(out.stderr) == [spin, spin]
    expected = value if variable == "OMP_WAIT_POLICY" else "None"  # a spin count alone: no policy added to it
    assert out.stdout.strip() == expected
