"""Streaming mode of a validation run: rows through the live engine on the simulated clock, checked against a
direct StreamingSession run of the same audio; joined streams; side by side with offline; CLI errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE
from asr.results import Word
from asr.streaming.policy import StreamOptions
from asr.streaming.scheduler import Scheduler
from asr.streaming.session import StreamingSession
from evaluation.cli import main
from evaluation.datasets import DatasetOptions, load_dataset
from evaluation.noise import Mixer, parse_condition
from evaluation.runner import RunOptions, run_validation
from evaluation.scoring import score
from evaluation.spreadsheet import read_csv
from evaluation.store import Store
from evaluation.streaming import _Trace, join, plan_streams
from evaluation.worker import STREAM_COLUMNS
from tests.conftest import wer

LIMIT = 3


def direct_session(audio: np.ndarray, backend, chunk: float = 0.5) -> str:
    """The committed text of a StreamingSession fed the audio chunk by chunk, each chunk decoded before the next
    arrives (what the simulated clock does whenever the worker keeps up)."""
    scheduler = Scheduler(backend, threaded=False)
    step = int(chunk * SAMPLE_RATE)
    with StreamingSession(options=StreamOptions(keep_recording=False), scheduler=scheduler) as session:
        for start in range(0, audio.size, step):
            session.feed(audio[start : start + step])
            while scheduler.run_once().windows:
                pass
        return session.finish().committed


@pytest.fixture(scope="module")
def both(tmp_path_factory, fw_backend):
    store = Store(tmp_path_factory.mktemp("stream") / "data")
    options = RunOptions(noise=("clean", "white@10"), limit=LIMIT, seed=3, mode="both", model="whisper-tiny.en")
    return run_validation(options, store), store


def test_streaming_rows_match_a_direct_session(both, fw_backend):
    result, _ = both
    rows = result.rows
    streamed = rows[(rows["mode"] == "streaming") & (rows["noise"] == "white@10")]
    assert len(streamed) == LIMIT
    data = load_dataset(DatasetOptions("builtin", limit=LIMIT))
    mixer = Mixer(3)
    errors = words = 0
    for sample in data.samples:
        row = streamed[streamed["id"] == sample.id].iloc[0]
        audio = mixer.mix(sample.id, sample.audio, parse_condition("white@10")).audio
        direct = direct_session(audio, fw_backend)
        assert direct.strip(), "the direct session must commit words"
        between = score(direct, row["hypothesis"])  # the direct run's text as the reference
        errors, words = errors + between.errors, words + between.ref_words
        hyp_words = len(score(row["reference"], row["hypothesis"]).hypothesis_norm.split())
        assert row["hyp_words"] == hyp_words and hyp_words > 0
        assert 0 < row["commit_latency_p50_s"] <= row["commit_latency_p95_s"] < sample.seconds + 5
        assert row["first_commit_s"] > 0 and row["flips"] >= 0 and 0 <= row["duplicate_words"] <= hyp_words
    # the windows a round sees depend on the machine's speed (a loaded machine's rounds take longer than a chunk),
    # so the texts agree within a word or two per utterance, not to the byte
    assert errors / words <= 0.3, f"streaming rows differ from a direct session in {errors} of {words} words"


def test_both_modes_side_by_side_and_paired_delta(both):
    result, _ = both
    rows = result.rows
    assert set(rows["mode"]) == {"offline", "streaming"} and len(rows) == 2 * 2 * LIMIT
    assert rows[rows["mode"] == "offline"][list(STREAM_COLUMNS)].isna().all().all()
    offline = rows[rows["mode"] == "offline"].set_index(["id", "noise"])
    for _, row in rows[rows["mode"] == "streaming"].iterrows():
        paired = offline.loc[(row["id"], row["noise"])]
        assert row["reference"] == paired["reference"] and row["audio_seconds"] == paired["audio_seconds"]
        assert row["wer_delta_offline"] == pytest.approx(row["wer"] - paired["wer"])
    assert list(result.summary.pivot.columns) == ["clean", "clean [streaming]", "white@10", "white@10 [streaming]"]
    table = result.summary.streaming.set_index("noise")
    part = rows[(rows["mode"] == "streaming") & (rows["noise"] == "clean")]
    assert table.loc["clean", "wer"] == pytest.approx(part["errors"].sum() / part["ref_words"].sum())
    delta = (part["wer_delta_offline"] * part["ref_words"]).sum() / part["ref_words"].sum()
    assert table.loc["clean", "wer_delta_offline"] == pytest.approx(delta)
    assert table.loc["clean", "delta_ci_low"] <= delta <= table.loc["clean", "delta_ci_high"]
    latencies = [float(v) for t in part["commit_latencies"] for v in t.split(";")]
    assert table.loc["clean", "commit_latency_p95_s"] == pytest.approx(np.percentile(latencies, 95))
    assert table.loc["clean", "words_committed"] == len(latencies) == part["hyp_words"].sum()


def test_overall_figure_of_both_modes_is_the_offline_path_and_streaming_has_its_own(both):
    """Pooling both paths' rows would count every utterance twice in one blended figure."""
    result, _ = both
    rows, summary = result.rows, result.summary
    offline, streaming = rows[rows["mode"] == "offline"], rows[rows["mode"] == "streaming"]
    assert summary.overall_mode == "offline" and summary.overall.utterances == len(offline) == 2 * LIMIT
    assert summary.overall.wer == pytest.approx(offline["errors"].sum() / offline["ref_words"].sum())
    assert summary.overall_streaming.utterances == len(streaming)
    assert summary.overall_streaming.wer == pytest.approx(streaming["errors"].sum() / streaming["ref_words"].sum())


