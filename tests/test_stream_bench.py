"""``python -m benchmarks stream``: the figures it prints, on real speech and the real tiny.en."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE, load_audio
from asr.transcribe import transcribe
from benchmarks import stream as bench
from benchmarks.recipe import run_baseline

KEYS = (
    "audio_seconds",
    "update_p50",
    "update_p95_first_min",
    "update_p95_last_min",
    "update_max",
    "commit_latency_p50",
    "commit_latency_p95",
    "committed_text",
    "wer_vs_offline",
    "wer_vs_ref",
    "rss_start_mb",
    "rss_end_mb",
    "sessions",
    "baseline",
)


@pytest.fixture(scope="module")
def ref_file(tmp_path_factory, speech_text):
    path = tmp_path_factory.mktemp("ref") / "ref.txt"
    path.write_text(speech_text)
    return path


def run_json(capsys, *argv) -> dict:
    assert bench.main([*map(str, argv), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_has_every_figure(capsys, speech_wav, ref_file, fw_backend):
    out = run_json(capsys, speech_wav, "--ref", ref_file, "--sessions", "2", "--no-baseline")
    for key in KEYS:
        assert key in out, key
    duration = load_audio(speech_wav).size / SAMPLE_RATE
    assert out["audio_seconds"] == pytest.approx(duration, abs=0.01)
    assert out["sessions"] == 2 and out["sessions_agree"]
    assert 0 < out["update_p50"] <= out["update_max"]
    assert out["update_p95_first_min"] is not None and out["update_p95_last_min"] is not None
    assert 0 < out["commit_latency_p50"] <= out["commit_latency_p95"]
    assert out["final_lag_seconds"] >= 0
    assert out["wer_vs_offline"] <= 0.2 and out["wer_vs_ref"] <= 0.3
    assert out["offline_wer_vs_ref"] is not None
    assert out["rss_start_mb"] > 0 and out["rss_end_mb"] > 0
    assert out["baseline"] is None
    assert out["max_buffer_seconds"] < 30


def test_loop_builds_a_longer_stream_and_the_table_prints(capsys, speech_wav, fw_backend):
    assert bench.main([str(speech_wav), "--loop", "2", "--no-baseline", "--chunk", "1.0"]) == 0
    table = capsys.readouterr().out
    duration = load_audio(speech_wav).size / SAMPLE_RATE
    assert "commit latency p50" in table and f"{2 * duration:.3f}" in table


def test_bad_arguments_and_missing_files_exit_2(capsys, tmp_path):
    assert bench.main([str(tmp_path / "missing.wav"), "--no-baseline"]) == 2
    assert "missing.wav" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["x.wav", "--sessions", "0"])


def test_set_overrides_are_checked_together(capsys, speech_wav):
    """README's `--set trim_seconds=12` needs busy_trim_seconds at most as large; given with it, the pair failed
    at the first --set (checked alone against the default 13), and the message quoted only 13.0."""
    argv = [
        str(speech_wav),
        "--set",
        "trim_seconds=12",
        "--set",
        "busy_trim_seconds=10",
        "--set",
        "flush_heard_seconds=none",
    ]
    options = bench.stream_options(bench.parse_args(argv), 60.0)
    assert (options.trim_seconds, options.busy_trim_seconds, options.flush_heard_seconds) == (12.0, 10.0, None)
    assert bench.main([str(speech_wav), "--set", "trim_seconds=12", "--no-baseline"]) == 2
    assert "not busy_trim_seconds=13.0 with trim_seconds=12.0" in capsys.readouterr().err
    for item, says in (
        ("trim_seconds=abc", "a number"),
        ("trim_seconds", "a number"),
        ("prompt_chars=2.5", "an integer"),
    ):
        assert bench.main([str(speech_wav), "--set", item, "--no-baseline"]) == 2
        name = item.partition("=")[0]
        assert capsys.readouterr().err.strip() == f"benchmarks stream: --set {item}: {name} takes {says}"


def test_cpu_share_charges_every_round_more_clock_time_and_is_recorded(capsys, speech_wav, fw_backend):
    """Half the CPU: the modelled clock advances by twice each round's modelled cost; the share, the windows
    decoded in catch-up mode and the largest lag are in the JSON (and the table)."""
    out = run_json(capsys, speech_wav, "--no-baseline", "--clock", "modelled", "--cpu-share", "0.5")
    assert out["cpu_share"] == 0.5 and out["clock"] == "modelled"
    assert out["clock_compute_seconds"] == pytest.approx(2 * out["modelled_compute_seconds"], abs=0.01)
    assert 0 <= out["catchup_windows"] <= out["windows"] and out["windows"] >= 1
    assert out["max_lag_seconds"] > 0 and out["options"]["catchup_lag_seconds"] == 1.0
    with pytest.raises(SystemExit):
        bench.parse_args([str(speech_wav), "--calibrate", "--cpu-share", "0.5"])
    assert "with the whole CPU" in capsys.readouterr().err


def test_live_path_benchmarks_refuse_a_bad_argument_in_one_line(capsys):
    """`benchmarks live probes --model nope` was a 30-line traceback, `stream --backend bogus` too, and `live
    match FILE` without --ref exited 1: each is one line with exit 2 now, as evaluation run's."""
    from benchmarks import live_path

    assert live_path.main(["probes", "--model", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("benchmarks live probes: unknown model 'nope'") and "\n" not in err, err
    for call in (lambda: live_path.main(["match", "x.wav"]), lambda: bench.main(["x.wav", "--backend", "bogus"])):
        with pytest.raises(SystemExit) as exc:
            call()
        assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--ref REF is needed with a FILE" in err and "invalid choice: 'bogus'" in err


@pytest.mark.parametrize(
    "argv",
    [
        ["asr", "builtin-real:en", "--limit", "0"],  # 0 read as "no limit": the whole set, minutes of all approaches
        ["asr", "builtin-real:en", "--per-language", "0"],
        ["asr", "x.wav", "--repeat", "0"],  # printed a table of zero timed runs
        ["stream", "x.wav", "--sessions", "0"],
        ["stream", "x.wav", "--baseline-max-lag", "-1"],  # the baseline stopped at once, "behind by more than -1 s"
        ["stream", "x.wav", "--cpu-share", "0"],
        ["stream", "x.wav", "--cpu-share", "1.5"],  # a share of the CPU, not a faster machine
        ["sweep", "--limit", "0"],
        ["live", "match", "--repeat", "0"],
        ["ray", "--port", "0"],
    ],
)
def test_counts_below_one_and_negative_seconds_are_refused_before_anything_runs(argv, capsys):
    from benchmarks.__main__ import main as benchmarks

    with pytest.raises(SystemExit) as exc:
        benchmarks(argv)
    assert exc.value.code == 2
    assert f"argument {argv[-2]}: must be a" in capsys.readouterr().err


def test_the_recipe_baseline_fails_past_30_seconds(long_wav, audio_dir, fw_backend):
    audio = load_audio(long_wav)
    audio = np.concatenate([audio, audio])[: 45 * SAMPLE_RATE]  # more than Whisper's 30 s
    offline = transcribe(audio, backend=fw_backend)
    out = run_baseline(audio, "whisper-tiny.en", 15.0, offline, max_lag=1000.0)
    assert out["available"], out["stop_reason"]  # transformers is a requirement and tiny.en is installed
    assert out["stopped_at_seconds"] == pytest.approx(45.0)
    assert "3000 mel" in out["stop_reason"] or "30 seconds" in out["stop_reason"], out["stop_reason"]
    assert out["updates"] == 2 and out["commit_latency_p50"] is None  # at 15 s and 30 s, then the error
    assert out["committed_text"]


def test_the_cli_dispatches_each_benchmark():
    for name, flag in (("stream", "--sessions"), ("asr", "--repeat"), ("sweep", "--backends")):
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks", name, "--help"], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0 and flag in proc.stdout, (name, proc.stderr[-500:])
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "nope"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "asr,stream,sweep" in proc.stderr and "NAME --help lists" in proc.stderr
