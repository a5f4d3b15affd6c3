"""``python -m benchmarks asr --isolated``: every approach really runs on a short real recording and the JSON has its fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.figures import wer
from benchmarks.full_context import APPROACHES, _reference
from tests.conftest import HARVARD, speak

ROOT = Path(__file__).resolve().parent.parent


def run_bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", "asr", "--isolated", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=900,
    )


@pytest.fixture(scope="module")
def short_wav(audio_dir) -> Path:
    return speak(HARVARD[0], audio_dir / "bench_short.wav")


def test_bench_json_has_every_approach_and_ratio(short_wav, tmp_path):
    ref = tmp_path / "ref.txt"
    ref.write_text(HARVARD[0])
    proc = run_bench(str(short_wav), "--json", "--ref", str(ref))
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    assert report["duration"] == pytest.approx(2.5, abs=1.5)
    assert report["config"]["beam_size"] == 1 and report["config"]["batch_size"] == 8 and report["reference"]
    assert set(report["approaches"]) == set(APPROACHES)
    for name, r in report["approaches"].items():
        assert r["error"] is None, (name, r["error"])
        assert r["compute_seconds"] > 0 and len(r["runs"]) == 1
        assert r["rtfx"] == pytest.approx(report["duration"] / r["compute_seconds"])
        assert r["peak_rss_mb"] > 100 and r["rss_delta_mb"] >= 0
        assert 0.0 <= r["wer"] <= 0.5, (name, r["text"])
        assert "smooth" in r["text"].lower()
    ratios = report["ratios"]
    fw, lib = report["approaches"]["ours-fw"], report["approaches"]["library"]
    assert ratios["ours_fw_vs_library"] == pytest.approx(fw["rtfx"] / lib["rtfx"])
    tf, pipe = report["approaches"]["ours-tf"], report["approaches"]["pipeline"]
    assert ratios["ours_tf_vs_pipeline"] == pytest.approx(tf["rtfx"] / pipe["rtfx"])
    assert ratios["wer_ours_fw_minus_library"] == pytest.approx(fw["wer"] - lib["wer"])


def test_bench_table_without_reference(short_wav):
    proc = run_bench(str(short_wav), "--only", "library", "--repeat", "2")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "BatchedInferencePipeline" in proc.stdout and "2 timed run(s)" in proc.stdout
    assert "ours-fw / library throughput: n/a" in proc.stdout  # ours-fw was not run
    assert "ours, transformers" not in proc.stdout


def test_bench_missing_file_is_a_one_line_error(tmp_path):
    proc = run_bench(str(tmp_path / "nope.wav"), "--json")
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "nope.wav" in proc.stderr


def test_reference_is_a_file_or_the_text_itself(tmp_path):
    path = tmp_path / "ref.txt"
    path.write_text("Hello there.")
    assert _reference(str(path)) == "Hello there."
    assert _reference("hello there") == "hello there"
    assert _reference(None) is None


@pytest.mark.parametrize(
    ("reference", "hypothesis", "expected"),
    [
        ("The birch canoe.", " the Birch canoe", 0.0),
        ("the birch canoe", "the merch canoe", 0.3333),
        ("Twenty two colour boxes", "22 color boxes", 0.0),  # Whisper's English normalizer, as validation uses
        ("", "", None),
        ("", "words", None),  # no reference words: a WER of nothing is undefined
    ],
)
def test_benchmark_wer_is_the_validation_wer(reference, hypothesis, expected):
    assert wer(reference, hypothesis) == expected
