"""The pages fit the window, in a real Chromium: what each page draws is measured box by box, not looked at.

One dashboard (``python -m dashboard``, a temporary data folder) for the module; every check sets its own window
width on a fresh page. The pages are checked as a tester sees them with data: two test cases in the store (real
speech), two validation runs made by ``python -m evaluation run`` into the same data folder, a file transcribed.
"""

from __future__ import annotations

import csv
import subprocess
import sys

import pytest

from dashboard.app import PAGES
from dashboard.shared import WIDE_TABLE
from dashboard.validate_layout import DOWNLOADS
from tests.browser_util import REPO, chromium, click_table_cell, new_page, running_app, wait_for_text

pytestmark = [pytest.mark.browser, pytest.mark.slow]

MARGIN_PX = 4  # the least room left between the drop zone's last line and its bottom edge

# The Record upload: its drop zone (the 140 px button), its floating label, its icon, and each line of its text
DROP_ZONE = """() => {
  const root = document.querySelector('#record-upload');
  const edges = (r) => ({top: r.top, bottom: r.bottom, left: r.left, right: r.right});
  const box = (e) => edges(e.getBoundingClientRect());
  const zone = root.querySelector('.upload-container');
  const lines = [];
  const walker = document.createTreeWalker(zone, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    if (!walker.currentNode.data.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(walker.currentNode);
    for (const r of range.getClientRects()) if (r.width > 0) lines.push({text: walker.currentNode.data.trim(), ...edges(r)});
  }
  return {zone: box(zone), label: box(root.querySelector('label')), icon: box(zone.querySelector('.icon-wrap')), lines};
}"""


# What a page draws past a narrow window's right edge (or left of its left edge) where no frame inside the window
# scrolls it sideways, or cuts off inside a box that does not scroll; a frame other than a wide table that scrolls
# sideways; a dropdown whose text runs under its arrow; a label under its block's buttons (top right).
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const name = (e) => (e.id ? '#' + e.id + ' ' : '') + e.tagName.toLowerCase() + '.' + [...e.classList].slice(0, 2).join('.');
  const shown = (e) => { const r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden' && !e.closest('.sizing-body'); };
  const scrolls = (e) => /auto|scroll/.test(getComputedStyle(e).overflowX) && e.getBoundingClientRect().right <= width + 1;
  const framed = (e) => { for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) if (scrolls(p)) return true;
    return false; };
  const past = [...document.querySelectorAll('body *')].filter((e) => shown(e)
    && (e.getBoundingClientRect().right > width + 1 || e.getBoundingClientRect().left < -1) && !framed(e)).map(name);
  const under_arrow = [...document.querySelectorAll('.wrap-inner')].filter((w) => {
    const input = w.querySelector('input'), arrow = w.querySelector('.icon-wrap');
    if (!input || !arrow || !shown(input)) return false;
    const text_right = input.getBoundingClientRect().right - parseFloat(getComputedStyle(input).paddingRight);
    return text_right > arrow.getBoundingClientRect().left + 1;
  }).map((w) => name(w.closest('.block')));
  // what a box that does not scroll cuts off on its right (a table wider than its frame, with no way to see the rest)
  const cut = [...document.querySelectorAll('body *')].filter((e) => /hidden|clip/.test(getComputedStyle(e).overflowX)
    && e.scrollWidth > e.clientWidth + 1 && shown(e) && !e.matches('input, textarea, .sr-only')).map(name);
  // a frame that scrolls sideways where none should: only the wide tables do (WIDE_TABLE)
  const sideways = [...document.querySelectorAll('body *')].filter((e) => /auto|scroll/.test(getComputedStyle(e).overflowX)
    && e.scrollWidth > e.clientWidth + 1 && shown(e) && !e.matches('input, textarea') && !e.closest('.WIDE')).map(name);
  const meets = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  const under_buttons = [...document.querySelectorAll('.icon-button-wrapper.top-panel')].filter(shown).filter((panel) => {
    const label = panel.closest('.block')?.querySelector('label[data-testid=block-label]');
    return label && shown(label) && meets(label.getBoundingClientRect(), panel.getBoundingClientRect());
  }).map((panel) => name(panel.closest('.block')));
  return {scroll_width: document.documentElement.scrollWidth, width, past, cut, sideways, under_arrow, under_buttons};
}"""
OVERFLOW = OVERFLOW.replace(".WIDE", f".{WIDE_TABLE}")
PATHS = [path for _, path, _ in PAGES]  # every route: "" is Live

# A read-only table after a row was clicked: its selected cells, the ring drawn round each, the row/column handles shown
SELECTION = """(selector) => {
  const shown = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0
    && getComputedStyle(e).display !== 'none' && getComputedStyle(e).visibility !== 'hidden'; };
  const cells = [...document.querySelectorAll(selector + ' .body-cell.cell-selected')];
  const texts = cells.flatMap((c) => [...c.querySelectorAll('.cell-wrap > span')]);  // a lone cell's text: ringed too
  const shadows = (es) => [...new Set(es.map((e) => getComputedStyle(e).boxShadow))];
  return {selected: cells.length, rings: shadows(cells), text_rings: shadows(texts),
    handles: [...document.querySelectorAll(selector + ' .selection-button')].filter(shown).length};
}"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with running_app(tmp_path_factory, "fit") as app:
        yield app


