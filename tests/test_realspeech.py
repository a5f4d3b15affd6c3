"""The real-speech set built from Debian's Asterisk prompts: columns, splits, exclusions, byte-identical rebuilds."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from evaluation.datasets import DatasetOptions, load_dataset
from evaluation.realspeech import (
    COLUMNS,
    DEV_AFTER,
    LONG_PROMPT,
    SOUNDS_DIR,
    VOICES,
    exclusion,
    make_real,
    parse_texts,
    texts_dir,
    texts_file,
)
from evaluation.sources import DatasetError
from evaluation.spreadsheet import read_csv

# A few real prompts per voice: names before and after DEV_AFTER, and the tone prompts that must be left out.
PICK = ("agent-pass", "beep", "ascending-2tone", "conf-getpin", "vm-login", "queue-thankyou", "followme/options")


def _packages_or_skip() -> Path:
    if not all((SOUNDS_DIR / v.voice).is_dir() and texts_file(v, texts_dir()).is_file() for v in VOICES):
        pytest.skip("real-speech Debian packages not installed (scripts/setup.sh)")
    return texts_dir()


@pytest.fixture(scope="module")
def mini_packages(tmp_path_factory) -> tuple[Path, Path]:
    """A copy of the packages' layout holding only PICK (real audio and real transcript lines)."""
    texts_root = _packages_or_skip()
    root = tmp_path_factory.mktemp("packages")
    sounds, texts = root / "sounds", root / "texts"
    for voice in VOICES:
        lines = [f"{n}: {t}" for n, t in parse_texts(texts_file(voice, texts_root)) if n in PICK]
        for name in PICK:
            wav = SOUNDS_DIR / voice.voice / f"{name}.wav"
            if wav.is_file():
                (sounds / voice.voice / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(wav, sounds / voice.voice / f"{name}.wav")
        target = texts_file(voice, texts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with gzip.open(target, "wt", encoding="utf-8") as f:
            f.write("; a comment line\n\n" + "\n".join(lines) + "\n")
    return sounds, texts


def _digests(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def test_build_has_the_columns_splits_and_no_tone_prompts(mini_packages, tmp_path):
    sounds, texts = mini_packages
    out = make_real(tmp_path / "real", sounds, texts)
    meta = pd.read_csv(out / "metadata.csv", dtype=str, keep_default_na=False)
    assert tuple(meta.columns) == COLUMNS
    assert not meta["prompt"].isin(["beep", "ascending-2tone"]).any()
    assert not meta["text"].str.contains(r"[\[\]()]").any()
    en = meta[meta["language"] == "en"].set_index("prompt")
    assert en.loc["agent-pass", "split"] == "heldout" and en.loc["conf-getpin", "split"] == "heldout"
    assert en.loc["vm-login", "split"] == "dev" and en.loc["followme/options", "split"] == "dev"
    assert en.loc["conf-getpin", "text"] == "Please enter the conference pin number."
    assert set(meta.loc[meta["language"] != "en", "split"]) == {"dev"}
    assert set(meta["accent"]) == {"en-US", "es-MX", "fr-CA", "it-IT", "ru-RU"}
    assert meta["id"].is_unique
    for row in meta.itertuples():
        info = sf.info(str(out / row.file_name))
        assert abs(info.duration - float(row.duration)) < 1e-3 and info.samplerate == 8000
        assert (out / row.file_name).read_bytes() == (sounds / row.voice / f"{row.prompt}.wav").read_bytes()
    joined = sf.info(str(out / "long" / "en-dev-joined.wav"))
    dev_long = meta[(meta["language"] == "en") & (meta["split"] == "dev") & (meta["words"].astype(int) >= 6)]
    expected = dev_long["duration"].astype(float).sum() + 0.7 * (len(dev_long) - 1)
    assert abs(joined.duration - expected) < 0.01
    assert (out / "long" / "en-dev-joined.txt").read_text().strip() == " ".join(dev_long["text"])
    # The held-out recipes: the same joins over the prompts nobody tunes on, with their split in the long metadata.
    held = meta[(meta["language"] == "en") & (meta["split"] == "heldout")]
    held_joined = held[held["words"].astype(int) >= 6]
    assert len(held_joined) >= 2
    assert (out / "long" / "en-heldout-joined.txt").read_text().strip() == " ".join(held_joined["text"])
    expected = held["duration"].astype(float).sum() + 0.35 * (len(held) - 1)
    assert abs(sf.info(str(out / "long" / "en-heldout-long.wav")).duration - expected) < 0.01
    long_meta = pd.read_csv(out / "long" / "metadata.csv").set_index("id")
    assert long_meta.loc["en-dev-joined", "split"] == "dev" and long_meta.loc["en-heldout-long", "split"] == "heldout"
    assert "CC BY-SA 3.0" in (out / "README.md").read_text()


def test_rebuild_is_byte_identical_and_a_no_op_when_up_to_date(mini_packages, tmp_path):
    sounds, texts = mini_packages
    first = _digests(make_real(tmp_path / "a", sounds, texts))
    second = _digests(make_real(tmp_path / "b", sounds, texts, force=True))
    assert first == second
    stamp = (tmp_path / "a" / "metadata.csv").stat().st_mtime_ns
    make_real(tmp_path / "a", sounds, texts)
    assert (tmp_path / "a" / "metadata.csv").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Please hold.", True),
        ("[ascending tones]", False),
        ("(beep)", False),
        ("at [@]", False),
        ("<beep ascending>", False),
        ("press # to exit", False),
        ("", False),
    ],
)
def test_texts_without_plain_speech_are_left_out(text, kept):
    assert (exclusion(text) is None) is kept


def test_built_set_splits_english_at_dir_nomore(real_set):
    meta = pd.read_csv(real_set / "metadata.csv", dtype=str, keep_default_na=False)
    en = meta[meta["language"] == "en"]
    assert (en.loc[en["split"] == "dev", "prompt"] > DEV_AFTER).all()
    assert (en.loc[en["split"] == "heldout", "prompt"] <= DEV_AFTER).all()
    assert LONG_PROMPT in set(en["prompt"]) and float(en.set_index("prompt").loc[LONG_PROMPT, "duration"]) > 24


def test_dataset_spec_picks_languages_and_split(real_set):
    loaded = load_dataset(DatasetOptions("builtin-real:fr,it", split="dev", limit=6))
    assert loaded.group_columns == ("language",)
    assert {s.groups["language"] for s in loaded.samples} == {"fr", "it"}
    assert all(s.speaker in ("fr_CA_f_June", "it_IT_m_Carlo") for s in loaded.samples)
    with pytest.raises(DatasetError, match="no split 'heldout'"):
        load_dataset(DatasetOptions("builtin-real:fr", split="heldout"))
    with pytest.raises(DatasetError, match="no language xx"):
        load_dataset(DatasetOptions("builtin-real:xx"))
    upper = load_dataset(DatasetOptions("builtin-real:FR, It", split="dev", limit=6))  # as --language EN is en
    assert [s.id for s in upper.samples] == [s.id for s in loaded.samples]


def test_evaluation_run_on_real_english_with_tiny_en(real_set, tmp_path, fw_backend, capsys):
    """End to end on real speech: rows in results.csv with the language the model decoded, grouped by it."""
    from evaluation.cli import main

    out = tmp_path / "out"
    args = ["run", "--dataset", "builtin-real:en", "--split", "dev", "--limit", "3", "--quiet"]
    args += ["--group-column", "language", "detected_language", "--out", str(out), "--data-dir", str(tmp_path / "d")]
    assert main([*args, "--max-wer", "0.6"]) == 0
    rows = read_csv(out / "results.csv", keep_default_na=False)
    assert len(rows) == 3 and set(rows["language"]) == {"en"} and set(rows["speaker"]) == {"en_US_f_Allison"}
    assert list(rows["detected_language"]) == ["en"] * 3
    assert "detected_language.1" not in rows.columns  # a group column that is also a documented one: once
    assert rows["id"].str.startswith("en/").all() and (rows["hypothesis"].str.len() > 0).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["languages"] == {"detected": {"en": 3}, "rows": 3, "right": 3, "share_right": 1.0, "wrong": {}}
    assert {t for t in summary["tables"]} == {"noise", "language", "detected_language"}
    printed = capsys.readouterr().out
    assert "WER by language x noise" in printed and "in the dataset's language: 3/3" in printed


def test_setup_run_again_says_it_is_done_and_where_the_set_is(real_set):
    """`make run` and `make test` run the set-up first; with everything there it printed the real-speech folder
    alone ("/root/.cache/asr-qa/builtin-real"), a stray line before every start. It says what it is now."""
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=repo, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"setup: done; real-speech set in {real_set}", done.stdout


def test_a_run_on_builtin_real_in_upper_case_is_stored_and_resumed_as_lower_case(real_set, tmp_path, fw_backend):
    """builtin-real:EN was stored as typed, so the same run resumed as builtin-real:en was refused ("made with
    dataset='builtin-real:EN'"), and the page (which writes en) and the command line named one set two ways."""
    from evaluation.cli import main
    from evaluation.sources import canonical_source
    from evaluation.store import Store

    assert (
        canonical_source("builtin-real:FR, It") == "builtin-real:fr,it"
        and canonical_source("builtin-real") == "builtin-real"
    )
    args = ["run", "--split", "dev", "--limit", "1", "--quiet", "--run-id", "up", "--data-dir", str(tmp_path / "d")]
    assert main([*args, "--dataset", "builtin-real:EN", "--out", str(tmp_path / "a")]) == 0
    assert Store(tmp_path / "d").runs.get_run("up").settings.dataset == "builtin-real:en"
    assert main([*args, "--dataset", "builtin-real:en", "--out", str(tmp_path / "b")]) == 0  # resumed: the same run
    assert (tmp_path / "b" / "results.csv").read_bytes() == (tmp_path / "a" / "results.csv").read_bytes()
