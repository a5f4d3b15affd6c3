"""The Python API the dashboard uses: run_validation with progress, cancel and resume; both backends; replaying
an utterance's audio; alignments; comparing runs."""

from __future__ import annotations

import dataclasses
import threading

import numpy as np
import pandas as pd
import pytest

from evaluation.cli import main
from evaluation.compare import compare_runs
from evaluation.replay import check_regenerated, row_alignment, utterance_audio
from evaluation.runner import RunError, RunOptions, load_result, run_validation
from evaluation.spreadsheet import read_csv
from evaluation.store import RunSettings, Store
from tests.conftest import HARVARD, speak


def test_cancel_then_resume_skips_what_was_stored(tmp_path, fw_backend):
    store = Store(tmp_path / "data")
    options = RunOptions(noise=("clean",), limit=8, chunk_size=4, run_id="resumable", seed=2)
    cancel = threading.Event()
    calls: list[tuple[int, int]] = []

    def progress(done: int, total: int, message: str) -> None:
        calls.append((done, total))
        if done >= 4:
            cancel.set()

    first = run_validation(options, store, progress=progress, cancel=cancel)
    assert first.status == "cancelled" and len(first.rows) == 4
    assert calls[0] == (0, 8) and calls[-1] == (4, 8)
    assert store.runs.get_run("resumable").status == "cancelled"

    second = run_validation(options, store, progress=lambda d, t, m: calls.append((d, t)))
    assert second.status == "finished" and second.resumed_rows == 4 and len(second.rows) == 8
    assert calls[-1] == (8, 8)
    kept = second.rows.iloc[:4][["id", "hypothesis", "compute_seconds"]]
    pd.testing.assert_frame_equal(kept, first.rows[["id", "hypothesis", "compute_seconds"]])
    assert second.rows["id"].is_unique
    assert second.audio_seconds_done == pytest.approx(second.rows.iloc[4:]["audio_seconds"].sum())

    again = load_result(store, "resumable")
    assert again.summary.overall == second.summary.overall
    assert list(again.summary.pivot.columns) == ["clean"]
    assert again.settings.min_words == 0  # recorded: another selection is another run
    with pytest.raises(RunError, match="made with min_words=0, not 3"):
        run_validation(dataclasses.replace(options, min_words=3), store)


