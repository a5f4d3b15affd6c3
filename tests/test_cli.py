"""``python -m asr`` as a tester runs it: exit codes, one-line errors, JSON, subtitles."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asr", *args], capture_output=True, text=True, env=ENV, timeout=300)


def test_models_lists_the_default():
    out = run("models")
    assert out.returncode == 0
    assert "whisper-tiny.en*" in out.stdout and "present" in out.stdout


def test_json_per_file_and_failures_named_without_traceback(speech_wav, tmp_path):
    broken = tmp_path / "broken.flac"
    broken.write_bytes(b"not audio at all")
    out = run("transcribe", str(speech_wav), str(broken), str(tmp_path / "missing.wav"), "--json")
    assert out.returncode == 1
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(lines) == 1
    record = lines[0]
    for key in ("file", "text", "words", "segments", "language", "duration", "compute_seconds", "model", "backend"):
        assert key in record
    assert record["file"] == str(speech_wav) and "smooth" in record["text"].lower()
    assert set(record["words"][0]) == {"word", "start", "end", "probability"}
    errors = out.stderr.strip().splitlines()
    assert len(errors) == 2 and "Traceback" not in out.stderr
    assert "broken.flac" in errors[0] and "missing.wav: no such file" in errors[1]


def test_unknown_model_exits_2_with_one_line():
    out = run("transcribe", "x.wav", "--model", "whisper-nope")
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "whisper-tiny.en" in out.stderr


@pytest.mark.parametrize("backend", ["faster-whisper", "transformers"])
def test_hub_id_offline_exits_2_with_one_line(backend, tmp_path):
    """Without a hub a hub id used to exit 1 with a 71-line chained traceback (transformers: exit 2, two lines)."""
    out = subprocess.run(
        [sys.executable, "-m", "asr", "transcribe", "x.wav", "--model", "openai/whisper-base.en", "--backend", backend],
        capture_output=True,
        text=True,
        env={**ENV, "TRANSFORMERS_OFFLINE": "1", "ASRQA_CACHE": str(tmp_path)},
        timeout=300,
    )
    assert out.returncode == 2, out.stderr
    assert out.stderr.count("\n") == 1 and "openai/whisper-base.en" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize(("fmt", "marker"), [("srt", " --> "), ("vtt", "WEBVTT")])
def test_subtitles(speech_wav, fmt, marker):
    out = run("transcribe", str(speech_wav), "--format", fmt)
    assert out.returncode == 0 and marker in out.stdout
    if fmt == "srt":
        assert out.stdout.startswith("1\n00:00:0")


def test_word_timestamps_text(speech_wav):
    out = run("transcribe", str(speech_wav), "--word-timestamps")
    assert out.returncode == 0
    assert "->" in out.stdout and "smooth" in out.stdout


def test_bench_is_the_side_by_side_benchmark_on_a_file_or_a_dataset(tmp_path):
    """``python -m asr bench`` runs ``python -m benchmarks asr``; a missing dataset folder is one line, exit 2."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    usage = subprocess.run([sys.executable, "-m", "asr", "bench", "--help"], capture_output=True, text=True, env=env)
    assert usage.returncode == 0 and "an audio file, or a dataset" in usage.stdout
    missing = str(tmp_path / "no-such-set")
    out = subprocess.run([sys.executable, "-m", "asr", "bench", missing], capture_output=True, text=True, env=env)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "not found" in out.stderr, out.stderr
