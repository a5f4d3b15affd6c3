"""The QA dashboard: one Gradio Blocks app, one page per task, composed with ``Blocks.route``.

Live is the main page (``/``; ``/live`` redirects there), then ``/record``, ``/transcribe``, ``/validate`` and
``/review``. Each page module exposes ``build(page, config)`` and holds only UI: it turns UI values into options,
calls ``asr/`` or ``evaluation/``, and renders the result. ``demo`` is built on first access from the defaults
(``python -m dashboard`` builds its own from the command line), so ``from dashboard.app import demo`` works for
``gradio`` tooling and tests.
"""

from __future__ import annotations

import logging
from typing import Any

import gradio as gr
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import Route

from dashboard.api import api_routes, ensure_token
from dashboard.config import DashboardConfig
from dashboard.guard import PageGuard, is_loopback
from dashboard.pages import live, record, review, transcribe, validate
from dashboard.shared import WIDE_TABLE

logger = logging.getLogger(__name__)
TITLE = "asr-qa"
PAGES = (  # (navbar name, path, module); the first is the main page at "/"
    ("Live", "", live),
    ("Record", "record", record),
    ("Transcribe", "transcribe", transcribe),
    ("Validate", "validate", validate),
    ("Review", "review", review),
)

CSS = """
#live-view { font-size: 1.15rem; line-height: 1.6; min-height: 6rem; padding: 0.75rem 1rem;
  border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg); background: var(--block-background-fill); }
#live-committed { font-weight: normal; color: var(--body-text-color); }
#live-tentative { color: var(--body-text-color-subdued); opacity: 0.6; font-style: italic; }
.asrqa-readout { font-family: var(--font-mono); font-size: 0.85rem; color: var(--body-text-color-subdued); }
.asrqa-muted { color: var(--body-text-color-subdued); }
.asrqa-word { border-radius: 4px; padding: 0 2px; color: #111; }
.asrqa-high { background: #bbf7d0; } .asrqa-medium { background: #fde68a; } .asrqa-low { background: #fecaca; }
.asrqa-legend { margin-top: 0.5rem; font-size: 0.8rem; }
.asrqa-diff { line-height: 1.9; }
.asrqa-ok { color: var(--body-text-color); }
.asrqa-sub { background: #fde68a; color: #111; border-radius: 3px; padding: 0 2px; }
.asrqa-del { background: #fecaca; color: #111; text-decoration: line-through; border-radius: 3px; padding: 0 2px; }
.asrqa-ins { background: #bfdbfe; color: #111; border-radius: 3px; padding: 0 2px; }
.asrqa-prompt { padding: 1rem 1.25rem; border: 1px solid var(--border-color-primary); border-radius: var(--radius-lg);
  background: var(--block-background-fill); }
.asrqa-prompt-count { font-size: 0.95rem; color: var(--body-text-color-subdued); margin-bottom: 0.4rem; }
.asrqa-prompt-text { font-size: 2rem; line-height: 1.3; font-weight: 600; }
.asrqa-take-wer { font-size: 1.3rem; margin-bottom: 0.4rem; }
.asrqa-checks ul { list-style: none; padding-left: 0; margin: 0.3rem 0; }
.asrqa-check-ok { color: var(--body-text-color); } .asrqa-check-bad { color: #b91c1c; font-weight: 600; }
.asrqa-regression { background: #fecaca; } .asrqa-improvement { background: #bbf7d0; }
/* Record's prompt card lines up with the blocks around it: Gradio's HTML block pads its content by 12px each side */
#record-prompt .html-container { padding-left: 0; padding-right: 0; }
/* Review's cases and Validate's per-utterance tables are read-only and a click opens the row: no accent selection
   ring and no row/column handles beside it, which Gradio draws on every table as if the cell could be edited; a
   thin grey ring still marks the cell clicked (and where the arrow keys are) */
#review-table .body-cell.cell-selected, #utterance-table .body-cell.cell-selected {
  box-shadow: inset 0 0 0 1px var(--neutral-400); }
#review-table .body-cell.cell-solo .cell-wrap > span, #utterance-table .body-cell.cell-solo .cell-wrap > span {
  box-shadow: none; }
#review-table .selection-button, #utterance-table .selection-button { display: none; }
#validate-status { min-height: 5.5rem; }  /* room for a run's progress bar, drawn over it */
/* while a run goes, its progress replaces the text under it (drawn over it, the two overlapped) */
#validate-status [data-testid="markdown-wrapper"].pending { visibility: hidden; }
/* the Record upload's label floats over its drop zone: the zone's icon and text start below it (it covered them) */
#record-upload .upload-container { padding-top: 2rem; }
/* ... and its icon and three lines fit under the label: Gradio's 240 px box, centred, ran past the 140 px zone's
   bottom ('Click to Upload' cut 2.5 px short at 1280 px) */
#record-upload .upload-container .wrap { min-height: 0; height: auto; padding-top: 0; line-height: 1.25; }
#record-upload .upload-container .icon-wrap { margin-bottom: 0.25rem; }
#validate-status th, #validate-status td { overflow-wrap: break-word; word-break: normal; }
/* a dropdown's text stops short of its arrow, drawn over the box's right end: a long pick (Validate's run pickers at
   800 px) ran under it ('clean,white@' with the arrow on the '@'); what does not fit ends in an ellipsis */
.wrap-inner > .secondary-wrap > input { padding-right: 2rem; text-overflow: ellipsis; }
/* the chart starts below its floating label, which covered the top of the plot (its highest tick) */
#wer-chart .matplotlib.layout { padding-top: 2.5rem; }
/* a button beside a dropdown sits level with its box, not its label (10px: the block's padding under the box) */
#validate-open, #validate-compare, #record-resume-button, #review-refresh { align-self: flex-end; margin-bottom: 10px; }
"""
# A wide table keeps its words whole in a narrow window: under 1200 px its columns are laid out as at 1200 px and it
# scrolls sideways. Gradio sizes header and body cells alike from its viewport's width, so the two stay aligned (a
# min-width on the table alone moved the header off the body); the viewport's parent would clip it, not scroll.
# Scrolled sideways, the viewport's own vertical scrollbar sat at its 1200 px edge, out of sight, so in a narrow window
# the frame that scrolls sideways scrolls up and down too (at most WIDE_TABLE_HEIGHT_PX; the header stays on top)
# and the viewport shows every row: Gradio then draws them all, where it drew only those in sight.
WIDE_TABLE_HEIGHT_PX = 440
CSS += f"""
.{WIDE_TABLE} .virtual-table-viewport {{ min-width: 1200px; }}
.{WIDE_TABLE} .upload-container {{ overflow-x: auto; }}
@media (max-width: 1279px) {{
  .{WIDE_TABLE} .upload-container {{ overflow: auto !important; max-height: {WIDE_TABLE_HEIGHT_PX}px; }}
  .{WIDE_TABLE} .virtual-table-viewport {{ max-height: none !important; overflow: visible !important; }}
}}
"""


