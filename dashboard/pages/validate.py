"""Validate (`/validate`): the validation runner over a dataset x noise conditions, with tables and comparison.

The page (its components laid out in ``dashboard.validate_layout``) turns the form into
``evaluation.runner.RunOptions`` (one per model), runs ``run_validation`` with a progress callback and a cancel
event, and renders the ``RunResult`` (see ``dashboard.validate_view``). Earlier runs are reopened from the store
with ``load_result``, so results survive a restart and can be compared.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

import gradio as gr
import pandas as pd

from dashboard import closing, shared
from dashboard import validate_layout as layout
from dashboard.config import DashboardConfig
from dashboard.shared import AGAIN, EACH, disabled, enabled_after, esc, get_store, render_alignment, without_paths
from dashboard.validate_form import (
    USER_ERRORS,
    check_run_paths,
    dataset_spec,
    default_min_words,
    location_box,
    noise_specs,
    run_options,
)
from dashboard.validate_view import (
    ProgressLine,
    comparison_table,
    group_chart,
    headline_lines,
    invented_markdown,
    invented_table,
    made_text,
    pct,
    run_label,
    utterance_frame,
    utterance_widths,
    wer_table,
)
from evaluation.compare import compare_runs
from evaluation.datasets import RESULT_GROUPS
from evaluation.noise import USAGE, NoiseError, parse_conditions
from evaluation.replay import check_regenerated, row_alignment, utterance_audio
from evaluation.report import (
    SYNTHETIC_NOTE,
    invented_pivot,
    markdown_table,
    write_outputs,
)
from evaluation.runner import RunResult, load_result, run_validation
from evaluation.sources import open_source
from evaluation.store import RunNotFound, Store
from evaluation.stream_tables import format_streaming

logger = logging.getLogger(__name__)


@dataclass
class ValidateTab:
    """One tab's run: the cancel switch of the run in progress and the result on screen."""

    cancel: threading.Event = field(default_factory=threading.Event)
    result: RunResult | None = None
    columns: list[str] = field(default_factory=list)  # columns of the utterance table on screen
    running: bool = False  # a run of this tab is under way (Cancel has something to stop)
    # the cancel switch of the Run pressed and not yet started (waiting for another tab's run to end), if any: a
    # Cancel now drops it when its turn comes. At most one: a tab runs one run at a time (see ``_queue``)
    waiting: list[threading.Event] = field(default_factory=list)

    def __deepcopy__(self, memo) -> ValidateTab:
        return ValidateTab()


@dataclass(frozen=True)
class Rendered:
    """Everything the results area shows for one run, in the order of the page's outputs."""

    status: str
    table: object
    table_label: str  # what the table shows: WER by group x noise, or a probe run's invented words per minute
    chart: object
    utterances: pd.DataFrame
    files: tuple[str | None, ...]


def build(page: gr.Blocks, config: DashboardConfig) -> None:
    store = get_store(config.data_dir)
    gr.Markdown(
        "## Validate\nWER per group (accent, language, ...) and condition (noise, channel) over a dataset, offline "
        f"or streamed as on Live, with 95% bootstrap intervals. *{SYNTHETIC_NOTE} The Real speech set is recordings "
        "of real people (Debian's Asterisk voice prompts).*"
    )
    form = layout.form(page)
    results = layout.results()
    earlier = layout.earlier()
    tab = gr.State(lambda: ValidateTab())  # a factory: each tab gets its own
    _wire_form(page, store, config, tab, form, results, earlier)
    _wire_results(store, config, tab, results, earlier)


def _wire_form(
    page,
    store: Store,
    config: DashboardConfig,
    tab,
    form: layout.Form,
    results: layout.Results,
    earlier: layout.Earlier,
):
    """The form's events: run lists on load, the conditions preview, column inspection, run and cancel."""
    page.load(lambda: (_run_choices(store),) * 2, None, [earlier.runs, earlier.baseline], api_name="validate_load_runs")
    gr.on(
        [page.load, *(c.change for c in form.noise)],
        lambda *v: _preview_conditions(*v, roots=config.roots()),
        form.noise,
        form.conditions,
        api_name="validate_conditions",
        show_progress="hidden",
        trigger_mode=AGAIN,  # as a change event's: a box ticked while the preview was drawn was left out
    )
    form.source.change(
        default_min_words, form.source, form.min_words, api_name="validate_min_words", show_progress="hidden"
    )
    _wire_languages(form)
    form.inspect.click(
        lambda s, loc, sp: _inspect(store, config, s, loc, sp),
        [form.source, form.location, form.split],
        [form.text_column, form.group_columns, form.speaker_column, form.columns_note],
        api_name="validate_columns",
        trigger_mode=AGAIN,  # pressed again for another dataset while the last was read: that one too
    )
    # at once (not queued behind another tab's run), so a Cancel pressed while this run waits has a switch to set;
    # Run disabled until the run ends (finished, failed or cancelled): see _queue
    queued = form.run.click(
        _queue, tab, form.run, api_name="validate_queue", concurrency_limit=None, show_progress="hidden"
    )
    ran = queued.success(
        lambda t, *v: _run(store, config, t, *v),
        [tab, *form.inputs],
        [*results.outputs, earlier.runs, earlier.baseline],
        api_name="validate_run",
        show_progress_on=[results.status],  # one progress bar, not one over every output
        concurrency_limit=1,
        concurrency_id="validate_run",
    )
    enabled_after(ran, form.run, "validate_run")
    form.cancel.click(_cancel, tab, results.status, api_name="validate_cancel", concurrency_limit=None)


