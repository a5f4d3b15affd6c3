"""The modelled streaming clock: the same real audio and options give the same streaming rows on every run, under
any load, and the rows are exactly what a direct simulate() of the same audio gives (real tiny.en, real speech)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from asr.backends import get_copies
from asr.streaming.clock import CostModel, WindowWork, cost_model_for, encoded_seconds, fit
from asr.streaming.policy import StreamOptions
from asr.streaming.simulate import simulate
from asr.transcribe import transcribe_many
from evaluation.datasets import DatasetOptions, load_dataset
from evaluation.report import write_outputs
from evaluation.runner import RunOptions, run_validation
from evaluation.spreadsheet import read_csv
from evaluation.store import Store
from evaluation.streaming import StreamModeOptions, StreamRunner

LIMIT = 3
MEASURED = ("compute_seconds",)  # the one measured column of a row: reported beside the clock, never on it


def _options(**changes) -> RunOptions:
    base = RunOptions(dataset="builtin-real:en", split="dev", limit=LIMIT, mode="streaming", model="whisper-tiny.en")
    return RunOptions(**{**base.__dict__, **changes})


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory, real_set, fw_backend):
    """The same streaming-mode run twice, each into its own store; results.csv of each without measured compute."""
    out = []
    for k in range(2):
        folder = tmp_path_factory.mktemp(f"clock{k}")
        result = run_validation(_options(), Store(folder / "data"))
        paths = write_outputs(folder / "out", result.rows, result.summary, result.settings, result.run_id)
        frame = read_csv(paths["results.csv"]).drop(columns=list(MEASURED))
        out.append((result, frame.to_csv(index=False).encode()))
    return out


def test_streaming_rows_are_byte_identical_run_to_run(two_runs):
    (first, csv1), (second, csv2) = two_runs
    assert csv1 == csv2
    assert first.settings.stream_clock == "modelled" and first.settings.stream_cost_model["name"]
    assert first.settings.stream_cost_model == cost_model_for("whisper-tiny.en", "faster-whisper").describe()
    rows = first.rows
    assert (rows["mode"] == "streaming").all() and (rows["hyp_words"] > 0).all()
    assert rows["compute_seconds"].gt(0).all()  # measured compute is still reported, as its own column


def test_rows_equal_a_direct_simulate_on_the_modelled_clock(two_runs, fw_backend):
    result, _ = two_runs[0]
    data = load_dataset(DatasetOptions("builtin-real:en", split="dev", limit=LIMIT))
    for sample in data.samples:
        row = result.rows[result.rows["id"] == sample.id].iloc[0]
        options = StreamOptions(keep_recording=False, max_session_seconds=sample.seconds + 60.0)
        run = simulate(sample.audio, fw_backend, options, stop_with_last_chunk=True, clock="modelled")
        assert row["hypothesis"] == run.texts[0]
        latencies = [round(w.commit_time - w.end, 4) for w in run.words]
        assert row["commit_latencies"] == ";".join(f"{v:g}" for v in latencies)
        assert row["commit_latency_p50_s"] == pytest.approx(np.percentile(latencies, 50), abs=1e-4)


class _Slow:
    """The real backend on a machine three times slower (a loaded one): every call takes longer, nothing else."""

    def __init__(self, backend) -> None:
        self._backend = backend
        self.name, self.model, self.device, self.multilingual = backend.name, backend.model, backend.device, False

    def transcribe_windows(self, windows, options, prompts=None, prefixes=None):
        t0 = time.perf_counter()
        out = self._backend.transcribe_windows(windows, options, prompts=prompts, prefixes=prefixes)
        time.sleep(2 * (time.perf_counter() - t0))
        return out


def test_the_modelled_clock_does_not_follow_the_load(real_set, fw_backend):
    sample = load_dataset(DatasetOptions("builtin-real:en", split="dev", limit=1)).samples[0]
    options = StreamOptions(keep_recording=False)
    quick = simulate(sample.audio, fw_backend, options, clock="modelled")
    slow = simulate(sample.audio, _Slow(fw_backend), options, clock="modelled")
    assert quick.words == slow.words and quick.updates == slow.updates and quick.clock_seconds == slow.clock_seconds
    assert sum(r.compute_seconds for r in slow.rounds) > 2 * sum(r.compute_seconds for r in quick.rounds)
    assert [r.cost_seconds for r in quick.rounds] == [r.cost_seconds for r in slow.rounds]
    measured = simulate(sample.audio, _Slow(fw_backend), options)
    assert [r.cost_seconds for r in measured.rounds] == [r.compute_seconds for r in measured.rounds]


def test_cost_model_charges_what_was_decoded_and_fits_back():
    model = CostModel("test", round_s=0.01, window_s=0.02, encoder_s=0.007, word_beam_s=0.002)
    decode = StreamOptions().decode
    assert encoded_seconds(3.3, decode, "faster-whisper") == 10.0  # the 10 s floor
    assert encoded_seconds(12.2, decode, "faster-whisper") == 15.0  # window + 2 s, whole seconds
    assert encoded_seconds(3.3, decode, "transformers") == 10.0  # the transformers backend pads alike
    works = [WindowWork(s, encoded_seconds(s, decode, "faster-whisper"), 3, n) for s, n in ((2.0, 5), (14.0, 30))]
    assert model.round(works) == pytest.approx(0.01 + 2 * 0.02 + 0.007 * (10 + 16) + 0.002 * 3 * 35)
    assert model.round([]) == model.idle_s
    rng = np.random.default_rng(0)
    rounds = []
    for _ in range(40):
        w = [
            WindowWork(s, encoded_seconds(s, decode, "faster-whisper"), 3, int(s * 3))
            for s in rng.uniform(1, 20, rng.integers(1, 4))
        ]
        rounds.append((w, model.round(w)))
    fitted = fit(rounds, "refit")
    for name in ("round_s", "window_s", "encoder_s", "word_beam_s"):
        assert getattr(fitted, name) == pytest.approx(getattr(model, name), abs=2e-4)
    with pytest.raises(ValueError, match="at least 8"):
        fit(rounds[:3], "too few")


def _strip(outcome):
    return dataclasses.replace(outcome, compute_seconds=0.0)  # measured: the one figure allowed to differ


def test_a_row_does_not_depend_on_its_batch_mates_or_lanes(real_set, fw_backend):
    samples = load_dataset(DatasetOptions("builtin-real:en", split="dev", limit=4)).samples
    audios, keys = [s.audio for s in samples], ["clean"] * len(samples)
    one_lane = StreamRunner(fw_backend, StreamModeOptions(sessions=1), lanes=1).run(audios, keys)
    two_lanes = StreamRunner(fw_backend, StreamModeOptions(sessions=1), lanes=2)
    assert two_lanes.lanes == 2
    assert [_strip(o) for o in two_lanes.run(audios, keys)] == [_strip(o) for o in one_lane]
    other_order = two_lanes.run([audios[3], audios[0]], ["clean", "clean"])
    assert [_strip(o) for o in other_order] == [_strip(one_lane[3]), _strip(one_lane[0])]
    # a later run's lanes are the same loaded copies (no second load), and they stream the same rows
    copies = get_copies(fw_backend.model, fw_backend.device, 2)
    again, lane = StreamRunner(fw_backend, StreamModeOptions(sessions=1), lanes=2).run_beside(
        audios[:2], keys[:2], beside=lambda b: b
    )
    assert lane in copies and fw_backend not in copies and len({id(c) for c in copies}) == 2
    assert [_strip(o) for o in again] == [_strip(o) for o in one_lane[:2]]
    assert all(o.text and o.latencies for o in one_lane)


def test_the_offline_decode_beside_the_streams_changes_no_row(real_set, fw_backend):
    """Streaming mode decodes the rows' offline transcripts on a lane's one-thread copy, beside the streams: the
    streams come out as without it, and the transcripts as the worker's own two-thread model decodes them."""
    samples = load_dataset(DatasetOptions("builtin-real:en", split="dev", limit=LIMIT)).samples
    audios, keys = [s.audio for s in samples], ["clean"] * len(samples)
    runner = StreamRunner(fw_backend, StreamModeOptions(sessions=1), lanes=2)
    alone = runner.run(audios, keys)
    beside, (backend, offline) = runner.run_beside(
        audios, keys, beside=lambda b: (b, transcribe_many(audios, backend=b))
    )
    assert backend is not fw_backend  # it ran on a lane's copy
    assert [_strip(o) for o in beside] == [_strip(o) for o in alone]
    direct = transcribe_many(audios, backend=fw_backend)
    assert [(t.text, t.segments) for t in offline] == [(t.text, t.segments) for t in direct]
    assert all(t.words for t in offline)


def test_windows_with_prompts_of_different_lengths_batch_as_alone(real_set, fw_backend):
    samples = load_dataset(DatasetOptions("builtin-real:en", split="dev", limit=3)).samples
    windows = [s.audio[: 4 * 16000] for s in samples]
    prompts = ["", "Thank you for calling.", "Please hold."]  # CTranslate2 cannot batch these in one generate
    decode = StreamOptions().decode
    batched = fw_backend.transcribe_windows(windows, decode, prompts=prompts)
    alone = [fw_backend.transcribe_windows([w], decode, prompts=[p])[0] for w, p in zip(windows, prompts)]
    assert [r.segments for r in batched] == [r.segments for r in alone]
    assert all(r.text for r in batched)