@pytest.fixture(scope="module")
def browser():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(browser):
    page = new_page(browser)
    yield page
    page.context.close()


@pytest.mark.parametrize("width", [1280, 1024, 800])
def test_the_record_upload_fits_its_icon_and_text_inside_the_drop_zone_under_its_label(app, page, width):
    page.set_viewport_size({"width": width, "height": 1000})
    page.goto(app.url + "/record")
    page.locator("#record-upload .icon-wrap").wait_for()
    fit = page.evaluate(DROP_ZONE)
    zone, label, icon, lines = fit["zone"], fit["label"], fit["icon"], fit["lines"]
    # the label on one line, above the icon (at 800 px it wrapped in two and covered the icon's top)
    assert label["bottom"] <= icon["top"], fit
    # 'Drop File Here', '- or -', 'Click to Upload' under the icon; the last touched the zone's bottom edge (Gradio's
    # 240 px box centred in the 140 px zone: 2.5 px past it at 1280 px, cut)
    assert [line["text"] for line in lines] == ["Drop File Here", "- or -", "Click to Upload"], fit
    assert icon["bottom"] <= lines[0]["top"] and lines[-1]["bottom"] <= zone["bottom"] - MARGIN_PX, fit
    assert all(zone["left"] <= line["left"] and line["right"] <= zone["right"] for line in lines), fit
    # the prompt card's edges line up with the setup accordion's and the microphone's (it sat 12 px in each side)
    edges = {
        s: page.locator(s).bounding_box() for s in ("#record-prompt .asrqa-prompt", "#record-setup", "#record-mic")
    }
    assert all(abs(b["x"] - edges["#record-setup"]["x"]) <= 1 for b in edges.values()), edges
    assert all(abs(b["width"] - edges["#record-setup"]["width"]) <= 1 for b in edges.values()), edges


@pytest.fixture(scope="module")
def seeded(app, real_set, tmp_path_factory) -> dict[str, str]:
    """Two test cases and two runs (the second the first's utterances, other noise) in the app's data folder."""
    from evaluation.store import Store

    rows = {r["id"]: r for r in csv.DictReader(open(real_set / "metadata.csv", encoding="utf-8"))}
    store = Store(app.data_dir)
    cases = []
    for name, labels in (("en/cannot-complete-as-dialed", {"accent": "en-gb-scotland", "device": "laptop mic"}),
                         ("en/agent-pass", {"accent": "en-us", "speaker": "tester-07"})):  # fmt: skip
        audio, text = real_set / rows[name]["file_name"], rows[name]["text"]
        cases.append(store.add_case("test_case", audio, transcript=text.lower(), reference=text, labels=labels).id)
    out = tmp_path_factory.mktemp("fit-runs")
    for noise in ("clean,white@10", "clean,pink@5"):
        command = [sys.executable, "-m", "evaluation", "run", "--dataset", "builtin", "--limit", "2", "--quiet"]
        command += ["--noise", noise, "--data-dir", str(app.data_dir), "--out", str(out / noise)]
        subprocess.run(command, cwd=REPO, check=True, capture_output=True, timeout=600)
    return {"case": cases[0], "audio": str(real_set / rows["en/cannot-complete-as-dialed"]["file_name"])}


