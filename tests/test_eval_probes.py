"""Hallucination probes: non-speech clips (silence, real music) transcribed with the default VAD give no word;
invented words on speech rows are the insertions outside the reference; the tables and files report them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE
from evaluation.cli import main
from evaluation.probes import MUSIC_DIR, dtmf, invented_words, probes_source, synthetic_clips
from evaluation.runner import RunOptions, run_validation
from evaluation.scoring import score
from evaluation.store import Store


def test_probe_clips_are_fixed_and_non_speech():
    a, b = synthetic_clips(), synthetic_clips()
    assert [c[0] for c in a] == [
        "probe-silence",
        "probe-room-tone",
        "probe-white",
        "probe-pink",
        "probe-dtmf",
        "probe-beep",
    ]
    for (ident, _, x), (_, _, y) in zip(a, b, strict=True):
        assert np.array_equal(x, y), f"{ident} must be the same bytes in every run"
        assert x.dtype == np.float32 and x.size == 10 * SAMPLE_RATE and np.abs(x).max() < 1.0
    assert not a[0][2].any()
    spectrum = np.abs(np.fft.rfft(dtmf()))
    peaks = np.fft.rfftfreq(10 * SAMPLE_RATE, 1 / SAMPLE_RATE)[np.argsort(spectrum)[-200:]]
    assert {697, 1209, 941, 1477} <= {int(round(f)) for f in peaks}, "the DTMF pairs of the digits used"


def test_invented_words_are_edge_insertions():
    s = score("please enter the conference pin", "thank you please enter the conference pin number you")
    assert invented_words(s.alignment, s.ref_words, s.hypothesis_norm) == ("thank", "you", "number", "you")
    inside = score("please enter the pin", "please enter the the pin")
    assert invented_words(inside.alignment, inside.ref_words, inside.hypothesis_norm) == ()
    probe = score("", "Thank you.")
    assert invented_words(probe.alignment, probe.ref_words, probe.hypothesis_norm) == ("thank", "you")


def test_probe_run_on_silence_and_music_gives_no_word_on_either_path(tmp_path, fw_backend):
    if not any(MUSIC_DIR.glob("*.wav")):
        pytest.skip(f"no music in {MUSIC_DIR} (scripts/setup.sh installs asterisk-moh-opsound-wav)")
    store = Store(tmp_path / "data")
    result = run_validation(RunOptions(dataset="probes", model="whisper-tiny.en", seed=1, mode="both"), store)
    rows = result.rows
    assert len(rows) == 2 * len(list(probes_source().rows(None)))
    assert set(rows["mode"]) == {"offline", "streaming"}, "both paths: full context and the live engine"
    assert set(rows["probe"]) == {"silence", "room tone", "white noise", "pink noise", "dtmf", "beep", "music"}
    chosen = rows[rows["probe"].isin(["silence", "music"])]
    assert len(chosen) >= 2 and (chosen["probe"] == "music").any()
    assert chosen["hypothesis"].str.strip().eq("").all(), chosen[["id", "hypothesis"]].to_string()
    assert (chosen["invented_words"] == 0).all()
    assert (rows["nonspeech_seconds"] == rows["audio_seconds"].round(3)).all()
    table = result.summary.tables["probe"].set_index("probe")
    assert table.loc["music", "nonspeech_seconds"] == pytest.approx(
        rows[rows["probe"] == "music"]["audio_seconds"].sum()
    )
    assert table.loc["silence", "invented_per_min"] == 0.0


def test_cli_reports_invented_words(tmp_path, fw_backend, capsys):
    out = tmp_path / "out"
    code = main(
        ["run", "--dataset", "probes", "--limit", "2", "--model", "whisper-tiny.en", "--quiet"]
        + ["--data-dir", str(tmp_path / "data"), "--out", str(out)]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "invented words: 0 over" in printed and "per minute" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["invented"] == [] and "invented_per_min" in summary["tables"]["probe"][0]


def test_invented_words_over_too_little_non_speech_get_a_count_not_a_rate():
    import pandas as pd

    from evaluation.report import invented_lines

    rows = pd.DataFrame(
        {"id": ["a", "b"], "noise": ["clean"] * 2, "invented_words": [20, 6], "invented_text": ["x " * 20, "y " * 6]}
    )
    few = invented_lines(rows.assign(nonspeech_seconds=[0.03, 0.018]))
    assert few[0] == "invented words: 26 (over only 0.05 s of non-speech: too little for a per-minute rate)"
    enough = invented_lines(rows.assign(nonspeech_seconds=[30.0, 30.0]))
    assert enough[0] == "invented words: 26 over 1.0 min of non-speech (26.00 per minute)"
