"""Transcribe and Review in a real browser: upload → transcript → flag → listed on Review → survives a restart."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from tests.browser_util import (
    assert_table_whole_at,
    chromium,
    click_table_cell,
    dismiss_errors,
    new_page,
    running_app,
    screenshot,
    text_of,
    wait_for_text,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CASE_ID = re.compile(r"`?([0-9a-f]{16})`?")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory, "transcribe") as app:
        yield app


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="module")
def expected(speech_wav, fw_backend):
    """What the engine itself says about the file: the page must show exactly this."""
    from asr.transcribe import transcribe

    return transcribe(speech_wav, backend=fw_backend)


def _transcribe(page, app, wav) -> str:
    page.goto(app.url + "/transcribe")
    page.locator("#transcribe-audio input[type=file]").set_input_files(str(wav))
    page.get_by_role("button", name="Transcribe", exact=True).click()
    page.wait_for_function("document.querySelector('#transcript textarea').value.trim().length > 0", timeout=180_000)
    return text_of(page, "#transcript")


def _saved_id(page) -> str:
    wait_for_text(page, "#transcribe-saved", "Review")
    match = CASE_ID.search(page.locator("#transcribe-saved").inner_text())
    assert match, page.locator("#transcribe-saved").inner_text()
    return match.group(1)


def test_upload_transcribe_flag_review_restart(app, browser, speech_wav, expected):
    review = new_page(browser)  # open before anything is saved: it tells how to fill it
    review.goto(app.url + "/review")
    wait_for_text(review, "#review-message", "Nothing to review yet")
    page = new_page(browser)
    shown = _transcribe(page, app, speech_wav)
    assert shown == expected.text
    words = page.locator("#transcript-words .asrqa-word[title]")
    assert words.count() == len(expected.words)
    stats = page.locator("#transcribe-stats").inner_text()
    assert "rtfx" in stats and f"{expected.duration:.1f} s" in stats
    screenshot(page, "transcribe")

    page.get_by_text("Flag this transcript").click()
    corrected = "The birch canoe slid on the smooth planks."
    page.locator("#flag-corrected textarea").fill(corrected)
    page.locator("#flag-button").click()
    case_id = _saved_id(page)

    review.locator("#review-refresh").click()  # Refresh, not a reload: the case is listed and the hint goes
    wait_for_text(review, "#review-table", case_id)
    review.wait_for_function("() => !document.querySelector('#review-message').innerText.includes('Nothing')")
    review.locator("#review-model input").click()  # and the filters offer the case's model
    review.get_by_role("option", name="whisper-tiny.en", exact=True).wait_for()
    review.keyboard.press("Escape")
    page.goto(app.url + "/review")
    wait_for_text(page, "#review-table", case_id)
    assert "flag" in page.locator("#review-table").inner_text()
    assert_table_whole_at(page, "#review-table", 820)  # narrow: it scrolls sideways, words kept whole
    assert_table_whole_at(page, "#review-table", 1280)

    app.restart()
    page.goto(app.url + "/review")
    wait_for_text(page, "#review-table", case_id)
    click_table_cell(page, "#review-table", case_id)
    wait_for_text(page, "#review-heading", case_id)
    diff = page.locator("#review-diff")
    assert diff.locator(".asrqa-del, .asrqa-sub, .asrqa-ins").count() > 0  # the correction differs from the text
    assert page.locator("#review-audio audio, #review-audio .waveform-container, #review-audio wave").count() > 0
    screenshot(page, "review")


def test_save_test_case_with_labels_then_triage_and_delete(app, browser, speech_wav, speech_text):
    page = new_page(browser)
    _transcribe(page, app, speech_wav)
    page.get_by_text("Save as test case", exact=True).first.click()
    page.locator("#transcribe-reference textarea").fill(speech_text)
    page.locator("#transcribe-notes textarea").fill("browser test")
    page.locator("#transcribe-accent input").fill("Scottish")
    page.locator("#transcribe-accent input").press("Enter")
    page.locator("#transcribe-save").click()
    case_id = _saved_id(page)
    page.locator("#transcribe-accent input").fill("Welsh")  # a label corrected after saving, saved again
    page.locator("#transcribe-accent input").press("Enter")
    page.locator("#transcribe-save").click()
    wait_for_text(page, "#transcribe-saved", "Updated test case")  # the same case, not a second one
    assert _saved_id(page) == case_id
    page.get_by_text("Flag this transcript").click()
    page.locator("#flag-button").click()
    wait_for_text(page, "#transcribe-saved", "Flagged")  # not the save's line, still shown until the flag's comes
    flag_id = _saved_id(page)
    page.locator("#flag-button").click()  # a double click: one flag
    wait_for_text(page, "#transcribe-saved", "Updated flag")
    assert _saved_id(page) == flag_id

    page.goto(app.url + "/review")
    wait_for_text(page, "#review-table", case_id)
    table = page.locator("#review-table").inner_text()
    assert "accent=Welsh" in table and table.count(case_id) == 1 and table.count(flag_id) == 1, table
    click_table_cell(page, "#review-table", case_id)
    wait_for_text(page, "#review-heading", case_id)
    page.locator("#review-new-status").get_by_text("confirmed", exact=True).click()
    page.locator("#review-extra-labels textarea").fill("speaker=tester-11")
    page.locator("#review-save").click()
    wait_for_text(page, "#review-message", "status confirmed")
    page.locator("#review-label input").click()  # the label the edit added is offered at once
    page.get_by_role("option", name="speaker=tester-11", exact=True).wait_for()
    page.keyboard.press("Escape")
    assert page.locator("#review-heading").is_visible()
    page.locator("#review-kind input").click()
    page.get_by_role("option", name="flags", exact=True).click()  # hides the case on show: its panel closes
    page.wait_for_selector("#review-heading", state="hidden")

    page.reload()
    wait_for_text(page, "#review-table", case_id)
    page.locator("#review-status input").click()
    page.get_by_role("option", name="confirmed", exact=True).click()
    wait_for_text(page, "#review-table", case_id)  # the filter keeps it
    page.locator("#review-kind input").click()
    page.get_by_role("option", name="flags", exact=True).click()  # confirmed flags: none
    wait_for_text(page, "#review-message", "No case matches these filters")
    page.locator("#review-kind input").click()
    page.get_by_role("option", name="all", exact=True).click()
    wait_for_text(page, "#review-table", case_id)
    page.wait_for_function("() => !document.querySelector('#review-message').innerText.includes('No case')")

    click_table_cell(page, "#review-table", case_id)
    wait_for_text(page, "#review-heading", case_id)
    page.locator("#review-delete").click()
    page.locator("#review-confirm-delete").click()
    wait_for_text(page, "#review-message", "Deleted")
    page.reload()
    page.wait_for_selector("#review-table")
    page.wait_for_timeout(2000)
    assert case_id not in page.locator("#review-table").inner_text()


def _wait_for_error(page, needle: str) -> None:
    """Wait for an error toast saying ``needle`` (an earlier one may still be closing)."""
    page.locator(".toast-body.error", has_text=needle).first.wait_for()


def test_another_file_forgets_the_last_transcript(app, browser, speech_wav, tmp_path):
    """A new upload (here one that cannot be read) leaves nothing of the last file to see, flag or save."""
    page = new_page(browser)
    _transcribe(page, app, speech_wav)
    page.get_by_text("Flag this transcript").click()
    assert text_of(page, "#flag-corrected")  # pre-filled with the transcript
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF" + bytes(range(256)) * 8)
    page.locator("#transcribe-audio button[aria-label='Clear']").first.click()
    page.locator("#transcribe-audio input[type=file]").set_input_files(str(broken))
    page.wait_for_function("document.querySelector('#transcript textarea').value === ''")
    page.wait_for_function("document.querySelector('#transcribe-stats').innerText.trim() === ''")
    assert page.locator("#transcript-words .asrqa-word").count() == 0
    assert text_of(page, "#flag-corrected") == ""
    page.get_by_role("button", name="Transcribe", exact=True).click()
    _wait_for_error(page, "broken.wav")
    page.locator("#flag-button").click()  # nothing was transcribed: no flag of the last file
    _wait_for_error(page, "Transcribe something first")


def test_a_refusal_is_one_log_line_not_a_traceback(app, browser, speech_wav, expected):
    """No audio is refused with a toast and one INFO line in the server's log (it was a 24-line traceback); a
    transcript after it logs no error either."""
    log = app.log_dir / f"app-{app.starts}.log"
    start = log.stat().st_size
    page = new_page(browser)
    page.goto(app.url + "/transcribe")
    page.get_by_role("button", name="Transcribe", exact=True).click()
    _wait_for_error(page, "Upload a file or record from the microphone first.")
    assert _transcribe(page, app, speech_wav) == expected.text
    page.wait_for_timeout(500)  # the log is written by the server process
    written = log.read_bytes()[start:].decode(errors="replace")
    about = [line for line in written.splitlines() if "Upload a file or record" in line]
    assert about == ["INFO refused: Upload a file or record from the microphone first."], written
    assert "Traceback" not in written, written


def test_transcribe_on_the_next_file_runs_while_a_long_one_is_under_way(app, browser, speech_wav, real_set, expected):
    """Gradio ignored a Transcribe press while the tab's last run was still going, so the next file never ran;
    the press now waits for that run, which stops at its next batch once the file changed."""
    page = new_page(browser)
    page.goto(app.url + "/transcribe")
    page.locator("#transcribe-audio input[type=file]").set_input_files(str(real_set / "long" / "en-dev-joined.wav"))
    page.get_by_role("button", name="Transcribe", exact=True).click()
    page.wait_for_function(  # the 8-minute file is under way
        "/the model|finding speech|s of audio/.test(document.querySelector('#transcript').innerText)", timeout=60_000
    )
    page.locator("#transcribe-audio button[aria-label='Clear']").first.click()
    page.locator("#transcribe-audio input[type=file]").set_input_files(str(speech_wav))
    page.get_by_role("button", name="Transcribe", exact=True).click()
    page.wait_for_function("document.querySelector('#transcript textarea').value.trim().length > 0", timeout=180_000)
    assert text_of(page, "#transcript") == expected.text  # the short file's transcript, not the long one's


def test_export_downloads_a_dataset(app, browser, speech_wav):
    """A refused export (no case matches) left Export disabled until a reload: the next export must run."""
    page = new_page(browser)
    _transcribe(page, app, speech_wav)
    page.get_by_text("Flag this transcript").click()
    page.locator("#flag-button").click()
    _saved_id(page)
    page.goto(app.url + "/review")
    page.get_by_text("Export as a validation dataset").click()
    page.get_by_text("CSV + WAV").click()
    assert not page.locator("#review-export-file").is_visible()  # no empty download box before an export
    page.locator("#review-status input").click()
    page.get_by_role("option", name="fixed", exact=True).click()  # no case here is fixed
    wait_for_text(page, "#review-message", "No case matches these filters")
    page.locator("#review-export").click()
    _wait_for_error(page, "No cases match the filters: nothing to export.")
    dismiss_errors(page)
    page.locator("#review-status input").click()
    page.get_by_role("option", name="all", exact=True).click()
    page.wait_for_function("() => !document.querySelector('#review-message').innerText.includes('No case')")
    page.locator("#review-export").click(timeout=10_000)  # enabled again after the refusal
    wait_for_text(page, "#review-export-note", "Exported")
    with page.expect_download() as download:
        page.locator("#review-export-file a").first.click()
    assert download.value.suggested_filename.endswith(".zip")


def test_files_outside_the_served_folders_are_refused(app):
    for path in ("/etc/passwd", str(app.data_dir / "asrqa.sqlite"), str(app.data_dir.parent / "app-1.log")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{app.url}/gradio_api/file={path}", timeout=10)
        assert refused.value.code in (403, 404)