def _show_what_a_tester_sees(page, path: str, seeded: dict[str, str]) -> None:
    """Bring ``path`` to its fullest: a session started, a file transcribed, a run opened and compared, a case open."""
    if path == "record":
        page.locator("#record-speaker").locator("textarea, input").first.fill("tester-07")
        page.locator("#record-accent input").fill("Scottish")
        page.locator("#record-start").click()
        wait_for_text(page, "#record-prompt", "1 / ")
    elif path == "transcribe":
        page.locator("#transcribe-audio input[type=file]").set_input_files(seeded["audio"])
        page.locator("#transcribe-audio audio, #transcribe-audio .waveform-container").first.wait_for(state="attached")
        page.locator("#transcribe-button").click()
        page.locator("#transcript-words .asrqa-word").first.wait_for(timeout=120_000)
        page.locator("#flag-panel").click()  # its fields shown too
    elif path == "validate":
        page.locator("#validate-runs input").click()
        page.get_by_role("option").filter(has_text="pink@5").first.click()
        page.locator("#validate-open").click()
        wait_for_text(page, "#validate-status", "Overall WER")
        page.locator("#validate-baseline input").click()
        page.get_by_role("option").filter(has_text="white@10").first.click()
        page.locator("#validate-compare").click()
        wait_for_text(page, "#compare-note", "baseline")
        click_table_cell(page, "#utterance-table", "pink@5")
        page.locator("#noisy-audio audio, #noisy-audio .waveform-container").first.wait_for(state="attached")
    elif path == "review":
        click_table_cell(page, "#review-table", seeded["case"])
        wait_for_text(page, "#review-heading", seeded["case"])


@pytest.mark.parametrize("width", [1024, 800])
@pytest.mark.parametrize("path", PATHS)
def test_every_page_fits_a_narrow_window(app, seeded, page, path, width):
    """At 1024 and 800 px nothing reaches past the window unless a frame in it scrolls sideways (Review's and
    Validate's wide tables), no dropdown's text runs under its arrow and no label under its block's buttons."""
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{app.url}/{path}")
    page.locator("footer").wait_for()
    _show_what_a_tester_sees(page, path, seeded)
    page.wait_for_timeout(1500)  # Gradio re-measures its tables once drawn
    fit = page.evaluate(OVERFLOW)
    assert fit["scroll_width"] <= width and fit["past"] == [] and fit["cut"] == [] and fit["sideways"] == [], fit
    assert fit["under_arrow"] == [] and fit["under_buttons"] == [], fit
    if path in ("validate", "review"):  # the row clicked open: no cell selection ring or edit handles on it
        drawn = page.evaluate(SELECTION, "#utterance-table" if path == "validate" else "#review-table")
        assert drawn["selected"] >= 1 and drawn["handles"] == 0 and set(drawn["text_rings"]) <= {"none"}, drawn
        # the clicked cell keeps a thin grey ring (where the arrow keys are), not Gradio's 2 px accent one
        assert len(drawn["rings"]) == 1 and drawn["rings"][0].endswith("0px 0px 0px 1px inset"), drawn
    if path == "validate":  # the downloads in one row, as tall as each other where one label takes two lines
        heights = {
            round(page.locator(f"#download-{name.replace('.', '-')}").bounding_box()["height"]) for name, _ in DOWNLOADS
        }
        assert len(heights) == 1, heights


# A button beside a dropdown, on each page: it sat level with the dropdown's label, 40 px above its box
BESIDE = {
    "validate": [("#validate-open", "#validate-runs"), ("#validate-compare", "#validate-baseline")],
    "record": [("#record-resume-button", "#record-resume")],
    "review": [("#review-refresh", "#review-kind")],
}


@pytest.mark.parametrize("path", sorted(BESIDE))
def test_at_1280_px_the_chart_clears_its_label_and_buttons_sit_level_with_their_dropdowns(app, seeded, page, path):
    page.set_viewport_size({"width": 1280, "height": 1000})
    page.goto(f"{app.url}/{path}")
    page.locator("footer").wait_for()
    if path == "validate":  # a run shown (Record's setup, where Resume is, folds away once a session starts)
        _show_what_a_tester_sees(page, path, seeded)
    for button, dropdown in BESIDE[path]:
        pressed = page.locator(button).bounding_box()
        box = page.locator(f"{dropdown} .wrap-inner").bounding_box()
        assert abs(pressed["y"] + pressed["height"] - box["y"] - box["height"]) <= 3, (button, pressed, box)
    if path == "validate":  # the chart's floating label covered the top of the plot, its highest tick
        label, plot = (page.locator(f"#wer-chart {s}").first.bounding_box() for s in ("label", "img"))
        assert label["y"] + label["height"] <= plot["y"], (label, plot)
