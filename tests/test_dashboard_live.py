"""Live in a real browser: Chromium's fake microphone plays real speech into the streaming page."""

from __future__ import annotations

import re
import subprocess

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser_util import chromium, have_espeak, new_page, running_app, screenshot, text_of, wait_for_text
from tests.conftest import HARVARD, speak

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SENTENCES = " ".join(HARVARD[:6])  # about 16 s: room for the first commit well before the speech ends
TAIL_SILENCE_S = 2.0
# Page-side observers: the test waits on what the page shows, never on a fixed stretch of wall-clock time.
RECORD_COMMITS = """() => {
  const el = document.querySelector('#live-committed'), t0 = performance.now();
  window.__commits = [];
  const log = () => {
    const text = el.innerText.trim(), last = window.__commits[window.__commits.length - 1];
    if (text && (!last || last.text !== text)) window.__commits.push({t: (performance.now() - t0) / 1000, text});
  };
  new MutationObserver(log).observe(el, {subtree: true, childList: true, characterData: true});
}"""
BOTH_SHOWN = """() => window.__commits.length >= 2
  && document.querySelector('#live-tentative').innerText.trim().length > 0"""
HEARD_ALL = """(seconds) => {
  const m = document.querySelector('#live-readout').innerText.match(/heard (\\d+(?:\\.\\d+)?) s/);
  return m !== null && parseFloat(m[1]) >= seconds;
}"""


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
    page = new_page(browser, permissions=["microphone"])
    page.goto(app.url + "/")
    page.wait_for_selector("#live-mic")
    page.locator("#live-mic button", has_text="Record").click()
    wait_for_text(page, "#live-readout", "listening", 30_000)  # the start event reached the server
    page.evaluate(RECORD_COMMITS)  # from now on the page logs every change of the committed text, with its time
    try:  # committed and tentative text both on screen: the screenshot the README shows
        page.wait_for_function(BOTH_SHOWN, timeout=(seconds + 30) * 1000)
    except PlaywrightTimeout:
        pass  # no such moment: the assertions below say why
    screenshot(page, "live")
    # the fake microphone plays the file once: wait until the server has heard all of it
    page.wait_for_function(HEARD_ALL, arg=seconds - TAIL_SILENCE_S / 2, timeout=300_000)
    commits = page.evaluate("window.__commits")
    first_commit = commits[0]["t"] if commits else None
    grew = [c["text"] for c in commits]
    readout = page.locator("#live-readout").inner_text()
    assert first_commit is not None and first_commit < seconds - TAIL_SILENCE_S, (first_commit, seconds, commits)
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

    page.wait_for_function("document.querySelector('#live-reference textarea').value.trim().length > 0")
    assert text_of(page, "#live-reference") == final  # the reference is pre-filled, editable
    page.locator("#live-accent input").fill("US")
    page.locator("#live-accent input").press("Enter")
    page.locator("#live-save").click()
    wait_for_text(page, "#live-saved", "Review")
    case_id = re.search(r"[0-9a-f]{16}", page.locator("#live-saved").inner_text()).group(0)

    page.goto(app.url + "/review")
    wait_for_text(page, "#review-table", case_id)
    row = page.locator("#review-table").inner_text()
    assert "test case" in row and "accent=US" in row
