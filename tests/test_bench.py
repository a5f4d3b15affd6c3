"""``python -m asr bench``: every approach really runs on a short real recording and the JSON has its fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asr.bench import APPROACHES, _reference, word_error_rate
from tests.conftest import HARVARD, speak

ROOT = Path(__file__).resolve().parent.parent


def run_bench(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, "-m", "asr", "bench", *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=900
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
        assert r["real_time_factor"] == pytest.approx(report["duration"] / r["compute_seconds"])
        assert r["peak_rss_mb"] > 100 and r["rss_delta_mb"] >= 0
        assert 0.0 <= r["wer"] <= 0.5, (name, r["text"])
        assert "smooth" in r["text"].lower()
    ratios = report["ratios"]
    fw, lib = report["approaches"]["ours-fw"], report["approaches"]["library"]
    assert ratios["ours_fw_vs_library"] == pytest.approx(fw["real_time_factor"] / lib["real_time_factor"])
    tf, pipe = report["approaches"]["ours-tf"], report["approaches"]["pipeline"]
    assert ratios["ours_tf_vs_pipeline"] == pytest.approx(tf["real_time_factor"] / pipe["real_time_factor"])
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
        ("the birch canoe", "the merch canoe", 1 / 3),
        ("a b c d", "a b", 0.5),
        ("", "", 0.0),
        ("", "words", 1.0),
    ],
)
def test_word_error_rate_normalizes_case_and_punctuation(reference, hypothesis, expected):
    assert word_error_rate(reference, hypothesis) == pytest.approx(expected)