def build_demo(config: DashboardConfig | None = None) -> gr.Blocks:
    """The whole app for ``config``; launch it with :func:`launch_kwargs`."""
    config = (config or DashboardConfig()).validate()
    (main_name, _, main_module), *others = PAGES
    with DashboardBlocks(title=TITLE, delete_cache=config.cache_sweep_s, analytics_enabled=False) as demo:
        gr.Navbar(main_page_name=main_name)
        main_module.build(demo, config)
    for name, path, module in others:
        with demo.route(name, f"/{path}") as page:
            gr.Navbar(main_page_name=main_name)  # a navbar is per page; without it the main page is "Home"
            module.build(page, config)
    # api_open=False: events are reachable only through the queue the pages use, not as open REST routes.
    demo.queue(api_open=False, default_concurrency_limit=1)
    make_events_private(demo)
    return demo


class DashboardBlocks(gr.Blocks):
    """``gr.Blocks`` whose refusals (a ``gr.Error``: input the page turned down, shown to the user as a toast) are one
    server log line, ``INFO refused: <message>``, where Gradio's queue printed a full traceback for each, so an
    operator reading the terminal took a refused path or a missing upload for a broken server. Anything else an
    event raises (a bug) keeps Gradio's traceback. Every event of every page runs through ``process_api``, so a
    new page's refusals cannot be missed."""

    async def process_api(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        try:
            return await super().process_api(*args, **kwargs)
        except gr.Error as exc:
            exc.print_exception = False  # read by Gradio's queue when it decides to print the traceback
            logger.info("refused: %s", " ".join(str(exc.message).split()))
            raise


def make_events_private(demo: gr.Blocks) -> None:
    """Every event, on every page (and any a later page adds), leaves the API: not in /gradio_api/info, not
    callable through ``gradio_client``. Done here, once, so a new event cannot be forgotten; the routes that
    would still run them by name or number are closed by :class:`dashboard.guard.PageGuard`."""
    for fn in demo.fns.values():
        fn.api_visibility = "private"


def launch_kwargs(config: DashboardConfig) -> dict[str, Any]:
    """Server settings that keep the app to what it must serve; ``auth`` and host/port are added by the caller."""
    return {
        "max_file_size": f"{config.max_upload_mb:g}mb",
        "allowed_paths": config.served_paths(),
        "blocked_paths": config.blocked_paths(),
        "enable_monitoring": config.enable_monitoring,
        "footer_links": ["gradio", "settings"],
        "run_history": False,  # transcripts are not copied into the browser's storage
        "ssr_mode": False,
        "mcp_server": False,
        "show_error": False,  # unexpected errors are logged on the server, not shown; gr.Error always shows
        "css": CSS,
        # the Gradio event routes answer only pages this server served (dashboard/guard.py)
        "app_kwargs": {
            "middleware": [Middleware(PageGuard, loopback_only=is_loopback(config.host))],
            # the scripting API (dashboard/api.py), on the same server, behind its token (and the login with --auth)
            "routes": [*api_routes(config, ensure_token(config.data_dir)), main_page_alias()],
        },
        "theme": gr.themes.Soft(),
    }


def main_page_alias() -> Route:
    """``/live`` (the main page's name: typed, or an old bookmark) redirects to the main page at ``/``; it answered
    ``{"detail":"Not Found"}`` while every other page has its name as its path. The target is relative (``./``,
    the query kept), so a proxy's sub-path stays; the redirect shows nothing itself, and with ``--auth`` the page
    it names asks for the login as before."""

    def redirect(request: Request) -> RedirectResponse:
        return RedirectResponse("./" + (f"?{request.url.query}" if request.url.query else ""))

    return Route(f"/{PAGES[0][0].lower()}", redirect, methods=["GET", "HEAD"])


_demo: gr.Blocks | None = None


def __getattr__(name: str) -> Any:
    """``demo`` is built lazily so that importing this module does not build the UI twice."""
    global _demo
    if name == "demo":
        if _demo is None:
            _demo = build_demo()
        return _demo
    raise AttributeError(name)
