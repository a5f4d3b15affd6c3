"""Record in a real browser: Chromium's fake microphone reads a three-prompt script in a real human voice.

Each take is a fresh Chromium whose fake microphone plays one real recording (the real-speech set: Debian's
Asterisk prompts, a real US-English speaker, converted to the 48 kHz WAV the fake device needs); the browser's local storage is
carried from one to the next, as one tester's browser would keep it. Every wait is on what the page shows.
"""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.spreadsheet import read_rows
from tests.browser_util import REPO, chromium, new_page, running_app, screenshot, wait_for_text

pytestmark = [pytest.mark.browser, pytest.mark.slow]

PROMPTS = ("check-number-dial-again", "cannot-complete-as-dialed", "agent-pass")
LEAD_S, TAIL_S = 2.0, 3.0  # silence around each recording: the first second of a capture can be lost
# A take is stopped once its speech and a second after it are heard (see _record): the fake device loops the file,
# and a stop at the file's very end let the loop's next reading into the take under load ("Your call cannot be
# completed as dialed" twice: 100% WER) in a fresh-clone CI; now a stop may come 4 s late before it would
HEARD_AFTER_SPEECH_S = 1.0
ACCENT, SPEAKER = "Scottish", "tester-07"
# The prompt read: tiny.en on a fake microphone under a loaded machine loses a word or two now and then (the first
# word of a clip, or a word Chromium's starved fake device skips). Another prompt read: almost every word wrong.
RIGHT_WER, WRONG_WER = 0.45, 0.75
DECISIONS = ("#record-accept", "#record-rerecord", "#record-skip")
TAKE_DECISIONS = DECISIONS[:2]  # Accept and Re-record: only while a take waits for a decision
# On how many lines a table shows ``needle`` (0: not shown): the most over its copies, since Gradio keeps an
# unwrapped copy of each cell to measure column widths, which is always on one line.
LINES_OF = """([selector, needle]) => {
  const walker = document.createTreeWalker(document.querySelector(selector), NodeFilter.SHOW_TEXT);
  let lines = 0;
  while (walker.nextNode()) {
    const node = walker.currentNode, at = node.data.indexOf(needle);
    if (at < 0) continue;
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + needle.length);
    const rects = [...range.getClientRects()].filter((r) => r.width > 0);
    lines = Math.max(lines, new Set(rects.map((r) => Math.round(r.top))).size);
  }
  return lines;
}"""


@pytest.fixture(scope="module")
def takes(tmp_path_factory, real_set) -> dict[str, tuple[Path, float, str]]:
    """name -> (48 kHz mono 16-bit WAV for the fake microphone, its seconds, what is said)."""
    rows = {r["id"]: r for r in csv.DictReader(open(real_set / "metadata.csv", encoding="utf-8"))}
    folder = tmp_path_factory.mktemp("record-audio")
    out = {}
    for name in PROMPTS:
        row = rows[f"en/{name}"]
        wav = folder / f"{name}.wav"
        pad = ["pad", str(LEAD_S), str(TAIL_S)]
        subprocess.run(
            ["sox", str(real_set / row["file_name"]), "-r", "48000", "-c", "1", "-b", "16", str(wav), *pad], check=True
        )
        seconds = float(subprocess.run(["soxi", "-D", str(wav)], capture_output=True, text=True, check=True).stdout)
        out[name] = (wav, seconds, row["text"])
    return out


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory, "record") as app:
        yield app


class OneTestersBrowser:
    """One tester's browser: a new Chromium per take (one fake-microphone file each), the same local storage."""

    def __init__(self, app) -> None:
        self.app = app
        self.state: dict | None = None

    def open(self, wav: Path):
        flags = [
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop",
        ]
        return _Session(self, flags)

    def keep(self, page) -> None:
        self.state = page.context.storage_state()

    def storage_for(self, url: str) -> dict | None:
        """The kept local storage, moved to ``url`` (a restarted app listens on a new port)."""
        if self.state is None:
            return None
        state = json.loads(json.dumps(self.state))
        for origin in state.get("origins", []):
            origin["origin"] = url
        return state