def test_resume_keeps_offline_and_streaming_rows_apart(both):
    result, store = both
    again = run_validation(
        RunOptions(
            noise=("clean", "white@10"), limit=LIMIT, seed=3, mode="both", model="whisper-tiny.en", run_id=result.run_id
        ),
        store,
    )
    assert again.resumed_rows == 4 * LIMIT and len(again.rows) == 4 * LIMIT


def test_joined_streams_give_each_row_its_words(tmp_path, fw_backend):
    options = RunOptions(limit=4, seed=1, mode="streaming", stream_seconds=7.0, model="whisper-tiny.en")
    rows = run_validation(options, Store(tmp_path / "data")).rows
    assert len(rows) == 4 and (rows["mode"] == "streaming").all()
    references = list(rows["reference"])
    for i, row in rows.iterrows():
        errors = [wer(reference, row["hypothesis"]) for reference in references]
        assert row["hyp_words"] > 0 and errors[i] == min(errors), f"{row['hypothesis']!r} has another row's words"
    seconds = list(rows["audio_seconds"])
    assert plan_streams(seconds, ["clean"] * 4, 7.0) == [[0, 1], [2, 3]]
    audio, spans = join([np.ones(8000, np.float32), np.ones(4000, np.float32)], 0.7)
    assert audio.size == 8000 + 11200 + 4000 and spans == [(0.0, 0.5), (1.2, 1.45)]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--mode", "live"], "invalid choice: 'live'"),
        # they named the dataclass field ("stream seconds must be ..."), not the flag typed
        (["--mode", "streaming", "--stream-seconds", "-3"], "argument --stream-seconds: must be a number above 0"),
        (["--stream-seconds", "inf"], "argument --stream-seconds: must be a number above 0, not 'inf'"),
        (["--mode", "streaming", "--stream-sessions", "0"], "argument --stream-sessions: must be an integer from 1"),
        (["--stream-sessions", "65"], "argument --stream-sessions: must be an integer from 1 to 64, not '65'"),
        (["--noise", "white@10+codec:gsm"], "no libgsm encoder"),
        (["--noise", "codec:opus@12k+loss"], "is not lossPCT"),
        (["--noise", "white@10+pink@5"], "not a channel stage"),
    ],
)
def test_cli_mode_and_condition_errors_are_one_line(tmp_path, capsys, args, words):
    code = main(
        ["run", "--limit", "1", "--quiet", "--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "o"), *args]
    )
    err = capsys.readouterr().err
    assert code == 2 and words in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_results_csv_has_exactly_the_streaming_columns(both, tmp_path):
    from evaluation.report import write_outputs

    result, _ = both
    paths = write_outputs(tmp_path, result.rows, result.summary, result.settings, result.run_id)
    columns = list(read_csv(paths["results.csv"]).columns)
    expected = ["mode", *STREAM_COLUMNS]
    assert [c for c in columns if c in expected] == expected and "commit_latencies" not in columns
    assert not math.isnan(read_csv(paths["results.csv"])["commit_latency_p50_s"].max())


def _words(text: str, start: float, step: float = 0.3) -> list[Word]:
    return [Word(f" {w}", start + i * step, start + (i + 1) * step, 0.9) for i, w in enumerate(text.split())]


def test_duplicates_and_flips_are_counted_from_what_was_shown():
    trace = _Trace()
    first = _words("the box was thrown", 0.0)
    trace.observe([], _words("the fox was", 0.0), 1.0)  # shown, then corrected: "fox" flips
    trace.observe(first, [], 2.0)
    assert len(trace.flipped) == 1 and trace.flipped[0].word == " fox"
    again = _words("the box was thrown", 1.2, 0.01)  # the prompt re-read over a short final window
    trace.observe(first + again, [], 3.0)
    assert len(trace.duplicates) == 4
    said_twice = _words("very very", 1.4)  # a word really said twice, later in the audio: not a duplicate
    trace.observe(first + again + said_twice, [], 4.0)
    overlapping = [Word(" very", 1.45, 1.65, 0.9)]  # the same word over audio already committed: a duplicate
    trace.observe(first + again + said_twice + overlapping, [], 5.0)
    assert len(trace.duplicates) == 5 and [w for w, _ in trace.committed][-1] == overlapping[0]
