"""Helpers for the browser tests: the real dashboard as a subprocess, and Debian's Chromium through Playwright.

The app is started exactly as a tester starts it (``python -m dashboard``) on a free localhost port with a
temporary data folder and the real tiny.en model, so the tests see what a person sees. Each test module starts
it once (a module-scoped fixture) to keep the suite fast.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
START_TIMEOUT_S = 120.0
SCREENSHOT_ENV = "ASRQA_SCREENSHOT_DIR"  # set it to save the README screenshots while the tests run


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_browser() -> None:
    """Skip (with the reason) where the browser stack is missing; ``make test`` installs it."""
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -r requirements.txt)")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


class App:
    """``python -m dashboard`` on a free port; ``restart`` keeps the data folder, as a real restart would."""

    def __init__(self, data_dir: Path, log_dir: Path, args: Sequence[str] = ()) -> None:
        self.data_dir = data_dir
        self.log_dir = log_dir
        self.args = list(args)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> App:
        self.port = free_port()
        self.starts += 1
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        env["GRADIO_TEMP_DIR"] = str(self.log_dir / "gradio-cache")
        log = open(self.log_dir / f"app-{self.starts}.log", "wb")  # noqa: SIM115 - closed with the process
        command = [sys.executable, "-m", "dashboard", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--data-dir", str(self.data_dir), *self.args]
        # Ctrl-C's default back: a suite run as a shell's background job ("make test &", nohup) passes SIGINT on
        # ignored, so the dashboard never saw the SIGINT that stop() sends and every stop waited 20 s for the kill
        restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
        self.proc = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=restore
        )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the dashboard exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/", timeout=5):
                    return
            except urllib.error.HTTPError:
                return  # it answers (401 with --auth)
            except OSError:
                time.sleep(0.5)
        raise RuntimeError(f"the dashboard did not answer within {START_TIMEOUT_S} s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> App:
        self.stop()
        return self.start()

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-4000:] for p in sorted(self.log_dir.glob("app-*.log")))


@contextlib.contextmanager
def running_app(tmp_path_factory, name: str, args: Sequence[str] = ()) -> Iterator[App]:
    need_browser()
    root = tmp_path_factory.mktemp(name)
    app = App(root / "data", root, args).start()
    try:
        yield app
    finally:
        app.stop()


@contextlib.contextmanager
def chromium(extra_flags: Sequence[str] = ()) -> Iterator:
    """A headless Debian Chromium (never a downloaded browser build)."""
    need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_FLAGS, *extra_flags])
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, **context_options):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True, **context_options)
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


def screenshot(page, name: str) -> None:
    """Save a full-page PNG for the README when ``ASRQA_SCREENSHOT_DIR`` is set."""
    folder = os.environ.get(SCREENSHOT_ENV)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def text_of(page, selector: str) -> str:
    """Visible text of an element, or the value of the textarea/input inside it."""
    element = page.locator(selector)
    inner = element.locator("textarea, input")
    return inner.first.input_value() if inner.count() else element.inner_text()


def wait_for_text(page, selector: str, needle: str, timeout_ms: int = 120_000) -> None:
    """Wait until ``selector`` shows ``needle``; fail at once, with the message, if the page shows an error."""
    handle = page.wait_for_function(
        """([sel, needle]) => {
            const e = document.querySelector(sel);
            if (e && e.innerText.includes(needle)) return "ok";
            const error = document.querySelector('.toast-body.error');
            return error ? "error: " + error.innerText : false;
        }""",
        arg=[selector, needle],
        timeout=timeout_ms,
    )
    result = handle.json_value()
    if result != "ok":
        raise AssertionError(f"waiting for {needle!r} in {selector}, the page showed {result}")


def dismiss_errors(page) -> None:
    """Close the error toasts shown, so that ``wait_for_text`` waits for what comes next instead of failing on them."""
    # by script: Playwright finds the close button inert while the toast slides in
    page.evaluate("() => document.querySelectorAll('.toast-body.error .toast-close').forEach((b) => b.click())")
    page.wait_for_function("() => !document.querySelector('.toast-body.error')", timeout=10_000)


def click_table_cell(page, table_selector: str, text: str) -> None:
    """Click the visible cell holding ``text`` (Gradio's table keeps a hidden copy for measuring widths)."""
    page.locator(table_selector).get_by_text(text, exact=True).filter(visible=True).first.click()


def have_espeak() -> bool:
    return shutil.which("espeak-ng") is not None and shutil.which("sox") is not None


# A Gradio table as laid out: the words of its header and visible body cells that break across lines (a break at
# a hyphen is a line break the text allows, not a broken word), and how many header cells sit off their column's
# body cell in the first row (left edge or width more than a pixel apart), and how many of its frames that scroll up
# and down reach past the window's right edge (their scrollbar out of sight).
TABLE_LAYOUT = """([selector]) => {
  const root = document.querySelector(selector);
  const viewport = root.querySelector('.virtual-table-viewport');
  const broken = [];
  const walker = document.createTreeWalker(viewport, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const node = walker.currentNode;
    if (node.parentElement.closest('.sizing-body')) continue;  // the unwrapped copy Gradio measures widths with
    for (const m of node.data.matchAll(/[^\\s-]+/g)) {
      const range = document.createRange();
      range.setStart(node, m.index);
      range.setEnd(node, m.index + m[0].length);
      const rects = [...range.getClientRects()].filter((r) => r.width > 0);
      if (new Set(rects.map((r) => Math.round(r.top))).size > 1) broken.push(m[0]);
    }
  }
  const box = (e) => e.getBoundingClientRect();
  const heads = [...root.querySelectorAll('thead th.header-cell')];
  const cells = [...root.querySelectorAll('.virtual-row .body-cell')].slice(0, heads.length);
  const off = heads.filter((h, i) => cells[i] && (Math.abs(box(h).left - box(cells[i]).left) > 1
    || Math.abs(box(h).width - box(cells[i]).width) > 1)).length;
  // what scrolls up and down must show its scrollbar: its right edge inside the window
  const hidden_bars = [root, ...root.querySelectorAll('*')].filter((e) => /auto|scroll/.test(getComputedStyle(e).overflowY)
    && box(e).right > window.innerWidth + 1).length;
  return {broken, misaligned: off, columns: heads.length, cells: cells.length, hidden_bars};
}"""


def table_layout(page, selector: str) -> dict:
    """``TABLE_LAYOUT`` of the table ``selector`` (its body rows drawn)."""
    page.locator(f"{selector} .virtual-row .body-cell").first.wait_for()
    return page.evaluate(TABLE_LAYOUT, [selector])


def assert_table_whole_at(page, selector: str, width: int) -> None:
    """At a window ``width`` px wide, the table breaks no word, its header sits over its body, and what scrolls it
    up and down has its scrollbar in sight."""
    size = page.viewport_size
    page.set_viewport_size({"width": width, "height": size["height"]})
    try:
        page.wait_for_timeout(1500)  # Gradio re-measures its columns when the table is resized
        layout = table_layout(page, selector)
    finally:
        page.set_viewport_size(size)
    assert layout["columns"] > 0 and layout["cells"] == layout["columns"], layout
    assert layout["broken"] == [] and layout["misaligned"] == 0 and layout["hidden_bars"] == 0, (width, layout)
