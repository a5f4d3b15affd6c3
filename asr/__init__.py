"""Speech recognition: audio in, VAD, one backend Protocol, full-context and live transcripts.

Importing this package sets how the process's OpenMP threads wait (:data:`OMP_WAIT`), so that it is set before
torch, CTranslate2 or onnxruntime load: every entry point (``python -m asr``, ``dashboard``, ``evaluation``,
``benchmarks``, a Ray actor) imports ``asr`` before any of them, and ``tests/test_omp_wait.py`` checks it.
"""

from __future__ import annotations

import os

OMP_WAIT = {"GOMP_SPINCOUNT": "10000"}
"""How long this process's libgomp threads spin at a barrier before they sleep, unless the user set a policy.

Why: torch and CTranslate2 each link their own GNU libgomp, whose idle threads spin up to 300,000 times at each
barrier by default. On a CPU shared with anything else (a sweep beside a live stream, another process, a CI box)
a spinning thread takes the core the working thread needs: beside three busy loops on two cores the test suite's
transformers pipeline case took 398 s with the default and 14.7 s passive. A spin of 10,000 (a few tens of
microseconds) gained as much as passive beside two busy loops (the transformers backend 3.9x real time against
2.9x) and cost nothing alone, where passive cost faster-whisper's short clips 5% (README, Performance,
"Session 18"). Only how an idle thread waits changes, so the text is the same bytes. libgomp reads it when it
loads, so only a setting made before that import counts.
"""
OMP_WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")  # a user who sets either keeps their own


def _default_omp_wait() -> None:
    if not any(os.environ.get(name) for name in OMP_WAIT_VARIABLES):
        os.environ.update(OMP_WAIT)


def omp_wait_setting() -> str:
    """The wait setting as this process's environment has it (``GOMP_SPINCOUNT=10000``), for run records."""
    return " ".join(f"{name}={os.environ[name]}" for name in OMP_WAIT_VARIABLES if os.environ.get(name))


_default_omp_wait()
