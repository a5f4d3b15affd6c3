"""``python -m benchmarks asr`` on real speech: a tiny dataset folder and a file, the table, the JSON, bad targets."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from benchmarks.asr_main import main

PROMPTS = ("en/conf-getpin", "en/vm-login", "en/queue-thankyou")


@pytest.fixture(scope="module")
def tiny_folder(real_set, tmp_path_factory):
    """Three real English prompts in an audiofolder of their own (metadata.csv with text and language)."""
    folder = tmp_path_factory.mktemp("tiny")
    with open(real_set / "metadata.csv", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["id"] in PROMPTS]
    assert len(rows) == len(PROMPTS)
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["file_name", "id", "text", "language"])
        for r in rows:
            name = r["id"].replace("/", "-") + ".wav"
            shutil.copyfile(real_set / r["file_name"], folder / name)
            writer.writerow([name, r["id"], r["text"], r["language"]])
    return folder


def test_dataset_folder_prints_the_side_by_side_table(tiny_folder, fw_backend, capsys):
    assert main([str(tiny_folder), "--approaches", "ours-fw", "fw-greedy", "--repeat", "2"]) == 0
    out = capsys.readouterr().out
    assert "3 utterance(s)" in out and "| approach | WER | right language | rtfx |" in out
    ours = next(line for line in out.splitlines() if line.startswith("| ours, faster-whisper"))
    library = next(line for line in out.splitlines() if line.startswith("| faster-whisper transcribe, greedy"))
    for line in (ours, library):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert float(cells[1].rstrip("%")) < 30 and cells[2] == "3/3" and cells[6] == "yes"
        assert float(cells[5]) > 0  # the process CPU seconds of the median run
    assert "ours-fw vs fw-greedy: WER" in out and "throughput" in out and "per CPU second" in out


def test_a_file_with_its_reference_beside_it_and_json(tiny_folder, fw_backend, capsys, tmp_path):
    wav = tmp_path / "pin.wav"
    shutil.copyfile(tiny_folder / "en-conf-getpin.wav", wav)
    wav.with_suffix(".txt").write_text("Please enter the conference pin number.\n")
    assert main([str(wav), "--approaches", "ours-fw", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)["targets"][0]
    ours = report["approaches"]["ours-fw"]
    assert report["utterances"] == 1 and ours["overall"]["words"] == 6 and ours["rtfx"] > 0
    assert ours["cpu_seconds"] > 0 and len(ours["cpu_runs"]) == 1
    assert "conference" in ours["texts"]["pin"].lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [(["/nonexistent/set"], "not found"), ([], "give a file or dataset")],
)
def test_bad_targets_exit_2_with_one_line(args, message, capsys):
    from benchmarks.__main__ import main as benchmarks

    assert benchmarks(["asr", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err


def test_the_library_greedy_without_its_text_conditioning(tiny_folder, fw_backend, capsys, tmp_path):
    """The long-file variant of the library's greedy path runs end to end on real speech, beside fw-greedy, and is
    left out of a plain run (it differs from fw-greedy only where the library decodes more than one window)."""
    import numpy as np
    import soundfile as sf

    from asr.audio import SAMPLE_RATE, load_audio
    from benchmarks.approaches import DEFAULT_APPROACHES

    pause = np.zeros(int(0.7 * SAMPLE_RATE), np.float32)
    parts = [load_audio(tiny_folder / f"{p.replace('/', '-')}.wav") for p in PROMPTS]
    sf.write(tmp_path / "joined.wav", np.concatenate([parts[0], pause, parts[1], pause, parts[2]]), SAMPLE_RATE)
    texts = {r["id"]: r["text"] for r in csv.DictReader(open(tiny_folder / "metadata.csv", encoding="utf-8"))}
    (tmp_path / "joined.txt").write_text(" ".join(texts[p] for p in PROMPTS))
    assert main([str(tmp_path / "joined.wav"), "--approaches", "fw-greedy", "fw-greedy-unconditioned", "--json"]) == 0
    approaches = json.loads(capsys.readouterr().out)["targets"][0]["approaches"]
    for name in ("fw-greedy", "fw-greedy-unconditioned"):
        assert approaches[name]["overall"]["wer"] < 0.3 and "conference" in approaches[name]["texts"]["joined"].lower()
    assert "fw-greedy-unconditioned" not in DEFAULT_APPROACHES


def test_long_files_default_to_the_dev_ones_and_name_the_held_out_ones(real_set):
    """A plain ``--long`` never runs the held-out files; named, they are the set's own builds with references."""
    from benchmarks.targets import long_targets
    from evaluation.realspeech import DEV_LONG_FILES

    assert [t.name for t in long_targets()] == list(DEV_LONG_FILES) == ["en-dev-joined", "en-dev-long"]
    (held,) = long_targets(["en-heldout-joined"])
    reference = " ".join((real_set / "long" / "en-heldout-joined.txt").read_text(encoding="utf-8").split())
    assert held.utterances[0].text == reference and reference.startswith("That agent is")
