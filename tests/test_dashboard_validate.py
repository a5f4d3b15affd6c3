"""Validate in a real browser: a small built-in run with two noise conditions, its table, chart and downloads."""

from __future__ import annotations

import re
import signal
import time

import pytest

from evaluation.spreadsheet import read_rows
from evaluation.store import Store
from tests.browser_util import (
    App,
    assert_table_whole_at,
    chromium,
    click_table_cell,
    dismiss_errors,
    new_page,
    running_app,
    screenshot,
    wait_for_text,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LIMIT = 7  # one utterance per built-in accent (the limit is spread evenly over a local set)


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory, "validate") as app:
        yield app


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def finished_run(app, browser):
    """Run the built-in set, clean and white noise at 10 dB, from the page; returns the page showing it."""
    page = new_page(browser)
    page.goto(app.url + "/validate")
    wait_for_text(page, "#validate-conditions", "white@10")
    page.locator("#validate-limit input").fill(str(LIMIT))
    page.locator("#validate-run").click()
    # the first progress line says what the run is, without a count before it ("0/14 run … on local: 14 to transcribe")
    first = page.wait_for_function(
        """() => { const t = document.querySelector('#validate-status')?.innerText || '';
        return t.includes('to transcribe') ? t : false; }""",
        timeout=120_000,
    ).json_value()
    assert f"on local: {LIMIT * 2} to transcribe" in first and not re.search(r"\d+/\d+ run", first), first
    # while it runs, the progress bar stands alone: the text under it is hidden (drawn over, the two overlapped)
    page.wait_for_function(
        """() => { const w = document.querySelector('#validate-status [data-testid=markdown-wrapper].pending');
        return w && getComputedStyle(w).visibility === 'hidden'
          && document.querySelector('#validate-status .progress-text') !== null; }""",
        timeout=30_000,
    )
    # Run is disabled while it runs (pressed again, the browser dropped the press without a word) and back after
    assert page.locator("#validate-run").is_disabled()
    wait_for_text(page, "#validate-status", "Overall WER", 600_000)
    page.wait_for_function("() => !document.querySelector('#validate-run').disabled", timeout=30_000)
    return page


def test_run_shows_the_accent_by_noise_table_and_the_chart(finished_run):
    page = finished_run
    status = page.locator("#validate-status").inner_text()
    assert "finished" in status and f"{LIMIT * 2} rows ({LIMIT} utterances x 2 conditions)" in status
    table = page.locator("#wer-table").inner_text()
    assert "WER by accent x noise" in table
    for header in ("accent", "clean", "white@10", "en-us", "en-gb-scotland", "en-029"):
        assert header in table
    assert "%" in table
    colours = page.locator("#wer-table .body-cell[style*='background-color']")
    assert colours.count() >= LIMIT * 2  # every WER cell is colour-scaled
    chart = page.locator("#wer-chart img")
    chart.wait_for()
    assert chart.evaluate("img => img.naturalWidth") > 200
    screenshot(page, "validate")


def test_the_utterance_table_keeps_its_words_whole_in_a_narrow_window(finished_run):
    assert_table_whole_at(finished_run, "#utterance-table", 820)  # it scrolls sideways, header over its body
    assert_table_whole_at(finished_run, "#utterance-table", 1280)


def test_before_a_run_no_empty_tables_and_real_speech_proposes_sentences(app, browser):
    page = new_page(browser)
    page.goto(app.url + "/validate")
    wait_for_text(page, "#validate-conditions", "white@10")
    assert "progress shows here" in page.locator("#validate-status").inner_text()
    for empty in ("#wer-table", "#wer-chart", "#utterance-table"):  # empty, the tables read "1 2 3"
        assert not page.locator(empty).is_visible()
    words = page.locator("#validate-min-words input")
    assert words.input_value() == "0"
    page.get_by_text("Real speech (Debian").click()  # half its prompts are one word: sentences proposed
    page.wait_for_function("() => document.querySelector('#validate-min-words input').value === '3'")
    page.get_by_text("Built-in sample set").click()
    page.wait_for_function("() => document.querySelector('#validate-min-words input').value === '0'")


def _pick_model(page, name: str) -> None:
    box = page.locator("#validate-model input")
    box.fill(name)
    box.press("Enter")


