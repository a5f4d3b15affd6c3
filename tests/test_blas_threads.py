"""The log-mel features, hence the text, do not depend on the BLAS thread count a process starts with.

Why a subprocess each: the count is a process's environment (Ray workers run with OMP_NUM_THREADS=1, the
dashboard with the machine's cores), and numpy's OpenBLAS reads it when it loads. On the AMD EPYC machines the
two counts gave different features, and 1 row in 12 of the Ray test's sweep came out in other words.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCRIPT = """
import hashlib, json
import numpy as np
from threadpoolctl import threadpool_info
from asr.audio import load_audio
from asr.backends import get_backend

backend = get_backend("whisper-tiny.en", "faster-whisper")
clip = load_audio("evaluation/builtin/audio/en-us_m3_02.flac")
noisy = clip + np.random.default_rng(0).standard_normal(clip.size).astype(np.float32) * 0.05
features = backend.whisper_model.feature_extractor(np.asarray(noisy, np.float32))
blas = sorted({i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"})
print(json.dumps({"features": hashlib.sha256(features.tobytes()).hexdigest(), "blas_threads": blas}))
"""


def _run(threads: str) -> dict:
    import json

    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    env.update(OPENBLAS_NUM_THREADS=threads, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_features_are_the_same_whatever_blas_thread_count_the_process_started_with():
    one, two = _run("1"), _run("2")
    assert one["blas_threads"] == two["blas_threads"] == [1], "a loaded backend pins numpy's BLAS to one thread"
    assert one["features"] == two["features"]