def _wire_languages(form: layout.Form) -> None:
    """Real speech's languages follow the model (``en`` for tiny.en, all five for whisper-base) until the tester
    types in the box (see ``validate_form.location_box``)."""
    proposed = gr.State("")  # what the page last put in the box
    gr.on(
        [form.source.change, form.models[0].change],
        location_box,
        [form.source, form.models[0], form.location, proposed],
        [form.location, proposed],
        api_name="validate_languages",
        show_progress="hidden",
    )


def _wire_results(store: Store, config: DashboardConfig, tab, results: layout.Results, earlier: layout.Earlier):
    """Reopening a run, comparing with a baseline, and the utterance detail."""
    earlier.open_run.click(  # pressed again for another run while the last was drawn: the first stayed shown
        lambda t, r: _open(store, config, t, r),
        [tab, earlier.runs],
        results.outputs,
        api_name="validate_open_run",
        trigger_mode=AGAIN,
    )
    earlier.compare.click(
        lambda t, b: _compare(store, t, b),
        [tab, earlier.baseline],
        [earlier.note, earlier.table],
        api_name="validate_compare",
        trigger_mode=AGAIN,
    )

    def pick_utterance(t: ValidateTab, evt: gr.SelectData):
        return _utterance(store, config, t, evt)

    # a row clicked while the last row's audio was re-made was dropped: the detail showed the row before
    results.utterances.select(pick_utterance, tab, results.detail, api_name="validate_utterance", trigger_mode=EACH)


def _preview_conditions(kinds, snrs, rt60s, noise_dir, channels, roots=None) -> str:
    try:
        specs = [c.spec for c in parse_conditions(noise_specs(kinds, snrs, rt60s, noise_dir, roots, channels))]
    except (NoiseError, gr.Error) as exc:
        return f"⚠️ {esc(exc)} ({esc(USAGE)})"
    return "Conditions: " + ", ".join(f"`{s}`" for s in specs)


def _run_choices(store: Store) -> gr.Dropdown:
    return gr.Dropdown(choices=[(run_label(r), r.id) for r in store.runs.list_runs()])


def _inspect(store: Store, config: DashboardConfig, kind: str, location: str, split: str):
    dataset = dataset_spec(kind, location, config.roots())
    try:
        columns = list(open_source(dataset, split=split or None, store=store).columns)
    except USER_ERRORS as exc:
        raise gr.Error(without_paths(str(exc), store.db_path, store.data_dir)) from exc
    dropdown = gr.Dropdown(choices=columns)
    note = f"Columns of `{esc(dataset)}`: " + ", ".join(f"`{esc(c)}`" for c in columns)
    groups = gr.Dropdown(choices=[*columns, *RESULT_GROUPS])  # detected_language: grouped by what the model heard
    return dropdown, groups, dropdown, note


def _run(store: Store, config: DashboardConfig, tab: ValidateTab, *form, progress=gr.Progress()):  # noqa: B008
    switch = _take_switch(tab)
    if switch.is_set():  # cancelled while it waited for its turn: dropped before it loads or stores anything
        return (CANCELLED_QUEUED, *[gr.skip()] * (3 + len(layout.DOWNLOADS) + 2))  # other results, 2 pickers
    all_options = run_options(form, config.roots())
    tab.cancel, tab.running = switch, True
    try:
        with closing.cancelled_on_close(switch):  # closing the dashboard (Ctrl-C, SIGTERM) cancels it, and waits
            done = _run_each(store, tab, all_options, progress)
    finally:
        tab.running = False
    shown = _show(config, tab, done[0])
    choices = _run_choices(store).choices
    baseline = done[1].run_id if len(done) > 1 else None  # several models: the second is the first's baseline
    return (*shown, gr.Dropdown(choices=choices, value=done[0].run_id), gr.Dropdown(choices=choices, value=baseline))