def test_real_speech_languages_follow_the_model_until_typed(app, browser):
    """tiny.en (the default) proposes `en`, whisper-base all five; languages typed by hand are kept."""
    page = new_page(browser)
    page.goto(app.url + "/validate")
    wait_for_text(page, "#validate-conditions", "white@10")
    box = page.locator("#validate-location textarea, #validate-location input").first
    assert not page.locator("#validate-location").is_visible()  # the built-in set: nothing to type
    page.get_by_text("Real speech (Debian").click()
    page.wait_for_function("() => document.querySelector('#validate-location textarea')?.value === 'en'")
    assert "Languages" in page.locator("#validate-location").inner_text()
    _pick_model(page, "whisper-base")
    page.wait_for_function("() => document.querySelector('#validate-location textarea')?.value === 'en,es,fr,it,ru'")
    _pick_model(page, "whisper-tiny.en")
    page.wait_for_function("() => document.querySelector('#validate-location textarea')?.value === 'en'")
    box.fill("fr, it")  # by hand: kept when the model changes
    _pick_model(page, "whisper-base")
    page.wait_for_timeout(1500)
    assert box.input_value() == "fr, it"
    page.get_by_text("Local folder or manifest").click()  # typed: kept for the tester, not silently dropped
    page.wait_for_function("() => document.querySelector('#validate-location')?.innerText.includes('Folder')")
    assert box.input_value() == "fr, it"
    page.get_by_text("Built-in sample set").click()
    page.locator("#validate-location").wait_for(state="hidden")


def test_csv_download_has_one_row_per_utterance_and_condition(finished_run):
    page = finished_run
    with page.expect_download() as download:
        page.locator("#download-results-csv").click()
    assert download.value.suggested_filename == "results.csv"
    rows = read_rows(download.value.path())
    assert len(rows) == LIMIT * 2
    assert {r["noise"] for r in rows} == {"clean", "white@10"}
    for column in ("id", "reference", "hypothesis", "wer", "accent", "snr_db_measured"):
        assert column in rows[0]
    noisy = [float(r["snr_db_measured"]) for r in rows if r["noise"] == "white@10"]
    assert all(abs(snr - 10) <= 0.1 for snr in noisy)
    for name in ("summary-json", "summary-md", "summary-csv"):
        with page.expect_download():
            page.locator(f"#download-{name}").click()


def test_utterance_opens_alignment_with_clean_and_noisy_audio(finished_run):
    page = finished_run
    click_table_cell(page, "#utterance-table", "white@10")
    page.wait_for_selector("#alignment-view .asrqa-diff")
    assert page.locator("#alignment-view .asrqa-legend").inner_text().startswith("substituted")
    for player in ("#clean-audio", "#noisy-audio"):
        page.locator(f"{player} audio, {player} .waveform-container").first.wait_for(state="attached")


def test_earlier_run_reopens_after_reload(app, finished_run, browser):
    run_id = finished_run.locator("#validate-status code").first.inner_text()
    page = new_page(browser)
    page.goto(app.url + "/validate")
    page.locator("#validate-runs input").click()
    page.get_by_role("option").filter(has_text="builtin").first.click()
    page.locator("#validate-open").click()
    wait_for_text(page, "#validate-status", run_id)
    assert "white@10" in page.locator("#wer-table").inner_text()


def test_compare_with_an_earlier_run_shows_deltas(app, finished_run):
    page = finished_run
    first = page.locator("#validate-status code").first.inner_text()
    page.locator("#validate-snrs input, #validate-snrs textarea").first.fill("0")
    wait_for_text(page, "#validate-conditions", "white@0")
    page.locator("#validate-run").click()
    page.wait_for_function(
        """(first) => { const e = document.querySelector('#validate-status');
            return !!e && e.innerText.includes('Overall WER') && !e.innerText.includes(first) }""",
        arg=first,
        timeout=600_000,
    )
    page.locator("#validate-baseline input").click()
    page.get_by_role("option").filter(has_text="white@10").first.click()
    page.locator("#validate-compare").click()
    wait_for_text(page, "#compare-note", "baseline")
    assert first in page.locator("#compare-note").inner_text()
    table = page.locator("#compare-table").inner_text()
    assert "(all)" in table and "delta" in table
    assert "WER change per group, B - A" in table  # titled like the page's other tables
    # the clean utterances are the same in both runs: their group's delta is exactly zero, and paired
    clean_row = page.locator("#compare-table .body-cell", has_text="+0.0 [+0.0, +0.0]")
    assert clean_row.count() >= 1
    regressions = table.count("REGRESSION")
    red = page.locator("#compare-table .body-cell[style*='254, 202, 202']")  # #fecaca, whole rows
    assert (red.count() > 0) == (regressions > 0)
    screenshot(page, "validate-compare")


def test_recorded_test_cases_are_a_dataset(app, browser, speech_wav, speech_text):
    """Cases saved by testers (here straight into the app's store) validate like any other dataset."""
    from evaluation.store import Store

    Store(app.data_dir).add_case(
        "test_case", speech_wav, transcript="", reference=speech_text, labels={"accent": "US", "device": "laptop"}
    )
    page = new_page(browser)
    page.goto(app.url + "/validate")
    page.get_by_text("Recorded test cases").click()
    page.locator("#validate-noise").get_by_text("white", exact=True).click()  # clean only
    wait_for_text(page, "#validate-conditions", "Conditions: clean")
    page.locator("#validate-run").click()
    wait_for_text(page, "#validate-status", "Overall WER", 600_000)
    status = page.locator("#validate-status").inner_text()
    assert "dataset recorded" in status and "1 utterance," in status
    assert "US" in page.locator("#wer-table").inner_text()


