"""``python -m evaluation run`` on the built-in set with the real tiny.en: files, columns, exit codes, resume."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from asr import omp_wait_setting
from evaluation.builtin import ACCENTS
from evaluation.cli import main, parse_threshold
from evaluation.hubsource import CACHE_NOTICES
from evaluation.report import SYNTHETIC_NOTE, count_text
from evaluation.spreadsheet import read_csv

RESULT_COLUMNS = {
    "id",
    "reference",
    "hypothesis",
    "noise",
    "accent",
    "wer",
    "substitutions",
    "deletions",
    "insertions",
    "ref_words",
    "audio_seconds",
    "snr_db_measured",
}


@pytest.fixture(scope="module")
def built_run(tmp_path_factory, fw_backend):
    """One real run: 7 utterances (one per accent) x clean and white@10, with a passing gate."""
    root = tmp_path_factory.mktemp("cli")
    args = ["run", "--dataset", "builtin", "--noise", "clean,white@10", "--limit", "7", "--seed", "1"]
    args += ["--out", str(root / "out"), "--data-dir", str(root / "data"), "--run-id", "gate", "--quiet"]
    code = main([*args, "--max-wer", "10", "--max-wer", "accent=en-gb-scotland:10"])
    return root, args, code


def test_run_writes_every_file_with_the_documented_columns(built_run, capsys):
    root, _, code = built_run
    assert code == 0
    out = root / "out"
    results = read_csv(out / "results.csv")
    assert RESULT_COLUMNS <= set(results.columns)
    assert len(results) == 14 and set(results["noise"]) == {"clean", "white@10"}
    assert set(results["accent"]) == set(ACCENTS)
    assert results.loc[results["noise"] == "white@10", "snr_db_measured"].sub(10).abs().max() < 0.1
    assert results.loc[results["noise"] == "clean", "snr_db_measured"].isna().all()
    assert (results["ref_words"] > 0).all() and (results["audio_seconds"] > 1).all()
    words = results["ref_words"].sum()
    errors = (results["substitutions"] + results["deletions"] + results["insertions"]).sum()

    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["overall"]) >= {"wer", "cer", "utterances", "ref_words", "audio_seconds", "compute_seconds"}
    assert summary["overall"]["wer"] == pytest.approx(errors / words)
    assert summary["overall"]["utterances"] == 14
    assert len(summary["groups"]) == 14  # noise x accent, one utterance each
    group = summary["groups"][0]
    assert {"noise", "accent", "wer", "wer_ci_low", "wer_ci_high", "utterances"} <= set(group)
    assert summary["settings"]["normalizer"] == "by-language" and summary["settings"]["seed"] == 1
    assert "jiwer" in summary["settings"]["packages"]
    assert summary["settings"]["omp_wait"] == omp_wait_setting() != ""  # the process's OpenMP wait, recorded
    assert all(t["passed"] for t in summary["thresholds"])

    table = read_csv(out / "summary.csv")
    assert len(table) == 14 and {"noise", "accent", "wer", "wer_ci_low", "wer_ci_high", "small"} <= set(table.columns)
    markdown = (out / "summary.md").read_text()
    assert SYNTHETIC_NOTE in markdown and "| accent |" in markdown and "en-gb-scotland" in markdown


def test_strict_threshold_exits_1_and_resume_skips_stored_rows(built_run, capsys):
    root, args, _ = built_run
    capsys.readouterr()
    code = main([*args, "--max-wer", "0.01"])
    printed = capsys.readouterr().out
    assert code == 1
    assert "resumed: 14 rows were already stored" in printed  # nothing transcribed again
    assert "(compute)\n" in printed and "(wall)" not in printed  # it said "rtfx 0.0 (wall)" for no work done
    assert "FAIL: WER" in printed and "exceeds --max-wer 0.01" in printed
    assert "en-gb-scotland" in printed and "clean" in printed and "white@10" in printed  # the accent x noise table
    words = read_csv(root / "out" / "results.csv")["ref_words"].sum()
    # the overall line counts rows, utterances and reference words, as summary.md and the Validate page do
    assert f"14 rows (7 utterances x 2 conditions), {words} reference words" in printed
    summary = json.loads((root / "out" / "summary.json").read_text())
    assert summary["thresholds"][0]["passed"] is False


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--noise", "clean,white@x"], "not a number"),
        (["--dataset", "/no/such/dataset"], "not found"),
        (["--model", "no-such-model"], "unknown model"),
        (["--model", "/no/such/model"], "no such model folder '/no/such/model'"),  # said "unknown model"
        (["--max-wer", "accent=en-us"], "not a number"),
        (["--limit", "0"], "--limit"),
        (["--min-words", "-1"], "argument --min-words: must be an integer >= 0, not '-1'"),  # said min_words
        (["--backend", "nope"], "invalid choice"),
        (["--noise", "white@1e9"], "between -20 and 80 dB"),  # was an OverflowError traceback mid-run
        (["--noise", "white@-200"], "between -20 and 80 dB"),  # was accepted silently
        (["--noise", "pink@81"], "between -20 and 80 dB"),
        (["--model", "openai/whisper-base.en"], "'openai/whisper-base.en' is not in the Hugging Face cache"),  # offline
        (["--stream-seconds", "30"], "add --mode streaming or --mode both"),  # was ignored: an offline run
        (["--stream-sessions", "4"], "--stream-sessions sets the streaming path: add --mode streaming"),  # ignored too
        (["--stream-clock", "measured"], "--stream-clock sets the streaming path: add --mode streaming"),
        (["--workers", "2"], "--workers sets the Ray actors: add --executor ray"),  # ignored by the local executor
        (["--cpus-per-worker", "2"], "--cpus-per-worker sets the Ray actors: add --executor ray"),
        (["--seed", "-1", "--limit", "1"], "argument --seed: must be an integer >= 0"),  # was a numpy traceback
        (["--workers", "0"], "argument --workers: must be an integer >= 1, not '0'"),  # said "workers must be"
        (["--cpus-per-worker", "0"], "argument --cpus-per-worker: must be a number above 0, not '0'"),
        # was a traceback per row on multilingual models; XX is xx, as EN is en
        (["--language", "XX", "--limit", "1"], "language 'xx' is not a Whisper language code (python -m asr languages"),
        (["--run-id", "../escape"], "--run-id '../escape': use letters, digits"),  # wrote out/../escape
        (["--run-id", "a/b"], "--run-id 'a/b': use letters, digits"),
        (["--run-id", ""], "--run-id '': use letters, digits"),
        # found once the whole run was done: "error: /proc/x: No such file or directory" (the run stored, no outputs)
        (["--out", "/proc/asrqa-out/run", "--limit", "1"], "--out /proc/asrqa-out/run: cannot write in /proc ("),
        (["--out", "/proc/version/run", "--limit", "1"], "--out /proc/version/run: /proc/version is a file; give a"),
        # ignored on the English-only default: a run of English transcripts whose settings said French
        (["--language", "fr", "--limit", "1"], "--language fr: whisper-tiny.en is English-only"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, extra, message):
    code = main(["run", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_threshold_on_a_column_the_results_lack_exits_2(built_run, capsys):
    _, args, _ = built_run
    assert main([*args, "--max-wer", "region=north:0.5"]) == 2
    assert "no column 'region'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra",
    [
        ["--max-wer", "accent=nope:0.5"],
        ["--max-wer", "mode=streaming:0.3"],
        ["--dataset", "probes", "--max-wer", "0.5"],  # was refused after the run: its rows have no reference words
        ["--dataset", "/no/such/dataset"],
        ["--model", "no-such-model"],
    ],
)
def test_a_run_refused_before_storing_anything_leaves_no_store_behind(tmp_path, capsys, extra):
    """A run stopped by its --max-wer check on the dataset (or a bad dataset or model) left the new --data-dir
    behind, with an empty database and audio folder; an empty folder the user made stays, emptied again."""
    given = tmp_path / "given"
    given.mkdir()
    for data in (tmp_path / "new" / "store", given):
        args = ["run", "--dataset", "builtin", "--limit", "2", "--data-dir", str(data), "--out", str(tmp_path / "o")]
        assert main([*args, *extra]) == 2 and capsys.readouterr().err.startswith("error: ")
        assert [p.name for p in tmp_path.iterdir()] == ["given"] and list(given.iterdir()) == []


def test_a_refused_run_keeps_a_store_that_held_runs(built_run, capsys):
    from evaluation.store import Store

    root, args, _ = built_run
    assert main([*args, "--run-id", "other", "--max-wer", "accent=nope:0.5"]) == 2
    runs = Store(root / "data").runs.list_runs()
    assert [(r.id, r.results) for r in runs if r.id == "gate"] == [("gate", 14)] and "other" not in {r.id for r in runs}


def test_resuming_with_other_settings_exits_2(built_run, capsys):
    _, args, _ = built_run
    changed = [a if a != "clean,white@10" else "clean" for a in args]
    assert main(changed) == 2
    assert "was made with noise" in capsys.readouterr().err


def test_runs_lists_the_stored_runs_and_says_so_when_there_is_none(built_run, tmp_path, capsys):
    root, _, _ = built_run
    capsys.readouterr()
    assert main(["runs", "--data-dir", str(root / "data")]) == 0
    assert capsys.readouterr().out.startswith("gate ")
    assert main(["runs", "--data-dir", str(tmp_path / "empty")]) == 0  # printed nothing
    assert capsys.readouterr().out.startswith(f"no stored runs in {tmp_path / 'empty'}")


def _interrupted_run(tmp_path, presses: int, stop: str = "SIGINT") -> tuple[subprocess.CompletedProcess, str]:
    """A real run (63 utterances x 3 conditions) sent Ctrl-C (SIGINT, or ``stop``) ``presses`` times once its first
    rows are stored; returns the run's result and the runs listing."""
    import signal
    import time

    from evaluation.store import Store

    data = tmp_path / "data"
    args = ["run", "--dataset", "builtin", "--noise", "clean,white@10,pink@5", "--run-id", "stop", "--quiet"]
    process = subprocess.Popen(
        [sys.executable, "-m", "evaluation", *args, "--data-dir", str(data), "--out", str(tmp_path / "o")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a test run in the background ignores it
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if (data / "asrqa.sqlite").exists() and any(r.results for r in Store(data).runs.list_runs()):
            break
        time.sleep(0.2)
    for _ in range(presses):
        process.send_signal(getattr(signal, stop))
        time.sleep(0.05)
    out, err = process.communicate(timeout=240)
    listing = subprocess.run(
        [sys.executable, "-m", "evaluation", "runs", "--data-dir", str(data)], capture_output=True, text=True
    )
    return subprocess.CompletedProcess(process.args, process.returncode, out, err), listing.stdout


@pytest.mark.parametrize(("presses", "stop"), [(1, "SIGINT"), (2, "SIGINT"), (1, "SIGTERM")])
def test_ctrl_c_lists_the_run_as_cancelled_with_the_wer_of_what_was_stored(tmp_path, presses, stop):
    """Ctrl-C left the run listed as "cancelled  WER      -" and lost the batch in progress. Once: the run stops
    after the model call in progress, stores what was decoded and says how much; twice: it stops at once, and the
    listing still gives the WER of the rows stored and how many of the run's 189 they are. SIGTERM (kill, timeout,
    a CI job's time limit) killed the run, listed "running" for ever: it cancels as Ctrl-C does, exit 143."""
    done, listing = _interrupted_run(tmp_path, presses, stop)
    assert done.returncode == (130 if stop == "SIGINT" else 143) and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().endswith("resume with --run-id stop"), done.stderr
    if presses == 1:
        said = "" if stop == "SIGINT" else "SIGTERM: "
        assert f"\n{said}cancelling after the model call in progress" in done.stderr
        assert " of 189 rows stored (WER " in done.stderr
    line = next(line for line in listing.splitlines() if line.startswith("stop "))
    assert "cancelled" in line and "WER      -" not in line and " of 189 rows stored, WER over those)" in line, line
    assert float(line.split("WER")[1].split("%")[0]) >= 0


def test_runs_lists_a_run_killed_mid_way_with_the_wer_of_its_stored_rows(built_run, tmp_path, capsys):
    """A run killed (kill -9) stays "running" with no figures: it was listed as "WER -"."""
    from evaluation.store import Store

    root, _, _ = built_run
    done = Store(root / "data").runs.get_run("gate")
    store = Store(tmp_path / "data")
    store.runs.create_run(done.settings, "killed")
    rows = Store(root / "data").runs.run_results("gate")
    store.runs.add_results("killed", rows.iloc[:5].to_dict("records"))
    capsys.readouterr()
    assert main(["runs", "--data-dir", str(tmp_path / "data")]) == 0
    listed = capsys.readouterr().out
    wer = rows.iloc[:5]["errors"].sum() / rows.iloc[:5]["ref_words"].sum()
    assert (
        listed.startswith(f"killed  running    WER {wer * 100:5.1f}%") and "(5 rows stored, WER over those)" in listed
    )


def test_a_manifest_without_a_known_audio_column_says_what_to_do(tmp_path, capsys):
    """There is no --audio-column: the line said which names it looked for, not that the column must have one."""
    manifest = tmp_path / "m.csv"
    manifest.write_text("recording,text\na.wav,hello\n")
    assert main(["run", "--dataset", str(manifest), "--data-dir", str(tmp_path / "d"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "columns: recording, text); rename the one that holds the audio" in err


def test_unusable_dataset_exits_2(tmp_path, capsys):
    folder = tmp_path / "af"
    folder.mkdir()
    (folder / "metadata.csv").write_text("file_name,text\nmissing.wav,hello\n")
    assert main(["run", "--dataset", str(folder), "--data-dir", str(tmp_path / "d"), "--quiet"]) == 2
    assert "no usable rows" in capsys.readouterr().err


def test_module_entry_point_bad_args():
    done = subprocess.run(
        [sys.executable, "-m", "evaluation", "run", "--noise", "thunder@3"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 2 and "unknown noise kind" in done.stderr


def test_an_argument_error_points_to_help_as_python_m_asr_does(capsys):
    """`python -m asr` says "(--help lists the options)"; this CLI said "required: command" and nothing more."""
    assert main([]) == 2
    assert capsys.readouterr().err == (
        "error: python -m evaluation: the following arguments are required: COMMAND (--help lists the options)\n"
    )
    assert main(["runs", "--bogus"]) == 2
    assert capsys.readouterr().err.endswith("unrecognized arguments: --bogus (--help lists the options)\n")


def test_threshold_syntax():
    assert parse_threshold("0.35").where == () and parse_threshold("35%").max_wer == pytest.approx(0.35)
    t = parse_threshold("noise=white@10,accent=en-gb-scotland:0.5")
    assert t.where == (("noise", "white@10"), ("accent", "en-gb-scotland")) and t.max_wer == 0.5


def test_a_folder_with_broken_rows_keeps_every_good_row_and_names_every_bad_one(real_set, tmp_path, capsys):
    """Two real prompts among eleven broken rows: both are scored, every broken row is named with its reason
    (the CLI listed 10 of 11 and said nothing of the 11th), and the run exits 0."""
    import shutil

    import numpy as np
    import soundfile as sf

    folder = tmp_path / "set"
    folder.mkdir()
    reference = "Please enter the conference pin number."
    shutil.copy(real_set / "audio/en/conf-getpin.wav", folder / "good.wav")
    speech, rate = sf.read(folder / "good.wav", dtype="float32")
    sf.write(folder / "good-48k-stereo.wav", np.stack([speech, speech], 1).repeat(6, 0), rate * 6, subtype="PCM_16")
    speech[100] = np.nan
    sf.write(folder / "nan.wav", speech, rate, subtype="FLOAT")
    sf.write(folder / "zero-length.wav", np.zeros(0, np.int16), rate)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "random.wav").write_bytes(np.random.default_rng(0).bytes(20_000))
    (folder / "truncated.wav").write_bytes((folder / "good.wav").read_bytes()[:20_000])
    (folder / "a-folder").mkdir()
    bad = ["nan", "zero-length", "empty", "random", "truncated", "a-folder", "missing", "missing-2", "missing-3"]
    lines = ["file_name,text", f"good.wav,{reference}"]
    lines += [f"{name}{'' if name == 'a-folder' else '.wav'},{reference}" for name in bad]
    lines += ["good.wav,", "good-48k-stereo.wav," + reference, "good.wav", "," + reference]  # a short row, no file
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    args = ["run", "--dataset", str(folder), "--data-dir", str(tmp_path / "d"), "--out", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    results = read_csv(out / "results.csv")
    assert sorted(results["id"]) == ["good", "good-48k-stereo"] and (results["wer"] <= 0.2).all()
    skipped = json.loads((out / "summary.json").read_text())["skipped"]
    assert len(skipped) == 12 and "skipped 12 dataset row(s):" in printed
    for name in bad:
        assert sum(f"/{name}.wav:" in s or f"/{name}:" in s or s.endswith(f"/{name}.wav") for s in skipped) == 1, name
    assert skipped[6].endswith(f"row 7, column 'file_name': missing audio file {folder / 'missing.wav'}")
    assert sum("the reference text is empty" in s for s in skipped) == 2
    assert all(s in printed for s in skipped[:10]) and "... 2 more in summary.md and summary.json" in printed
    assert skipped[-1].endswith(
        "row 13, column 'file_name': undecodable audio: the cell is empty: no audio file is named"
    )


def test_a_probe_run_prints_invented_words_per_minute_not_a_table_of_nan(tmp_path, capsys):
    """Probes have no reference words: the CLI printed a WER table of n/a and 'overall WER nan% (raw nan%)'; it
    now prints what the Validate page shows, invented words per minute by probe x condition."""
    args = ["run", "--dataset", "probes", "--limit", "3", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]
    assert main([*args, "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "invented words per minute of non-speech by probe x noise (0 is right)" in printed
    assert "overall WER n/a (no reference words), 3 utterances, 0 reference words" in printed
    assert "nan" not in printed.lower() and "silence" in printed
    assert main([*args, "--quiet", "--max-wer", "0.5"]) == 2  # was "FAIL: WER nan over 3 rows", exit 1; now before
    assert "--max-wer '0.5': its rows have no reference words (probes), so no WER" in capsys.readouterr().err


def test_split_picks_the_rows_of_a_folder_s_split_column_and_a_folder_without_one_refuses_it(
    real_set, tmp_path, capsys
):
    """A folder or manifest ignored --split and scored every row (the train rows with the test ones)."""
    import shutil

    folder = tmp_path / "set"
    folder.mkdir()
    lines = ["file_name,text,split"]
    for name, split in (("conf-getpin", "test"), ("conf-full", "train"), ("conf-extended", "train")):
        shutil.copy(real_set / f"audio/en/{name}.wav", folder / f"{name}.wav")
        text = pd.read_csv(real_set / "metadata.csv").set_index("id").loc[f"en/{name}", "text"]
        lines.append(f"{name}.wav,{text},{split}")
    (folder / "metadata.csv").write_text("\n".join(lines) + "\n")
    args = ["run", "--dataset", str(folder), "--data-dir", str(tmp_path / "d"), "--quiet"]
    assert main([*args, "--split", "test", "--out", str(tmp_path / "o")]) == 0
    assert list(read_csv(tmp_path / "o" / "results.csv")["id"]) == ["conf-getpin"]
    capsys.readouterr()
    assert main([*args, "--split", "dev"]) == 2
    assert capsys.readouterr().err.strip() == f"error: dataset {folder}: no split 'dev' (splits: test, train)"
    assert main(["run", "--dataset", "builtin", "--split", "test", "--data-dir", str(tmp_path / "d")]) == 2
    assert "dataset builtin: no split column, so no split 'test'" in capsys.readouterr().err


def test_an_out_or_data_dir_that_is_a_file_is_one_line(tmp_path, capsys):
    """Both were tracebacks, --out only after the whole run had been decoded."""
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    base = ["run", "--dataset", "builtin", "--limit", "1", "--quiet"]
    assert main([*base, "--data-dir", str(tmp_path / "d"), "--out", str(a_file)]) == 2
    assert capsys.readouterr().err == f"error: --out {a_file}: is a file; give a folder for results.csv and summary.*\n"
    # it said "A_FILE/audio: Not a directory", a path nobody typed; runs and compare said the same
    store_is_a_file = (
        f"error: --data-dir {a_file}: is a file; give a folder for the store (runs, recorded test cases)\n"
    )
    for command in ([*base], ["runs"], ["compare", "a", "b"]):
        assert main([*command, "--data-dir", str(a_file)]) == 2
        assert capsys.readouterr().err == store_is_a_file
    for command in (["make-builtin"], ["make-real"]):  # "A_FILE/audio: Not a directory"
        assert main([*command, "--out", str(a_file)]) == 2
        assert capsys.readouterr().err == f"error: --out {a_file}: is a file; give a folder for the set\n"
    # compare printed the comparison, then "error: A_FILE: File exists"
    assert main(["compare", "a", "b", "--data-dir", str(tmp_path / "d"), "--out", str(a_file)]) == 2
    assert capsys.readouterr() == (
        "",
        f"error: --out {a_file}: is a file; give a folder for compare.csv and compare.md\n",
    )


def test_count_text_says_one_in_the_singular():
    """A one-row run said "1 utterances, 1 reference words"; counts of one are singular, others plural."""
    one = pd.DataFrame({"id": ["a"], "noise": ["clean"], "ref_words": [1]})
    assert count_text(one) == "1 utterance, 1 reference word"
    two = pd.DataFrame({"id": ["a", "a"], "noise": ["clean", "white@10"], "ref_words": [3, 3]})
    assert count_text(two) == "2 rows (1 utterance x 2 conditions), 6 reference words"


def test_the_gate_pools_the_rows_each_threshold_selects():
    """evaluation.thresholds (split out of the CLI): a group's limit is checked on its pooled WER (1/10 here,
    where a mean of utterance WERs would say 0.5), and a threshold that cannot be checked is one clear error."""
    from evaluation.thresholds import ThresholdError, gate

    rows = pd.DataFrame({"accent": ["a", "a", "b"], "errors": [1, 0, 3], "ref_words": [1, 9, 3]})
    outcomes, failures = gate(rows, [parse_threshold("accent=a:0.1"), parse_threshold("0.3")])
    assert [(o["wer"], o["rows"], o["passed"]) for o in outcomes] == [(0.1, 2, True), (4 / 13, 3, False)]
    assert failures == ["WER 0.308 over 3 rows exceeds --max-wer 0.3"]
    with pytest.raises(ThresholdError, match="the results have no column 'region'"):
        gate(rows, [parse_threshold("region=north:0.5")])


def test_each_skipped_row_is_said_once_in_the_summary_and_logged_only_under_debug(real_set, tmp_path, capsys, caplog):
    """A skipped row was a WARNING log line on stderr and again a line of the summary; now the summary alone says
    it (and summary.json keeps it); --debug logs it as it is read."""
    import logging
    import shutil

    folder = tmp_path / "set"
    folder.mkdir()
    shutil.copy(real_set / "audio/en/conf-getpin.wav", folder / "good.wav")
    rows = ["file_name,text", "good.wav,Please enter the conference pin number.", "good.wav,", "missing.wav,Hello."]
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    args = ["run", "--dataset", str(folder), "--data-dir", str(tmp_path / "d"), "--out", str(out), "--quiet"]
    caplog.set_level(logging.WARNING)
    assert main(args) == 0
    said = capsys.readouterr()
    skipped = json.loads((out / "summary.json").read_text())["skipped"]
    assert len(skipped) == 2 and "skipped 2 dataset row(s):" in said.out
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for message in skipped:
        assert (said.out + said.err + logged).count(message) == 1, message
    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="evaluation.datasets")
    assert main([*args, "--debug"]) == 0
    debug = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    assert all(f"skipped {message}" in debug for message in skipped)


def test_a_row_whose_loud_float_audio_was_scaled_back_says_so_in_results_csv(real_set, tmp_path, capsys, caplog):
    """A float file peaking at 4.0 is peak-normalised by the engine, which said so only in a stderr log line;
    results.csv's audio_note now tells a tester which row it was, and a row read as it is has none."""
    import shutil

    import soundfile as sf

    folder = tmp_path / "set"
    folder.mkdir()
    shutil.copy(real_set / "audio/en/conf-getpin.wav", folder / "good.wav")
    speech, rate = sf.read(folder / "good.wav", dtype="float32")
    sf.write(folder / "loud.wav", speech * (4.0 / abs(speech).max()), rate, subtype="FLOAT")
    text = "Please enter the conference pin number."
    (folder / "metadata.csv").write_text(f"file_name,text\ngood.wav,{text}\nloud.wav,{text}\n")
    out = tmp_path / "out"
    args = ["run", "--dataset", str(folder), "--data-dir", str(tmp_path / "d"), "--out", str(out), "--quiet"]
    assert main(args) == 0
    notes = read_csv(out / "results.csv", keep_default_na=False).set_index("id")["audio_note"]
    assert notes["good"] == ""
    assert notes["loud"] == "float samples exceed 1.0 (peak 4); peak-normalised to 1.0"
    # and the summary says so once, where a WARNING line per file came mid-run, across the progress bar
    assert not [r for r in caplog.records if r.name == "asr.audio"], caplog.records
    assert (
        "1 row had their audio changed on reading (audio_note in results.csv), e.g. loud: float samples exceed 1.0"
        in (capsys.readouterr().out)
    )


def test_listing_or_comparing_a_data_dir_without_a_store_says_so_and_creates_nothing(tmp_path, capsys):
    """`runs --data-dir NEW` made NEW (an empty store in it) as a side effect of listing; compare did too."""
    new, empty = tmp_path / "new", tmp_path / "empty"
    empty.mkdir()
    assert main(["runs", "--data-dir", str(new)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"no stored runs in {new}: no such folder") and out.count("\n") == 1
    assert main(["runs", "--data-dir", str(empty)]) == 0
    assert capsys.readouterr().out.startswith(f"no stored runs in {empty}: it holds no store")
    assert main(["compare", "a", "b", "--data-dir", str(new)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --data-dir {new}: no such folder") and err.count("\n") == 1
    assert not new.exists() and list(empty.iterdir()) == []


def test_runs_says_there_is_none_in_one_message_whatever_the_reason(tmp_path, capsys):
    """A missing store and a store without a run got two near-identical messages from two places."""
    from evaluation.store import Store

    Store(tmp_path / "store")  # a store with no run yet (the dashboard makes one when it saves a test case)
    tails = []
    for folder, reason in ((tmp_path / "new", ": no such folder"), (tmp_path / "store", "")):
        assert main(["runs", "--data-dir", str(folder)]) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"no stored runs in {folder}{reason} (") and out.count("\n") == 1, out
        tails.append(out.split(" (", 1)[1])
    assert tails[0] == tails[1] == "python -m evaluation run stores one; --data-dir names the store)\n"


def test_the_progress_bar_says_what_is_left_of_a_resumed_run_and_ends_with_done(
    built_run, tmp_path, capsys, monkeypatch
):
    """The bar read "0/14 ... 14 of 14 to transcribe" (the total twice; a resumed run's stored rows unsaid),
    cut to its last 40 characters, and ended on "ETA 0:00"."""
    import shutil
    import sqlite3

    root, args, _ = built_run
    data = tmp_path / "data"
    shutil.copytree(root / "data", data)
    with sqlite3.connect(data / "asrqa.sqlite") as db:  # as if the run had been stopped after its clean rows
        db.execute("DELETE FROM results WHERE run_id = 'gate' AND noise = 'white@10'")
    args = [a for a in args if a != "--quiet"]
    args[args.index("--data-dir") + 1], args[args.index("--out") + 1] = str(data), str(tmp_path / "out")
    capsys.readouterr()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(args) == 0
    lines = [line.strip() for line in capsys.readouterr().err.replace("\r", "\n").splitlines() if line.strip()]
    assert lines[0].endswith("| 7/14, run gate on local: 7 to transcribe, 7 already stored"), lines
    assert " of 14" not in "\n".join(lines)
    assert lines[-1].startswith("100%|") and "| 14/14, done in " in lines[-1] and "ETA" not in lines[-1], lines


def test_output_into_a_pipe_whose_reader_left_keeps_the_exit_code_and_says_nothing(built_run):
    """`run ... | head -1` printed "error: : Broken pipe" and exited 2, a failed --max-wer gate (exit 1) too."""
    import os

    _, args, _ = built_run
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the summary is printed
    for extra, code in ((["--max-wer", "0.01"], 1), ([], 0)):
        cmd = [sys.executable, "-m", "evaluation", *args, *extra]
        done = subprocess.run(cmd, stdout=write, stderr=subprocess.PIPE, text=True, timeout=300)
        assert done.returncode == code and done.stderr == "", done.stderr
    done = subprocess.run(
        [sys.executable, "-m", "evaluation", "runs", "--data-dir", args[args.index("--data-dir") + 1]],
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
    )
    os.close(write)
    assert done.returncode == 0 and done.stderr == "", done.stderr


def test_the_hub_client_s_retries_are_not_logged_line_by_line():
    """A hub dataset with no network logged each of its ten retries twice (the hub's handler and ours): 40 lines
    before the one-line error. The retry warnings are shown with --debug only, once each (asr/logs.py)."""
    code = (
        "import sys; from evaluation.cli import main; code = main(sys.argv[1:]);"
        "from huggingface_hub.utils import logging as hub;"
        "hub.get_logger('huggingface_hub.utils._http').warning('Retrying in 1s [Retry 1/5].')"
    )
    for debug, lines in (([], 1), (["--debug"], 2)):
        done = subprocess.run(
            [sys.executable, "-c", code, "run", "--limit", "0", *debug], capture_output=True, text=True, timeout=120
        )
        assert done.stderr.startswith("error: --limit must be at least 1") and len(done.stderr.splitlines()) == lines


# a warning and a debug line from each library with a console handler of its own, imported after the command ran
LIBRARY_LINES = (
    "import logging, datasets, transformers; from huggingface_hub.utils import logging as hub\n"
    "for name in ('datasets.load', 'transformers.pipelines', 'huggingface_hub.file_download'):\n"
    "    logging.getLogger(name).warning('%s says W', name); logging.getLogger(name).debug('%s says D', name)\n"
)


@pytest.mark.parametrize(
    ("cli", "plain", "debug"),
    [
        ("asr", ["models"], ["--debug", "models"]),
        ("evaluation", ["run", "--limit", "0"], ["run", "--limit", "0", "--debug"]),
    ],
)
def test_each_library_line_is_printed_once_at_the_command_s_level(cli, plain, debug):
    """datasets' and the hub client's warnings were printed twice (their own handler's bare text, then ours), as
    transformers' were where CI is set; their debug lines were not shown with --debug. Now each once, in our
    format, at the command's level (the hub client's warnings with --debug only: its retries)."""
    code = f"import sys; from {cli}.cli import main; main(sys.argv[1:])\n{LIBRARY_LINES}"
    env = {**os.environ, "CI": "1"}  # transformers' records propagate only then
    for argv in (plain, debug):
        done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env, timeout=120)
        lines = [line for line in done.stderr.splitlines() if " says " in line]
        assert all(line.startswith(("WARNING ", "DEBUG ")) for line in lines), done.stderr  # ours, not bare
        said = sorted((line.split(" says ")[0].split()[-1], line[-1]) for line in lines)  # (logger, W or D)
        libraries = ("datasets.load", "huggingface_hub.file_download", "transformers.pipelines")
        expected = (
            [(n, k) for n in libraries for k in "DW"] if argv == debug else [(libraries[0], "W"), (libraries[2], "W")]
        )
        assert said == expected, done.stderr


def test_datasets_cache_notices_are_debug_lines_while_offline_mode_is_on(monkeypatch, caplog):
    """Offline mode on (the user's or the hub probe's), datasets' notice that it read its cache shows with --debug
    only, as a DEBUG line; with it off (the hub has no such id) it stays a warning."""
    import datasets

    notice = CACHE_NOTICES["datasets.load"] + " test-org/x couldn't be found on the Hugging Face Hub"
    for offline, level, shown in (
        (True, logging.WARNING, []),
        (True, logging.DEBUG, ["DEBUG"]),
        (False, logging.WARNING, ["WARNING"]),
    ):
        monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", offline)
        caplog.clear()
        caplog.set_level(level, logger="datasets")
        logging.getLogger("datasets.load").warning(notice)
        assert [r.levelname for r in caplog.records if r.name == "datasets.load"] == shown


def datasets_cache_layout(cache: Path, repo_id: str, rows: dict[str, list]) -> None:
    """A hub dataset as ``datasets`` keeps it once loaded (NAMESPACE___NAME/default/VERSION/HASH, an Arrow file per
    split), prepared offline by the Parquet builder that prepares a hub dataset's Parquet files."""
    from datasets import Audio, Dataset
    from datasets.packaged_modules.parquet.parquet import Parquet

    namespace, name = repo_id.split("/")
    parquet = cache.parent / f"{name}.parquet"
    Dataset.from_dict(rows).cast_column("audio", Audio()).to_parquet(str(parquet))
    files = {"test": str(parquet)}  # (with repo_id the builder wants hf:// files: the folder is renamed instead)
    Parquet(
        cache_dir=str(cache), dataset_name=name, config_id="default", hash="0", data_files=files
    ).download_and_prepare()
    (cache / name).rename(cache / f"{namespace}___{name}")


def test_a_hub_dataset_with_no_hub_is_one_line_at_once_or_read_from_the_datasets_cache(
    speech_wav, speech_text, tmp_path
):
    """With offline mode unset and no hub, datasets retried for about 45 s before "Couldn't reach 'ORG/NAME' on the
    Hub", and as long again before it read a dataset it had cached. The probe models use now says at once that an
    uncached id cannot be had, and a cached one is read with offline mode switched on for the process."""
    from tests.test_cli import no_hub_env

    env = {**no_hub_env(tmp_path), "HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    audio = {"bytes": speech_wav.read_bytes(), "path": "speech.wav"}
    datasets_cache_layout(tmp_path / "datasets", "test-org/cached-set", {"audio": [audio], "text": [speech_text]})
    done = {}
    for name in ("test-org/no-such-set", "test-org/cached-set"):
        args = ["run", "--dataset", f"hub:{name}", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / name)]
        done[name] = subprocess.run(
            [sys.executable, "-m", "evaluation", *args, "--quiet"], capture_output=True, text=True, env=env, timeout=300
        )
    missing = done["test-org/no-such-set"]
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr
    assert missing.stderr.startswith(
        "error: dataset hub:test-org/no-such-set: cannot reach the Hugging Face hub (127.0.0.1) and "
        f"test-org/no-such-set is not in the datasets cache ({tmp_path / 'datasets'}); available offline: builtin"
    )
    assert not (tmp_path / "test-org/no-such-set").exists()
    cached = done["test-org/cached-set"]
    assert cached.returncode == 0, cached.stderr
    # datasets' "Using the latest cached version ..." and "Found the latest cached dataset configuration ...",
    # each printed twice by two handlers for each of two loads: DEBUG lines while offline mode is on
    assert not any(notice in cached.stderr for notice in CACHE_NOTICES.values()), cached.stderr
    results = read_csv(tmp_path / "test-org/cached-set" / "results.csv")
    assert list(results["reference"]) == [speech_text] and "smooth" in results["hypothesis"][0].lower()


def _undocumented(parser) -> list[str]:
    """Options and arguments of each subcommand that --help lists with nothing after them."""
    import argparse

    subcommands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    return [
        f"{name} {action.dest}"
        for name, sub in subcommands.items()
        for action in sub._actions
        if not action.help and not isinstance(action, argparse._HelpAction)
    ]


def test_every_option_of_every_command_says_what_it_does():
    """`run --help` listed --text-column, --split, --seed, ... with no word on them; compare RUN_A, RUN_B too."""
    from evaluation.cli_parser import build_parser

    assert _undocumented(build_parser()) == []


def test_help_says_what_ctrl_c_does_and_what_the_runs_listing_shows(capsys):
    """`run --help` gave exit codes 0, 1 and 2 but not Ctrl-C's 130; `runs --help` had no description at all."""
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "130 when cancelled: Ctrl-C stops after the model call in progress" in text
    assert "SIGTERM (kill, timeout, a CI job's time limit) cancels the same way, exit 143" in text
    assert main(["runs", "--help"]) == 0
    assert "shows the WER of its stored rows" in " ".join(capsys.readouterr().out.split())


def test_a_dataset_without_groups_prints_its_noise_table_without_row_numbers(real_set, tmp_path, capsys):
    """A manifest with no group column printed "0  clean  0.0% ..." under "noise  WER ...": pandas' row index."""
    audio = real_set / "audio" / "en"
    manifest = tmp_path / "plain.csv"
    manifest.write_text(f"path,transcript\n{audio / 'activated.wav'},activated\n{audio / 'added.wav'},added\n")
    args = ["run", "--dataset", str(manifest), "--noise", "clean,white@10", "--quiet"]
    assert main([*args, "--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "o")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("WER by noise (pooled, 95% CI; * = too few utterances to trust)")
    assert lines[1].split()[:2] == ["noise", "WER"], lines
    assert [line.split()[0] for line in lines[2:4]] == ["clean", "white@10"], lines


def test_a_run_on_both_paths_counts_and_gates_each_utterance_once(real_set, tmp_path, capsys):
    """--mode both said "2 utterances" and "detected languages: en 4; ...: 4/4": each row counted per path; and
    --max-wer pooled both paths' rows (each utterance twice, two transcripts blended), not the overall figure."""
    args = ["run", "--dataset", "builtin-real:en", "--min-words", "3", "--limit", "2", "--mode", "both", "--quiet"]
    gates = ["--max-wer", "10", "--max-wer", "mode=streaming:10"]
    assert main([*args, *gates, "--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "o")]) == 0
    printed = capsys.readouterr().out
    assert "2 utterances" in printed and "detected languages: en 2; in the dataset's language: 2/2" in printed
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["languages"]["rows"] == 2
    offline, streaming = summary["thresholds"]
    assert (offline["rows"], offline["wer"]) == (2, summary["overall"]["wer"])
    assert (streaming["rows"], streaming["wer"]) == (2, summary["overall_streaming"]["wer"])


def test_a_max_wer_above_one_without_a_percent_sign_is_warned_about(capsys):
    """--max-wer 35 is 3500% WER, a gate that never fails: whoever typed it meant 35%."""
    assert main(["run", "--max-wer", "35", "--max-wer", "35%", "--max-wer", "0.35", "--limit", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "warning: --max-wer 35 is 3500% WER; for 35% write 35% or 0.35",
        "error: --limit must be at least 1, not 0",
    ]


def test_compare_of_a_run_the_store_lacks_says_how_to_list_the_runs(tmp_path, capsys):
    from evaluation.store import Store

    Store(tmp_path / "store")
    assert main(["compare", "nope", "other", "--data-dir", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no validation run with id 'nope'") and err.count("\n") == 1
    assert err.endswith(f"(python -m evaluation runs --data-dir {tmp_path / 'store'} lists them)\n"), err


def test_a_corrupt_noise_file_is_one_line_before_the_run_and_nothing_is_stored(real_set, tmp_path, capsys):
    """Found when the generator first drew it: the run failed mid-way and a "failed" run stayed in the store."""
    import shutil

    noise = tmp_path / "noise"
    noise.mkdir()
    shutil.copy(next(p for p in sorted((real_set / "audio").rglob("*.wav"))), noise / "good.wav")
    (noise / "zz-broken.wav").write_bytes(b"RIFF" + bytes(range(256)) * 8)
    data = tmp_path / "data"
    args = ["run", "--dataset", str(real_set), "--noise", f"clean,file:{noise}@10", "--limit", "2", "--quiet"]
    assert main([*args, "--data-dir", str(data), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: noise file {noise / 'zz-broken.wav'}: not a decodable") and err.count("\n") == 1
    assert not data.exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        ("accent=xx:0.5", "no row of {set} has accent=xx (accent values: en-US, "),
        ("noise=white@5,accent=en-US:0.5", "this run has no noise 'white@5' (it has clean, white@10)"),
        ("mode=streaming:0.5", "this run has no mode 'streaming' (it has offline)"),
    ],
)
def test_a_threshold_on_a_group_or_noise_no_row_has_is_refused_before_transcribing(
    real_set, tmp_path, capsys, threshold, message
):
    """It was found after the whole run, with results.csv and the summaries written."""
    out = tmp_path / "out"
    args = ["run", "--dataset", str(real_set), "--noise", "clean,white@10", "--limit", "3", "--quiet"]
    assert main([*args, "--max-wer", threshold, "--data-dir", str(tmp_path / "d"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: --max-wer {threshold!r}: ") and err.count("\n") == 1, err
    assert message.format(set=real_set) in err and not out.exists()
