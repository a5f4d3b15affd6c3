"""Live in a real browser: Chromium's fake microphone plays real speech into the streaming page.

The test waits on what the page shows, never on a stretch of wall-clock time: a page-side observer logs every
change of the committed text together with how much audio the server says it has heard, so "the first commit
came while the speech was still playing" is judged on the audio's own clock (a slow test process or a late
chunk cannot make it pass or fail). Timeouts only guard against a page that never gets there.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.browser_util import chromium, have_espeak, new_page, running_app, screenshot, text_of, wait_for_text
from tests.conftest import HARVARD, speak

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SENTENCES = " ".join(HARVARD[:6])  # about 16 s: room for the first commit well before the speech ends
TAIL_SILENCE_S = 2.0
GUARD_MS = 300_000  # a failure guard only: each wait below ends on an event
# From the moment it runs, the page logs each change of the committed text with the audio heard at that moment.
LOG_COMMITS = """() => {
  window.__heard = () => {
    const m = document.querySelector('#live-readout').innerText.match(/heard (\\d+(?:\\.\\d+)?) s/);
    return m ? parseFloat(m[1]) : 0;
  };
  window.__commits = [];
  const log = () => {
    const text = document.querySelector('#live-committed').innerText.trim();
    const last = window.__commits[window.__commits.length - 1];
    if (text && (!last || last.text !== text)) window.__commits.push({heard: window.__heard(), text});
  };
  new MutationObserver(log).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""
HEARD_ALL = "(seconds) => window.__heard() >= seconds"
# committed and tentative text both on screen (the README's screenshot), or failing that all the speech heard
BOTH_SHOWN = """(seconds) => (window.__commits.length >= 2
  && document.querySelector('#live-tentative').innerText.trim().length > 0) || window.__heard() >= seconds"""


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """About 16 s of espeak-ng speech as 48 kHz mono 16-bit WAV (what Chromium's fake device plays)."""
    if not have_espeak():
        pytest.skip("espeak-ng and sox are needed to make the speech file")
    folder = tmp_path_factory.mktemp("live-audio")
    raw = speak(SENTENCES, folder / "raw.wav")
    out = folder / "speech.wav"
    pad = ["pad", "0.5", str(TAIL_SILENCE_S)]
    subprocess.run(["sox", str(raw), "-r", "48000", "-c", "1", "-b", "16", str(out), *pad], check=True)
    seconds = float(subprocess.run(["soxi", "-D", str(out)], capture_output=True, text=True, check=True).stdout)
    return out, seconds


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory, "live") as app:
        yield app


@pytest.fixture(scope="module")
def browser(speech):
    wav, _ = speech
    fake_mic = [
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}%noloop",
    ]
    with chromium(fake_mic) as browser:
        yield browser


@pytest.fixture(scope="module")
def offline(speech, fw_backend):
    """The full-context transcript of the same file: the live text must come close to it."""
    from asr.transcribe import transcribe

    return transcribe(speech[0], backend=fw_backend).text


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def test_live_commits_while_speaking_then_saves_a_test_case(app, browser, speech, offline):
    from evaluation.scoring import score

    _, seconds = speech
    speech_end = seconds - TAIL_SILENCE_S  # the server has heard all the speech once it has heard this much
    page = new_page(browser, permissions=["microphone"])
    page.goto(app.url + "/")
    page.wait_for_selector("#live-mic")
    assert not page.locator("#live-save-panel").is_visible()  # nothing to save yet
    assert "ready" in page.locator("#live-readout").inner_text()  # not "live", before anything is heard
    page.locator("#live-mic button", has_text="Record").click()
    wait_for_text(page, "#live-readout", "listening", 30_000)  # the start event reached the server
    page.evaluate(LOG_COMMITS)
    page.wait_for_function(BOTH_SHOWN, arg=speech_end, polling=250, timeout=GUARD_MS)
    screenshot(page, "live")
    page.wait_for_function(HEARD_ALL, arg=speech_end, polling=250, timeout=GUARD_MS)
    commits = page.evaluate("window.__commits")
    readout = page.locator("#live-readout").inner_text()
    assert commits, f"nothing was committed while {speech_end:.1f} s of speech played: {readout}"
    assert commits[0]["heard"] < speech_end, (speech_end, commits)  # committed while the speech still played
    grew = [c["text"] for c in commits]
    assert all(later.startswith(earlier) for earlier, later in zip(grew, grew[1:])), grew  # committed only grows
    assert re.search(r"update \d+\.\d+ s · lag \d+\.\d+ s", readout), readout

    page.locator("#live-mic button", has_text="Stop").click()
    wait_for_text(page, "#live-readout", "finished", 180_000)
    final = page.locator("#live-committed").inner_text().strip()
    # tiny.en streams with less context than it decodes offline, so the live text may differ in a few words;
    # it must still be close to the offline text, and the last word (committed on stop) must not be lost.
    assert score(offline, final).wer <= 0.4, (final, offline, commits[-4:])
    assert score(SENTENCES, final).wer <= score(SENTENCES, offline).wer + 0.3, (final, offline)
    assert _words(final)[-1] == _words(offline)[-1], (final, offline)

    # the panel appears on stop: until it is drawn there is no textarea (a null read threw instead of waiting)
    page.wait_for_function("(document.querySelector('#live-reference textarea')?.value || '').trim().length > 0")
    assert page.locator("#live-recording").is_visible() and page.locator("#live-save").is_visible()
    assert text_of(page, "#live-reference") == final  # the reference is pre-filled, editable
    page.locator("#live-accent input").fill("US")
    page.locator("#live-accent input").press("Enter")
    page.locator("#live-save").click()
    wait_for_text(page, "#live-saved", "Review")
    case_id = re.search(r"[0-9a-f]{16}", page.locator("#live-saved").inner_text()).group(0)
    page.locator("#live-save").click()  # pressed again: the same case, not a duplicate
    wait_for_text(page, "#live-saved", "Updated test case")
    assert case_id in page.locator("#live-saved").inner_text()

    page.goto(app.url + "/review")
    wait_for_text(page, "#review-table", case_id)
    row = page.locator("#review-table").inner_text()
    assert "test case" in row and "accent=US" in row
    assert row.count("test case") == 1, row