def _run_each(store: Store, tab: ValidateTab, all_options: list, progress) -> list[RunResult]:
    """One run per model, in order, until one is cancelled."""
    done: list[RunResult] = []
    for n, options in enumerate(all_options, 1):
        prefix = f"model {n}/{len(all_options)} ({options.model_name}): " if len(all_options) > 1 else ""

        def report(finished: int, total: int, message: str, line=ProgressLine(prefix)) -> None:
            progress(finished / total if total else 0.0, desc=line(finished, total, message))

        try:
            result = run_validation(options, store, progress=report, cancel=tab.cancel)
        except USER_ERRORS as exc:
            raise gr.Error(without_paths(str(exc), store.db_path, store.data_dir)) from exc
        done.append(result)
        if result.status == "cancelled":
            break
    return done


CANCELLED_QUEUED = "Cancelled before it started: the run was waiting for another run to end, and nothing was run."
RUN_UNDER_WAY = "This tab's run is still under way or waiting for its turn: Cancel it, or wait for it to end."


def _queue(tab: ValidateTab) -> gr.Button:
    """Run pressed: a fresh cancel switch, set up before the run waits its turn (one run at a time), and Run disabled
    until the run ends. Pressed during a run, the browser dropped the press (its run still pending) after this made it
    a switch: Cancel then said a run was waiting, and the next Run was "cancelled before it started". A press that
    still comes (before the button is disabled) is refused with the reason, and makes no switch."""
    if tab.running or tab.waiting:
        raise gr.Error(RUN_UNDER_WAY)
    tab.waiting.append(threading.Event())
    return disabled()


def _take_switch(tab: ValidateTab) -> threading.Event:
    """The switch of the run whose turn has come: the oldest press waiting (a run called without one gets a new)."""
    return tab.waiting.pop(0) if tab.waiting else threading.Event()


def _cancel(tab: ValidateTab):
    for switch in tab.waiting:  # every run pressed and not started: dropped when its turn comes
        switch.set()
    if tab.waiting and not tab.running:
        gr.Info("The run waiting for its turn will not start.")
        return gr.skip()  # the waiting run's progress covers the status; it says "Cancelled before it started"
    if not tab.running:  # it said "Cancelling…" over the finished run's summary, with nothing to cancel
        gr.Warning("No run in progress: nothing to cancel.")
        return gr.skip()
    tab.cancel.set()
    # not "run it again to resume": the page starts each run afresh (only `evaluation run --run-id` resumes)
    # the worker stops at its next model call (evaluation.worker), dropping the unfinished batch of 16
    return "Cancelling at the next model call… the batches already stored are kept and shown as a cancelled run."


def _open(store: Store, config: DashboardConfig, tab: ValidateTab, run_id: str | None):
    if not run_id:
        raise gr.Error("Pick a run first.")
    try:
        result = load_result(store, run_id)
    except RunNotFound as exc:
        raise gr.Error(without_paths(str(exc), store.db_path, store.data_dir)) from exc
    return _show(config, tab, result)


def _show(config: DashboardConfig, tab: ValidateTab, result: RunResult) -> tuple:
    tab.result = result
    r = _render(config, result)
    tab.columns = list(r.utterances.columns)
    buttons = [gr.DownloadButton(value=path, visible=path is not None) for path in r.files]
    shown = len(result.rows) > 0  # a run cancelled before its first batch: no empty axes, no "1 2 3" table
    table = gr.Dataframe(value=r.table, label=r.table_label, visible=shown)
    utterances = gr.Dataframe(r.utterances, visible=shown, column_widths=utterance_widths(tab.columns))
    return (r.status, table, gr.Plot(r.chart, visible=shown), utterances, *buttons)