def test_executor_shown_and_an_unreachable_ray_cluster_is_one_line(app, browser, finished_run):
    assert "executor local" in finished_run.locator("#validate-status").inner_text()
    page = new_page(browser)
    page.goto(app.url + "/validate")
    wait_for_text(page, "#validate-conditions", "white@10")
    page.locator("#validate-limit input").fill("2")
    page.locator("#validate-executor input, #validate-executor textarea").first.fill("ray://127.0.0.1:1")
    page.locator("#validate-run").click()
    error = page.locator(".toast-body.error")
    error.wait_for(timeout=180_000)  # Ray Client retries the address for about half a minute
    text = error.inner_text()
    assert "cannot reach the Ray cluster at ray://127.0.0.1:1" in text and "Traceback" not in text
    assert [line for line in text.splitlines() if "ray://" in line] == text.splitlines()[-1:]  # one line
    page.wait_for_function("() => !document.querySelector('#validate-run').disabled", timeout=30_000)  # usable again


def test_a_probe_run_shows_invented_words_per_minute_by_probe(app, browser):
    """Probes have no reference words, so no WER: the table shows invented words per minute of non-speech."""
    page = new_page(browser)
    page.goto(app.url + "/validate")
    wait_for_text(page, "#validate-conditions", "white@10")
    page.get_by_label("Hallucination probes (non-speech)").check()
    page.locator("#validate-noise").get_by_label("white").uncheck()
    wait_for_text(page, "#validate-conditions", "Conditions: clean")
    page.locator("#validate-run").click()
    wait_for_text(page, "#validate-status", "Invented words:", 600_000)
    status = page.locator("#validate-status").inner_text()
    assert "per minute" in status and "0 reference words" in status
    table = page.locator("#wer-table")
    assert "Invented words per minute of non-speech by probe" in table.inner_text()
    for probe in ("silence", "dtmf", "white noise"):
        assert probe in table.inner_text()
    assert "n/a" not in table.get_by_text("silence", exact=True).filter(visible=True).first.locator("..").inner_text()


def test_a_refused_run_leaves_run_enabled_and_the_next_run_runs(app, browser):
    """A run refused at once (here a folder outside the dataset roots) left Run disabled until the page was reloaded:
    Gradio 6 skips a ``.then`` step after a failure, and the step that enables Run again was one."""
    page = new_page(browser)
    page.goto(app.url + "/validate")
    wait_for_text(page, "#validate-conditions", "white@10")
    page.locator("#validate-noise").get_by_label("white").uncheck()
    wait_for_text(page, "#validate-conditions", "Conditions: clean")
    page.locator("#validate-limit input").fill("1")
    page.get_by_label("Local folder or manifest").check()
    page.locator("#validate-location input, #validate-location textarea").first.fill("/nonexistent/set")
    page.locator("#validate-run").click()
    page.locator(".toast-body.error", has_text="'/nonexistent/set' refused").wait_for(timeout=120_000)
    dismiss_errors(page)
    page.get_by_label("Built-in sample set").check()
    page.locator("#validate-run").click(timeout=10_000)  # enabled again, and the press runs
    wait_for_text(page, "#validate-status", "Overall WER", 600_000)
    page.wait_for_function("() => !document.querySelector('#validate-run').disabled", timeout=30_000)


def test_closing_the_dashboard_cancels_the_run_under_way_and_keeps_its_rows(tmp_path, browser):
    """SIGTERM (systemd, docker stop) or Ctrl-C while a run was under way left it "running" for ever, without
    figures, and the process aborted mid model call (exit -6, "terminate called without an active exception"). The
    run now stops after the model call in progress and is listed cancelled with the WER of its rows; exit 0."""
    app = App(tmp_path / "data", tmp_path, ["--no-preload"]).start()
    proc, app.proc = app.proc, None
    store = Store(tmp_path / "data")
    try:
        page = new_page(browser)
        page.goto(app.url + "/validate")
        wait_for_text(page, "#validate-conditions", "white@10")
        page.locator("#validate-run").click()  # the whole built-in set, clean and white@10: 126 rows
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and not any(r.results for r in store.runs.list_runs()):
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, app.log()
    finally:
        proc.kill()
    [run] = store.runs.list_runs()
    assert run.status == "cancelled" and 0 < run.results < 126, (run.status, run.results)
    assert run.summary["overall"]["utterances"] == run.results and run.summary["overall"]["wer"] >= 0