class _Session:
    def __init__(self, tester: OneTestersBrowser, flags) -> None:
        self.tester, self.flags = tester, flags

    def __enter__(self):
        self._browser = chromium(self.flags)
        browser = self._browser.__enter__()
        state = self.tester.storage_for(self.tester.app.url)
        options = {"permissions": ["microphone"], **({"storage_state": state} if state else {})}
        self.page = new_page(browser, **options)
        self.page.goto(self.tester.app.url + "/record")
        self.page.wait_for_selector("#record-mic")
        return self.page

    def __exit__(self, *exc):
        if exc[0] is None:
            self.tester.keep(self.page)
        return self._browser.__exit__(*exc)


def _record(page, seconds: float, keys: bool = False) -> None:
    """Record the whole file: the live text must appear while it plays, then stop once it has all been heard."""
    if keys:
        page.locator("body").click(position={"x": 5, "y": 5})  # focus outside any text box
        page.keyboard.press("r")
    else:
        page.locator("#record-mic button", has_text="Record").click()
    page.wait_for_function(
        "(document.querySelector('#record-live .asrqa-live')?.innerText || '').trim().length > 0",
        timeout=120_000,  # 60 s ran out once in CI at load 8 (a fresh clone's whole suite beside three helpers)
    )
    page.wait_for_function(
        "([s]) => parseFloat(document.querySelector('#record-heard')?.dataset.seconds) >= s",
        arg=[seconds - TAIL_S + HEARD_AFTER_SPEECH_S],
        timeout=120_000,
    )
    if keys:
        page.keyboard.press("r")
    else:
        page.locator("#record-mic button", has_text="Stop").click()
    wait_for_text(page, "#record-wer", "WER", 180_000)


def _wer(page, prompt: str | None = None) -> float:
    """The take's WER as shown; with ``prompt``, also checked to be the shown transcript's WER against it."""
    from evaluation.scoring import score

    shown = page.locator("#record-wer").inner_text()
    wer = float(re.search(r"WER (\d+\.\d)%", shown).group(1)) / 100
    if prompt is not None:
        transcript = re.search(r"Full-context transcript: (.*)", shown).group(1).strip()
        assert wer == pytest.approx(score(prompt, transcript).wer, abs=0.0006), (shown, prompt)
    return wer


def _saved_case(page) -> str:
    wait_for_text(page, "#record-message", "saved as test case")
    return re.search(r"test case ([0-9a-f]{16})", page.locator("#record-message").inner_text()).group(1)


