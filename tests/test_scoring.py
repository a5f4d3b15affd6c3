"""Scoring against hand-computed alignments and jiwer's own figures, the normalizer on a table, pooled WER, CIs."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jiwer
import numpy as np
import pandas as pd
import pytest

from evaluation.scoring import (
    AlignedSpan,
    align,
    bootstrap_interval,
    get_normalizer,
    is_runaway,
    is_small,
    normalizer_for,
    paired_delta_interval,
    pooled_wer,
    score,
)
from evaluation.tables import group_table, overall

NONE = get_normalizer("none")


def test_deletion_alignment_by_hand():
    s = score("the cat sat on the mat", "the cat sat on mat", NONE)
    assert (s.substitutions, s.deletions, s.insertions, s.hits) == (0, 1, 0, 5)
    assert s.ref_words == 6 and s.wer == pytest.approx(1 / 6)
    assert s.alignment == (
        AlignedSpan("equal", ("the", "cat", "sat", "on"), ("the", "cat", "sat", "on")),
        AlignedSpan("delete", ("the",), ()),
        AlignedSpan("equal", ("mat",), ("mat",)),
    )


def test_substitution_and_insertion_by_hand():
    s = score("a b c", "a x c d", NONE)
    assert (s.substitutions, s.deletions, s.insertions, s.hits) == (1, 0, 1, 2)
    assert s.wer == pytest.approx(2 / 3)
    assert [span.op for span in s.alignment] == ["equal", "substitute", "equal", "insert"]
    assert s.alignment[1] == AlignedSpan("substitute", ("b",), ("x",))
    assert s.alignment[3] == AlignedSpan("insert", (), ("d",))


def test_cer_by_hand():
    s = score("abc", "abd", NONE)
    assert s.char_errors == 1 and s.ref_chars == 3 and s.cer == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    ("reference", "hypothesis", "wer"),
    [
        ("hello world", "hello duck", 0.5),  # jiwer's README
        ("i like monty python", "i like python", 0.25),
        ("this is a test", "this is a test", 0.0),
        ("short", "a much longer hypothesis", 4.0),  # WER is not capped at 1
    ],
)
def test_matches_jiwer(reference, hypothesis, wer):
    assert score(reference, hypothesis, NONE).wer == pytest.approx(wer)
    assert jiwer.wer(reference, hypothesis) == pytest.approx(wer)


def test_empty_sides():
    assert score("", "", NONE).errors == 0
    both = score("hello there", "", NONE)
    assert both.deletions == 2 and both.wer == 1.0
    only_hyp = score("Um.", "hello", get_normalizer())  # the normalizer removes "um": no reference words left
    assert only_hyp.ref_words == 0 and only_hyp.insertions == 1 and math.isnan(only_hyp.wer)


NORMALIZER_CASES = [
    ("It's easy to tell the depth of a well.", "it is easy to tell the depth of a well"),
    ("Mr. Smith paid $20.50 for 2 colours!", "mister smith paid $20.50 for 2 colors"),
    ("Um, I won't go.", "i will not go"),
    ("twenty five percent", "25%"),
    ("one hundred and two", "102"),
    ("The 1st of May, 1990", "the 1st of may 1990"),
    ("Let's organise the theatre.", "let us organize the theater"),
    ("I'm gonna [laughs] do it (softly)", "i am going to do it"),
    ("Mrs. Jones' colour TV", "missus jones color tv"),
    ('He said: "Hmm, OK."', "he said ok"),
    ("Dr. Who ain't here", "doctor who aint here"),
    ("twenty-first century", "21st century"),
    ("Café résumé naïve", "cafe resume naive"),
    ("your...", "your"),  # Whisper's normalizer alone keeps a period of an ellipsis: "your ."
    ("Wait… what", "wait what"),
    ("It costs 3.50 dollars.", "it costs $3.50"),
]


@pytest.mark.parametrize(("text", "expected"), NORMALIZER_CASES)
def test_whisper_english_normalizer(text, expected):
    assert get_normalizer("whisper-english")(text) == expected


def test_normalizer_names_and_versions():
    english = get_normalizer()
    assert english.name == "whisper-english" and "spelling-" in english.version and "transformers-" in english.version
    assert get_normalizer("whisper-basic")("Hello, World!") == "hello world"
    with pytest.raises(ValueError, match="unknown normalizer 'bogus'"):
        get_normalizer("bogus")


LIGHT_NORMALIZER_SCRIPT = """
import json, sys
from evaluation.normalizer import get_normalizer
texts = json.loads(sys.argv[1])
english, basic = get_normalizer("whisper-english"), get_normalizer("whisper-basic")
light = [english.version, basic.version, [english(t) for t in texts], [basic(t) for t in texts]]
alone = "transformers" not in sys.modules
import transformers
from transformers.models.whisper.english_normalizer import BasicTextNormalizer, EnglishTextNormalizer
from evaluation.normalizer import ELLIPSIS, _spelling_map
package = EnglishTextNormalizer(_spelling_map()[0])
full = [[" ".join(package(ELLIPSIS.sub(" ", t)).split()) for t in texts], [" ".join(BasicTextNormalizer()(t).split()) for t in texts]]
print(json.dumps({"alone": alone, "light": light, "full": full, "version": transformers.__version__}))
"""


def test_the_normalizers_load_without_transformers_and_match_its_module():
    """Scoring on faster-whisper does not pay transformers' start-up (1.4 to 1.9 s a process) for its normalizer."""
    texts = [text for text, _ in NORMALIZER_CASES]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    run = subprocess.run(
        [sys.executable, "-c", LIGHT_NORMALIZER_SCRIPT, json.dumps(texts)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = json.loads(run.stdout.strip().splitlines()[-1])
    assert out["alone"], "getting the normalizers imported transformers"
    english_version, basic_version, english, basic = out["light"]
    assert english, "the cases were normalized"
    assert [english, basic] == out["full"]
    assert english_version.startswith(f"transformers-{out['version']}+spelling-")
    assert basic_version == f"transformers-{out['version']}"


def test_normalized_and_raw_wer_both_kept():
    s = score("Let's organise the theatre.", "let us organize the theater")
    assert s.wer == 0.0 and s.raw_wer == 1.0


PAIRS = [
    ("the birch canoe slid on the smooth planks", "the merch can be slid on the smooth clanks"),
    ("glue the sheet to the dark blue background", "blue machine to the dark blue background"),
    ("it is easy to tell the depth of a well", "it is easy to tell the depth of a well"),
    ("rice is often served in round bowls", "rice is often served"),
    ("four hours", "for hours of steady work"),
]


def _rows(pairs, speakers=None) -> pd.DataFrame:
    scores = [score(r, h, NONE) for r, h in pairs]
    return pd.DataFrame(
        {
            "id": [f"u{i}" for i in range(len(pairs))],
            "noise": "clean",
            "speaker": speakers or [f"s{i}" for i in range(len(pairs))],
            "errors": [s.errors for s in scores],
            "ref_words": [s.ref_words for s in scores],
            "char_errors": [s.char_errors for s in scores],
            "ref_chars": [s.ref_chars for s in scores],
            "wer": [s.wer for s in scores],
        }
    )


def test_pooled_group_wer_equals_corpus_wer():
    refs, hyps = [r for r, _ in PAIRS], [h for _, h in PAIRS]
    corpus = jiwer.wer(refs, hyps)
    rows = _rows(PAIRS)
    table = group_table(rows, ["noise"], speaker_column="speaker")
    assert table.loc[0, "wer"] == pytest.approx(corpus)
    assert overall(rows).wer == pytest.approx(corpus)
    assert pooled_wer([score(r, h, NONE) for r, h in PAIRS]) == pytest.approx(corpus)
    assert rows["wer"].mean() != pytest.approx(corpus)  # the mean of utterance WERs is a different number


def _counts(errors, words, speakers=None) -> pd.DataFrame:
    rows = pd.DataFrame({"id": [f"u{i}" for i in range(len(words))], "errors": errors, "ref_words": words})
    return rows if speakers is None else rows.assign(speaker=speakers)


def test_bootstrap_interval_is_sane_and_deterministic():
    rng = np.random.default_rng(1)
    words = rng.integers(5, 15, size=200)
    errors = rng.binomial(words, 0.2)
    point = errors.sum() / words.sum()
    ci = bootstrap_interval(_counts(errors, words), seed=7)
    assert ci == bootstrap_interval(_counts(errors, words), seed=7)
    assert ci.low < point < ci.high and ci.high - ci.low < 0.1
    small = bootstrap_interval(_counts(errors[:20], words[:20]), seed=7)
    assert small.high - small.low > ci.high - ci.low


def test_bootstrap_over_speakers_widens_when_speakers_differ():
    rng = np.random.default_rng(2)
    words = np.full(200, 10)
    speakers = np.repeat(np.arange(4), 50)
    errors = rng.binomial(words, np.array([0.05, 0.1, 0.3, 0.5])[speakers])
    by_utterance = bootstrap_interval(_counts(errors, words), seed=3)
    by_speaker = bootstrap_interval(_counts(errors, words, speakers), seed=3)
    assert by_speaker.high - by_speaker.low > 2 * (by_utterance.high - by_utterance.low)


def test_speakers_count_only_when_every_row_names_one():
    named = _counts([1] * 6, [10] * 6, ["a"] * 6)
    assert is_small(named)  # six utterances, one speaker
    partly = named.assign(speaker=["a"] * 5 + [None])
    assert not is_small(partly)  # one unnamed row: blocks are utterances, and six are enough
    rng = np.random.default_rng(4)
    errors = rng.integers(0, 5, size=40)
    spread = _counts(errors, [10] * 40, np.repeat(["a", "b"], 20))
    unnamed = spread.assign(speaker=[None] + ["a"] * 19 + ["b"] * 20)
    assert bootstrap_interval(unnamed, seed=1) == bootstrap_interval(spread.drop(columns="speaker"), seed=1)


def test_paired_delta_is_tighter_than_independent_and_signed():
    rng = np.random.default_rng(5)
    words = rng.integers(5, 15, size=100)
    base = rng.binomial(words, 0.3)
    a = _counts(base, words).assign(noise="clean")
    b = a.assign(errors=base + 1)  # every utterance one error worse
    paired, was_paired = paired_delta_interval(a, b, seed=0)
    assert was_paired and paired.low > 0
    apart, was_paired = paired_delta_interval(a, b.assign(id=[f"v{i}" for i in range(100)]), seed=0)
    assert not was_paired and apart.high - apart.low > 3 * (paired.high - paired.low)


def test_normalizer_follows_the_language_unless_named():
    assert normalizer_for("en").name == "whisper-english" and normalizer_for(None).name == "whisper-english"
    assert normalizer_for("en-GB").name == "whisper-english"
    assert normalizer_for("fr").name == "whisper-basic" and normalizer_for("ru").name == "whisper-basic"
    assert normalizer_for("fr", "none").name == "none"
    assert normalizer_for("es")("¿Dónde está?") == "dónde está"


def test_group_table_marks_small_cells_and_counts_speakers():
    rows = pd.concat([_rows(PAIRS, ["a", "a", "b", "b", "b"]), _rows(PAIRS[:2], ["c", "c"]).assign(noise="white@5")])
    table = group_table(rows, ["noise"], speaker_column="speaker")
    clean, white = table.iloc[0], table.iloc[1]
    assert clean["utterances"] == 5 and clean["speakers"] == 2 and not clean["small"]
    assert white["utterances"] == 2 and white["small"]
    assert clean["wer_ci_low"] <= clean["wer"] <= clean["wer_ci_high"]


def test_align_uses_the_normalizer():
    spans = align("Let's go home.", "let us go to home")
    assert [s.op for s in spans] == ["equal", "insert", "equal"]


def test_repetition_loops_are_flagged():
    assert is_runaway("Blue, the, the, the, the, the, the, the, the, the, the, the, the, the, the, the, the,")
    assert not is_runaway("The birch canoe slid on the smooth planks.")
    assert not is_runaway("")
    rows = _rows(PAIRS).assign(runaway=[True, False, False, False, False])
    assert overall(rows).runaway == 1 and group_table(rows, ["noise"]).loc[0, "runaway"] == 1


def test_one_speaker_cell_is_resampled_by_utterance_not_frozen():
    rng = np.random.default_rng(6)
    errors = rng.integers(0, 5, size=30)
    one_voice = _counts(errors, [10] * 30, ["a"] * 30)
    ci = bootstrap_interval(one_voice, seed=2)
    assert ci.high - ci.low > 0.02  # a speaker bootstrap of one speaker would give a zero-width interval
    assert ci == bootstrap_interval(one_voice.drop(columns="speaker"), seed=2)
    assert is_small(one_voice)  # still marked: it says nothing about other voices
