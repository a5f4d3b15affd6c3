"""``python -m benchmarks asr`` on real speech: a tiny dataset folder and a file, the table, the JSON, bad targets."""

from __future__ import annotations

import csv
import json
import shutil

import pytest

from asr import omp_wait_setting
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
    assert "WER difference against fw-greedy" in out and "| ours-fw | all | 3 |" in out  # one language: one row
    assert "(small: not to act on) |" in out  # 3 utterances: the scoring module's small-cell rule


def test_a_file_with_its_reference_beside_it_and_json(tiny_folder, fw_backend, capsys, tmp_path):
    wav = tmp_path / "pin.wav"
    shutil.copyfile(tiny_folder / "en-conf-getpin.wav", wav)
    wav.with_suffix(".txt").write_text("Please enter the conference pin number.\n")
    assert main([str(wav), "--approaches", "ours-fw", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["omp_wait"] == omp_wait_setting() != ""  # the figures name the OpenMP wait they ran under
    report = printed["targets"][0]
    ours = report["approaches"]["ours-fw"]
    assert report["utterances"] == 1 and ours["overall"]["words"] == 6 and ours["rtfx"] > 0
    assert ours["cpu_seconds"] > 0 and len(ours["cpu_runs"]) == 1
    assert "conference" in ours["texts"]["pin"].lower()
    assert report["differences"] == []  # the baseline (the library's greedy) did not run
    assert ours["unseeded"] == []  # ours never samples unseeded


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/nonexistent/set"], "not found"),
        ([], "give a file or dataset"),
        (
            ["/nonexistent/talk.wav"],
            "benchmarks asr: /nonexistent/talk.wav: no such file",
        ),  # was "dataset ... not found"
    ],
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


def _result(name, utterances, texts, languages=None, error=None):
    """An ApproachResult as run_target builds it, from given hypotheses (the scoring is the real one)."""
    from benchmarks.approaches import Decoded
    from benchmarks.sidebyside import ApproachResult, score_runs

    decoded = tuple(Decoded(t, lang) for t, lang in zip(texts, languages or [u.language for u in utterances]))
    overall, by_language = score_runs(utterances, decoded)
    return ApproachResult(name, decoded, (1.0,), (1.0,), True, 0, overall, by_language, error)


def _utterances():
    import numpy as np

    from benchmarks.sidebyside import Utterance

    silence = np.zeros(160, np.float32)
    spanish = [f"uno dos tres cuatro cinco seis {i}" for i in range(6)]
    french = [f"un deux trois quatre cinq six {i}" for i in range(6)]
    return tuple(Utterance(f"es/{i}", silence, t, "es") for i, t in enumerate(spanish)) + tuple(
        Utterance(f"fr/{i}", silence, t, "fr") for i, t in enumerate(french)
    )


def test_paired_differences_per_language_and_overall_are_exact_and_seeded():
    """One extra error in one Spanish utterance: Spanish +1/42 words, French 0 with a zero-width interval, overall
    +1/84; the point lies in its interval; the same call gives the same interval (seeded)."""
    from benchmarks.sidebyside import OVERALL, difference_lines, paired_differences

    utts = _utterances()
    refs = [u.text for u in utts]
    worse = [t.replace("dos", "tos") if i == 2 else t for i, t in enumerate(refs)]
    results = [_result("fw-greedy", utts, refs), _result("ours-fw", utts, worse)]
    diffs = {d.language: d for d in paired_differences(utts, results)}
    assert list(diffs) == [OVERALL, "es", "fr"]
    es, fr, overall = diffs["es"], diffs["fr"], diffs[OVERALL]
    assert (es.utterances, es.words, overall.utterances, overall.words) == (6, 42, 12, 84)
    assert es.points == pytest.approx(100 / 42) and overall.points == pytest.approx(100 / 84)
    assert fr.points == 0 and fr.ci.low == fr.ci.high == 0
    assert not any(d.small for d in diffs.values())  # 6 utterances per language: not small
    for d in (es, overall):
        assert d.ci.low <= d.points <= d.ci.high and d.ci.low >= 0 and d.ci.high > 0
        assert d.approach == "ours-fw" and d.baseline == "fw-greedy"
    assert paired_differences(utts, results) == paired_differences(utts, results)
    table = "\n".join(difference_lines(list(diffs.values())))
    assert "against fw-greedy" in table and "| ours-fw | es | 6 | 42 | +2.4 |" in table


def test_paired_differences_score_wrong_language_by_the_reference_language_and_skip_without_a_baseline():
    """A hypothesis decoded in the wrong language still counts in its reference language's row; no baseline (not
    run, or failed) gives no differences rather than a comparison against the wrong thing."""
    from benchmarks.sidebyside import paired_differences

    utts = _utterances()
    refs = [u.text for u in utts]
    languages = ["pt" if i == 0 else u.language for i, u in enumerate(utts)]
    ours = _result("ours-fw", utts, refs, languages)
    assert ours.by_language["es"].right_language == 5 and ours.overall.right_language == 11
    diffs = paired_differences(utts, [_result("fw-greedy", utts, refs), ours])
    assert {d.language: d.points for d in diffs} == {"all": 0, "es": 0, "fr": 0}
    assert paired_differences(utts, [ours]) == []
    failed = _result("fw-greedy", utts, refs, error="RuntimeError: x")
    assert paired_differences(utts, [failed, ours]) == []
    assert [d.approach for d in paired_differences(utts, [ours, failed], baseline="ours-fw")] == []


def test_utterances_the_library_sampled_unseeded_are_named():
    """Where the library's fallback sampled (unseeded), its text is one draw: the table names those utterances, so a
    difference that rests on them is not read as a property of either decoder."""
    from benchmarks.approaches import Decoded
    from benchmarks.sidebyside import ApproachResult, score_runs, unseeded_lines

    utts = _utterances()
    decoded = tuple(Decoded(u.text, u.language, unseeded=u.id in ("es/1", "fr/4")) for u in utts)
    library = ApproachResult("fw-greedy", decoded, (1.0,), (1.0,), True, 0, *score_runs(utts, decoded))
    ours = _result("ours-fw", utts, [u.text for u in utts])
    (line,) = unseeded_lines(utts, [ours, library])
    assert line.startswith("fw-greedy: 2 of 12 utterance(s) sampled") and line.endswith(": es/1, fr/4")
    assert unseeded_lines(utts, [ours]) == []


def test_a_language_the_english_only_model_cannot_decode_is_one_line_before_any_run(tiny_folder, fw_backend, capsys):
    """``--language FR`` on tiny.en is refused as ``python -m asr transcribe`` refuses it (it ran every approach in
    English, its table saying 0/1 right language); ``EN`` is en, and runs."""
    wav = str(tiny_folder / "en-vm-login.wav")
    assert main([wav, "--ref", "login", "--language", "FR", "--approaches", "ours-fw"], prog="python -m asr bench") == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "asr bench: --language fr: whisper-tiny.en is English-only; pick a multilingual model (python -m asr models) "
        "or leave --language out\n"
    )
    assert "running" not in captured.err and captured.out == ""
    assert main([wav, "--ref", "login", "--language", "EN", "--approaches", "ours-fw", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["targets"][0]["utterances"] == 1