class _CancelAfter(threading.Event):
    """A cancel switch that turns itself on at its ``n``-th look: the run is checked before each batch, as the
    worker starts one, and after each model call, so this cancels in the middle of a batch."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def is_set(self) -> bool:
        self.n -= 1
        return self.n <= 0


def test_a_cancel_mid_batch_keeps_the_utterances_already_decoded(tmp_path, fw_backend):
    """A cancel between two model calls of a batch dropped the whole batch: here (one batch of 8 utterances, 2
    per model call) the run stored nothing. Now the finished utterances are stored, and the resumed run decodes
    only the others, to the same rows as a run never cancelled."""
    options = RunOptions(noise=("clean",), limit=8, chunk_size=8, run_id="mid", seed=3)
    options = dataclasses.replace(options, decode=dataclasses.replace(options.decode, batch_size=2))
    store = Store(tmp_path / "data")
    first = run_validation(options, store, cancel=_CancelAfter(4))  # before the batch, worker start, 2 model calls
    assert first.status == "cancelled" and 0 < len(first.rows) < 8
    kept = store.runs.get_run("mid")
    assert kept.results == len(first.rows) and kept.summary["rows_planned"] == 8
    assert kept.summary["overall"]["utterances"] == len(first.rows)

    second = run_validation(options, store)
    assert second.status == "finished" and second.resumed_rows == len(first.rows) and len(second.rows) == 8
    assert second.audio_seconds_done == pytest.approx(second.rows.iloc[len(first.rows) :]["audio_seconds"].sum())
    never = run_validation(dataclasses.replace(options, run_id="whole"), Store(tmp_path / "other"))
    columns = ["id", "hypothesis", "wer", "ref_words"]
    pd.testing.assert_frame_equal(second.rows[columns], never.rows[columns])


def test_noisy_run_tables_replay_and_alignment(tmp_path, fw_backend):
    store = Store(tmp_path / "data")
    result = run_validation(RunOptions(noise=("clean", "babble@5"), limit=7, seed=4), store)
    summary = result.summary
    assert summary.group_columns == ("accent",) and summary.speaker_column == "speaker"
    assert list(summary.pivot.columns) == ["clean", "babble@5"] and len(summary.pivot) == 7
    assert set(summary.tables) == {"noise", "accent"}
    noise_table = summary.tables["noise"].set_index("noise")
    rows = result.rows
    for condition in ("clean", "babble@5"):
        part = rows[rows["noise"] == condition]
        assert noise_table.loc[condition, "wer"] == pytest.approx(part["errors"].sum() / part["ref_words"].sum())
        assert noise_table.loc[condition, "utterances"] == 7

    row = rows[rows["noise"] == "babble@5"].iloc[0].to_dict()
    audio = utterance_audio(store, result.run_id, row["id"], "babble@5")
    assert audio.clean.size == audio.noisy.size and not np.array_equal(audio.clean, audio.noisy)
    assert audio.provenance.snr_db_measured == pytest.approx(5, abs=0.1)
    assert check_regenerated(row, audio)
    assert ";".join(audio.provenance.babble_sources) == row["babble_sources"]
    spans = row_alignment(row, result.settings.normalizer)
    assert sum(len(s.reference) for s in spans) == row["ref_words"]
    assert sum(1 for s in spans for _ in s.hypothesis if s.op == "insert") == row["insertions"]


def test_transformers_backend_runs_the_same_validation(tmp_path):
    store = Store(tmp_path / "data")
    result = run_validation(RunOptions(noise=("clean",), limit=2, backend="transformers"), store)
    assert result.settings.backend == "transformers" and len(result.rows) == 2
    assert result.rows["hypothesis"].str.len().min() > 0


def test_saved_dataset_with_custom_columns_through_the_cli(tmp_path, fw_backend, capsys):
    from datasets import Audio, Dataset

    wavs = [speak(HARVARD[i], tmp_path / f"{i}.wav", v) for i, v in enumerate(["en-us", "en-gb"])]
    rows = {
        "clip": [{"bytes": w.read_bytes(), "path": w.name} for w in wavs],
        "prompt": HARVARD[:2],
        "region": ["us", "uk"],
    }
    Dataset.from_dict(rows).cast_column("clip", Audio()).save_to_disk(str(tmp_path / "ds"))
    args = ["run", "--dataset", f"hub:{tmp_path / 'ds'}", "--text-column", "prompt", "--group-column", "region"]
    code = main([*args, "--out", str(tmp_path / "out"), "--data-dir", str(tmp_path / "d"), "--quiet"])
    assert code == 0
    results = read_csv(tmp_path / "out" / "results.csv")
    assert list(results["region"]) == ["us", "uk"] and list(results["reference"]) == HARVARD[:2]
    assert "region" in capsys.readouterr().out


def _fake_run(store: Store, run_id: str, error_rate: float, seed: int, per_accent: int = 40, **settings) -> None:
    """Stored rows with known error counts: compare is arithmetic on stored rows, no model needed."""
    rng = np.random.default_rng(seed)
    settings = RunSettings(
        model="m", backend="faster-whisper", dataset="builtin", noise=("clean",), group_columns=("accent",), **settings
    )
    store.runs.create_run(settings, run_id)
    rows = []
    for accent, shift in (("a", 0.0), ("b", 0.3)):
        for i in range(per_accent):
            rate = min(error_rate + (shift if run_id == "worse" else 0.0), 1.0)
            rows.append(
                {
                    "id": f"{accent}{i}",
                    "noise": "clean",
                    "accent": accent,
                    "speaker": f"{accent}{i % 8}",
                    "errors": int(rng.binomial(10, rate)),
                    "ref_words": 10,
                }
            )
    store.runs.add_results(run_id, rows)
    store.runs.finish_run(run_id)


def test_compare_marks_regressions_beyond_the_ci(tmp_path, capsys):
    store = Store(tmp_path / "data")
    _fake_run(store, "base", 0.1, 1)
    _fake_run(store, "same", 0.1, 1)
    _fake_run(store, "worse", 0.1, 1)
    same = compare_runs(store, "base", "same")
    assert (same.table["delta"] == 0).all() and same.regressions.empty
    worse = compare_runs(store, "base", "worse")
    table = worse.table.set_index(["noise", "accent"])
    assert table.loc[("(all)", "b"), "change"] == "regression" and table.loc[("(all)", "b"), "paired"]
    assert table.loc[("(all)", "a"), "change"] == "" and table.loc[("(all)", "a"), "delta"] == 0
    assert table.loc[("(all)", "b"), "delta_ci_low"] > 0
    assert main(["compare", "base", "worse", "--data-dir", str(tmp_path / "data"), "--fail-on-regression"]) == 1
    printed = capsys.readouterr().out
    assert "REGRESSION" in printed and "regression(s) beyond the 95% CI" in printed
    assert main(["compare", "base", "same", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "c")]) == 0
    assert (tmp_path / "c" / "compare.csv").exists() and (tmp_path / "c" / "compare.md").exists()
    assert main(["compare", "base", "nope", "--data-dir", str(tmp_path / "data")]) == 2


def test_compare_with_a_run_of_both_paths_compares_path_with_path(tmp_path):
    """A run of both paths against an offline run: its offline rows only (pooled with its streaming rows at 50%,
    B read about 30% against A's 10%: a regression neither path has); two runs of both: path against path."""
    store = Store(tmp_path / "data")
    _fake_run(store, "offline", 0.1, 1)
    store.runs.create_run(RunSettings("m", "faster-whisper", "builtin", ("clean",), group_columns=("accent",)), "both")
    offline = load_result(store, "offline").rows.to_dict("records")
    path = {"mode": "streaming", "errors": 5, "first_commit_s": 1.0, "flips": 0, "duplicate_words": 0}
    streamed = [{**r, **path, "wer_delta_offline": (5 - r["errors"]) / r["ref_words"]} for r in offline]
    store.runs.add_results("both", [{**r, "mode": "offline"} for r in offline] + streamed)
    store.runs.finish_run("both")
    table = compare_runs(store, "offline", "both").table.set_index(["noise", "accent"])
    assert "mode" not in table.columns and table.loc[("(all)", "(all)"), "delta"] == 0, table
    assert table.loc[("(all)", "(all)"), "utterances_b"] == len(offline)
    both = compare_runs(store, "both", "both").table.set_index(["mode", "noise", "accent"])
    assert both.loc[("streaming", "(all)", "(all)"), "wer_a"] == 0.5 and (both["delta"] == 0).all()
    assert both.loc[("offline", "(all)", "(all)"), "wer_a"] == load_result(store, "offline").summary.overall.wer


def test_compare_of_runs_with_different_conditions_compares_the_shared_ones(tmp_path, capsys):
    """README's `compare RUN_A RUN_B` on a clean,white@10,babble@5 run against a clean,white@10 one: the (all)
    rows pooled A's hard babble rows against B without them, an "improvement" of 19 points where every shared
    condition was the same. Now both sides keep the conditions both took, and the noise line says so."""
    store = Store(tmp_path / "data")
    rows = [
        {"id": f"u{i}", "noise": noise, "accent": "a", "speaker": f"s{i % 8}", "errors": errors, "ref_words": 10}
        for noise, errors in (("clean", 1), ("white@10", 3), ("babble@5", 9))
        for i in range(20)
    ]
    for run_id, noise in (("three", ("clean", "white@10", "babble@5")), ("two", ("clean", "white@10"))):
        store.runs.create_run(RunSettings("m", "faster-whisper", "builtin", noise, group_columns=("accent",)), run_id)
        store.runs.add_results(run_id, [r for r in rows if r["noise"] in noise])
        store.runs.finish_run(run_id)
    comparison = compare_runs(store, "three", "two")
    table = comparison.table.set_index(["noise", "accent"])
    assert set(table.index.get_level_values("noise")) == {"(all)", "clean", "white@10"}
    assert (table["delta"] == 0).all() and (table["change"] == "").all(), table
    assert table.loc[("(all)", "(all)"), "wer_a"] == 0.2 and table.loc[("(all)", "(all)"), "utterances_a"] == 40
    (noise_line,) = [d for d in comparison.differences if d.startswith("noise:")]
    assert "compared on the 2 condition(s) both runs took (only in A: babble@5)" in noise_line
    assert main(["compare", "three", "two", "--data-dir", str(tmp_path / "data")]) == 0
    assert "only in A: babble@5" in capsys.readouterr().out
    assert compare_runs(store, "two", "two").differences == ()


def test_compare_never_marks_small_cells(tmp_path):
    store = Store(tmp_path / "data")
    _fake_run(store, "base", 0.1, 1, per_accent=3)
    _fake_run(store, "worse", 0.1, 1, per_accent=3)
    table = compare_runs(store, "base", "worse").table
    cells = table[table["accent"] != "(all)"]  # three utterances per accent: small
    assert cells["small"].all() and (cells["change"] == "").all()
    assert (cells.loc[cells["accent"] == "b", "delta"] > 0).all()
    assert not table.loc[table["accent"] == "(all)", "small"].any()


def test_compare_names_every_setting_a_resumed_run_must_share(tmp_path):
    store = Store(tmp_path / "data")
    _fake_run(store, "base", 0.1, 1, per_accent=3)
    _fake_run(store, "other", 0.1, 1, per_accent=3, min_words=3, mode="streaming", language="en")
    differences = compare_runs(store, "base", "other").differences
    assert [d.split(":")[0] for d in differences] == ["min_words", "language", "mode"]
    assert compare_runs(store, "base", "base").differences == ()


def test_rows_decode_on_a_one_thread_copy_on_two_cores(monkeypatch, fw_backend, real_set):
    """Where ONE_THREAD_CORES applies, a local run's rows go to the one-thread copy the streaming lanes share (the
    sweep's OpenMP barriers gone); on more cores to the shared model. Both give the same text, batched."""
    from asr.backends import get_backend, get_copies
    from asr.results import DecodeOptions
    from asr.transcribe import transcribe_many
    from evaluation import worker

    options = worker.WorkerOptions(model="whisper-tiny.en", backend="faster-whisper")
    monkeypatch.setattr(worker, "cpu_cores", lambda: worker.ONE_THREAD_CORES)
    one = worker.load_worker_backend(options)
    assert one is get_copies("whisper-tiny.en", "auto", 1)[0] and one is not fw_backend
    monkeypatch.setattr(worker, "cpu_cores", lambda: worker.ONE_THREAD_CORES + 1)
    assert worker.load_worker_backend(options) is get_backend("whisper-tiny.en", "faster-whisper")
    clips = [str(real_set / f"audio/en/{name}.wav") for name in ("conf-getpin", "vm-Cust1", "queue-thankyou")]
    texts = [[t.text for t in transcribe_many(clips, backend=b, options=DecodeOptions())] for b in (one, fw_backend)]
    assert texts[0] == texts[1] and all(text.strip() for text in texts[0])