def _render(config: DashboardConfig, result: RunResult) -> Rendered:
    summary, settings = result.summary, result.settings
    extra = {"status": result.status, "wall_seconds": result.wall_seconds}
    paths = write_outputs(
        config.runs_dir / result.run_id, result.rows, summary, settings, result.run_id, extra, result.skipped
    )
    o = summary.overall
    lines = headline_lines(result)
    if invented := invented_markdown(result.rows, summary.group_columns):
        lines.append(invented)
    if summary.languages is not None and (warning := summary.languages.warning()):
        lines.append(f"⚠️ {esc(warning)}.")
    if summary.streaming is not None:
        lines.append("**Streaming** (committed text on the simulated live clock):\n\n" + _streaming_markdown(summary))
    if result.rows.empty:
        lines.append("No utterance was scored before the run stopped: nothing to tabulate.")
    if result.skipped:
        lines.append(f"⚠️ {len(result.skipped)} dataset row(s) skipped: " + "; ".join(map(esc, result.skipped[:5])))
    files = tuple(str(paths[name]) for name, _ in layout.DOWNLOADS)
    group = summary.group_columns[0] if summary.group_columns else None
    table, label = wer_table(summary), f"WER by {group} x noise" if group else "WER by noise"
    rates = invented_pivot(result.rows, group) if o.ref_words == 0 else None
    if rates is not None:  # a probe run: no reference words, so no WER; what counts is what was invented
        table = invented_table(rates, group)
        label = f"Invented words per minute of non-speech by {group or 'noise'} x noise (0 is right)"
    return Rendered(
        "\n\n".join(lines),
        table,
        label,
        group_chart(result.rows, summary, settings.seed),
        utterance_frame(result.rows, summary.group_columns),
        files,
    )


def _streaming_markdown(summary) -> str:
    return markdown_table(format_streaming(summary.streaming, ["noise"]))


def _utterance(store: Store, config: DashboardConfig, tab: ValidateTab, evt: gr.SelectData):
    """The alignment of one row (S/D/I coloured) and its clean and noisy audio, re-made from the run's seed.

    A run made on the command line may name a dataset or noise folder outside the page's roots: its table is
    shown, but its audio is not re-made (that would read the files)."""
    result, row = tab.result, dict(zip(tab.columns, evt.row_value or [], strict=False))
    if result is None or "id" not in row or "noise" not in row:
        return gr.Group(visible=False), *[gr.skip()] * 4
    match = result.rows[(result.rows["id"].astype(str) == str(row["id"])) & (result.rows["noise"] == row["noise"])]
    if "mode" in row and "mode" in match.columns:
        match = match[match["mode"] == row["mode"]]
    if match.empty:
        return gr.Group(visible=False), *[gr.skip()] * 4
    item = match.iloc[0].to_dict()
    spans = row_alignment(item, result.settings.normalizer)
    heading = (
        f"**{esc(item['id'])}** · {esc(item['noise'])}{made_text(item)} · WER {pct(float(item['wer']))} "
        f"({int(item['substitutions'])} substituted, {int(item['deletions'])} deleted, "
        f"{int(item['insertions'])} inserted; normalizer `{esc(result.settings.normalizer)}`)"
    )
    try:
        roots = config.roots()
        check_run_paths(roots, result.settings)
        audio = utterance_audio(store, result.run_id, str(item["id"]), str(item["noise"]), roots.allows)
    except (KeyError, *USER_ERRORS) as exc:
        gr.Warning(f"The audio could not be re-made: {without_paths(str(exc), store.db_path, store.data_dir)}")
        return gr.Group(visible=True), heading, render_alignment(spans), None, None
    if not check_regenerated(item, audio):
        heading += "\n\n⚠️ The dataset changed since this run: the audio below may differ from what was scored."
    clean, noisy = shared.player_audio(audio.clean), shared.player_audio(audio.noisy)
    return gr.Group(visible=True), heading, render_alignment(spans), clean, noisy


def _compare(store: Store, tab: ValidateTab, baseline_id: str | None):
    """Deltas of the run on screen (B) against the baseline (A), per group; regressions beyond the CI marked."""
    if tab.result is None:
        raise gr.Error("Run or open a run first; it is the one compared with the baseline.")
    if not baseline_id or baseline_id == tab.result.run_id:
        raise gr.Error("Pick a baseline run other than the one shown.")
    try:
        comparison = compare_runs(store, baseline_id, tab.result.run_id, seed=tab.result.settings.seed)
    except RunNotFound as exc:
        raise gr.Error(without_paths(str(exc), store.db_path, store.data_dir)) from exc
    if comparison.table.empty:
        return "The two runs share no group to compare.", gr.Dataframe(visible=False)
    changes = list(comparison.table["change"])
    differs = "; ".join(comparison.differences) or "none"
    note = (
        f"Run `{tab.result.run_id}` (B) against baseline `{baseline_id}` (A): delta = B - A, positive is worse. "
        f"**{changes.count('regression')} regression(s)** and {changes.count('improvement')} improvement(s) beyond "
        f"the 95% interval. Settings that differ: {esc(differs)}."
    )
    return note, gr.Dataframe(value=comparison_table(comparison), visible=True)