def test_a_three_prompt_session_recorded_resumed_reviewed_and_validated(app, takes, tmp_path):
    from evaluation.scoring import score

    (wav1, s1, text1), (wav2, s2, text2), (wav3, s3, text3) = (takes[n] for n in PROMPTS)
    tester = OneTestersBrowser(app)
    with tester.open(wav1) as page:
        upload, script = (page.locator(s).bounding_box()["height"] for s in ("#record-upload", "#record-builtin"))
        assert upload < 1.5 * script, (upload, script)  # the default drop zone left a blank band under the row
        label, icon = (page.locator(f"#record-upload {s}").first.bounding_box() for s in ("label", ".icon-wrap"))
        assert label["y"] + label["height"] <= icon["y"], (label, icon)  # the floating label covered the icon's top
        page.locator("#record-script textarea").fill("\n".join([text1, text2, text3]))
        page.locator("#record-speaker").locator("textarea, input").first.fill(SPEAKER)
        page.locator("#record-accent input").fill(ACCENT)
        page.locator("#record-accent input").press("Enter")
        for button in DECISIONS:  # before a session they could only say "start a session first"
            assert not page.locator(button).is_visible(), button
        page.locator("#record-start").click()
        wait_for_text(page, "#record-prompt", "1 / 3")
        page.locator("#record-skip").wait_for(state="visible")
        for button in TAKE_DECISIONS:  # no take yet: nothing to accept or re-record
            assert not page.locator(button).is_visible(), button
        assert text1 in page.locator("#record-prompt").inner_text()
        session_id = re.search(r"Session ([0-9a-f]{12}) started", page.locator("#record-message").inner_text()).group(1)
        _record(page, s1)
        for button in TAKE_DECISIONS:
            page.locator(button).wait_for(state="visible")
        assert _wer(page, text1) <= RIGHT_WER, (
            page.locator("#record-wer").inner_text(),
            page.locator("#record-live").inner_text(),
        )
        assert "speech level" in page.locator("#record-checks").inner_text()
        screenshot(page, "record")
        page.locator("#record-accept").click()
        first = _saved_case(page)
        wait_for_text(page, "#record-prompt", "2 / 3")
        for button in TAKE_DECISIONS:  # the take was decided on: the next prompt has none yet
            page.locator(button).wait_for(state="hidden")

    with tester.open(wav3) as page:  # the wrong prompt read for prompt 2: a bad take, re-recorded
        wait_for_text(page, "#record-prompt", "2 / 3")  # the reload came back to the session's prompt
        for button in TAKE_DECISIONS:
            assert not page.locator(button).is_visible(), button
        _record(page, s3)
        assert _wer(page, text2) >= WRONG_WER, page.locator("#record-wer").inner_text()
        page.locator("#record-rerecord").click()
        wait_for_text(page, "#record-message", "take discarded")
        assert text2 in page.locator("#record-prompt").inner_text()
        for button in TAKE_DECISIONS:  # the take was discarded: nothing left to accept
            page.locator(button).wait_for(state="hidden")

    with tester.open(wav2) as page:  # recorded and accepted with the keyboard shortcuts
        wait_for_text(page, "#record-prompt", "2 / 3")
        _record(page, s2, keys=True)
        # The prompt was heard: its words are in the take. Insertions are not held against it here: started
        # with the key, Chromium's looping fake device may begin mid-file, so the take can hold the end of one
        # reading before the whole next one ("... leted as dialed" first: 100% WER, twice in fresh-clone CI runs)
        shown = page.locator("#record-wer").inner_text()
        heard = score(text2, re.search(r"Full-context transcript: (.*)", shown).group(1).strip())
        assert heard.hits >= (1 - RIGHT_WER) * heard.ref_words, (shown, page.locator("#record-live").inner_text())
        _wer(page)  # the WER line is there and reads as one
        page.keyboard.press("a")
        second = _saved_case(page)
        wait_for_text(page, "#record-prompt", "3 / 3")
        wait_for_text(page, "#record-summary", "custom")
        words = score(text1, text1).ref_words + score(text2, text2).ref_words
        summary = page.locator("#record-summary").inner_text()
        assert re.search(rf"custom\s+2\s+1\s+0\s+{words}\s", summary), summary  # accepted, re-recorded, skipped

    app.restart()
    with tester.open(wav3) as page:
        wait_for_text(page, "#record-prompt", "3 / 3")
        assert text3 in page.locator("#record-prompt").inner_text()
        page.locator("#record-skip").click()  # the last prompt skipped: the session is finished
        wait_for_text(page, "#record-prompt", "Session finished")
        wait_for_text(page, "#record-message", "Skipped prompt 3")
        for button in DECISIONS:  # nothing left to accept or skip
            page.locator(button).wait_for(state="hidden")
        summary = page.locator("#record-summary").inner_text()
        assert re.search(rf"custom\s+2\s+1\s+1\s+{words}\s", summary), summary
        page.goto(app.url + "/review")
        page.locator("#review-session input").click()  # the takes of this session
        page.get_by_role("option", name=re.compile(f"^{SPEAKER} · {ACCENT} · pasted prompts")).click()
        wait_for_text(page, "#review-table", first)
        table = page.locator("#review-table").inner_text()
        assert second in table and f"session={session_id}" in table, table
        assert f"accent={ACCENT}" in table and f"speaker={SPEAKER}" in table, table
        for label in (f"session={session_id}", f"speaker={SPEAKER}", "script=pasted prompts"):  # none cut in two
            assert page.evaluate(LINES_OF, ["#review-table", label]) == 1, label

    _validate(app, tmp_path, {first: text1, second: text2})


def _validate(app, tmp_path, references: dict[str, str]) -> None:
    """The accepted takes as a validation run, grouped by the profile's accent, each with its prompt as reference."""
    out = tmp_path / "run"
    command = [sys.executable, "-m", "evaluation", "run", "--dataset", "recorded", "--data-dir", str(app.data_dir)]
    done = subprocess.run([*command, "--out", str(out), "--quiet"], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = read_rows(out / "results.csv")
    assert {r["id"]: r["reference"] for r in rows} == references
    assert {(r["accent"], r["speaker"]) for r in rows} == {(ACCENT, SPEAKER)}
    summary = json.loads((out / "summary.json").read_text())
    assert [g["accent"] for g in summary["groups"]] == [ACCENT], summary["groups"]
