"""Validate (`/validate`): the validation runner over a dataset x noise conditions, with tables and comparison.

The page turns the form into ``evaluation.runner.RunOptions`` (one per model), runs ``run_validation`` with a
progress callback and a cancel event, and renders the ``RunResult`` (see ``dashboard.validate_view``). Earlier
runs are reopened from the store with ``load_result``, so results survive a restart and can be compared.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass, field

import gradio as gr
import pandas as pd

from asr.audio import SAMPLE_RATE
from dashboard.config import DashboardConfig
from dashboard.shared import esc, get_store, model_choices, model_picker, render_alignment, without_paths
from dashboard.validate_form import USER_ERRORS, dataset_spec, noise_specs, run_options
from dashboard.validate_view import comparison_table, group_chart, run_label, utterance_frame, wer_table
from evaluation.channel import CHANNEL_CHOICES
from evaluation.compare import compare_runs
from evaluation.datasets import RESULT_GROUPS
from evaluation.noise import USAGE, NoiseError, parse_conditions
from evaluation.replay import check_regenerated, row_alignment, utterance_audio
from evaluation.report import SYNTHETIC_NOTE, markdown_table, write_outputs
from evaluation.runner import RunResult, load_result, run_validation
from evaluation.sources import open_source
from evaluation.store import RunNotFound, Store
from evaluation.stream_tables import format_streaming

logger = logging.getLogger(__name__)

SOURCES = [
    ("Built-in sample set", "builtin"),
    ("Real speech (Debian voice prompts, 5 languages)", "builtin-real"),
    ("Local folder or manifest", "folder"),
    ("Hugging Face hub dataset", "hub"),
    ("Recorded test cases", "recorded"),
    ("Hallucination probes (non-speech)", "probes"),
]
CHANNELS = ["none", *CHANNEL_CHOICES]
MODES = [("Offline (full context)", "offline"), ("Streaming (as on Live)", "streaming"), ("Both, side by side", "both")]
NOISE_KINDS = ["clean", "white", "pink", "babble", "reverb"]
DOWNLOADS = (
    ("results.csv", "Results CSV"),
    ("summary.csv", "Summary CSV"),
    ("summary.json", "JSON"),
    ("summary.md", "Markdown"),
)


@dataclass
class ValidateTab:
    """One tab's run: the cancel switch of the run in progress and the result on screen."""

    cancel: threading.Event = field(default_factory=threading.Event)
    result: RunResult | None = None
    columns: list[str] = field(default_factory=list)  # columns of the utterance table on screen

    def __deepcopy__(self, memo) -> ValidateTab:
        return ValidateTab()


@dataclass(frozen=True)
class Rendered:
    """Everything the results area shows for one run, in the order of the page's outputs."""

    status: str
    table: object
    chart: object
    utterances: pd.DataFrame
    files: tuple[str | None, ...]


@dataclass
class _Form:
    """The run form's components; ``inputs`` is the order ``validate_form.run_options`` reads them in."""

    source: gr.Radio
    location: gr.Textbox
    split: gr.Textbox
    text_column: gr.Dropdown
    group_columns: gr.Dropdown
    speaker_column: gr.Dropdown
    inspect: gr.Button
    columns_note: gr.Markdown
    noise: list  # kinds, SNRs, RT60s, noise folder, channels
    conditions: gr.Markdown
    limit: gr.Number
    seed: gr.Number
    run: gr.Button
    cancel: gr.Button
    models: list  # model, backend, extra models, executor, path (mode), stream seconds

    @property
    def inputs(self) -> list:
        columns = [self.source, self.location, self.split, self.text_column, self.group_columns, self.speaker_column]
        return [*columns, *self.noise, self.limit, self.seed, *self.models]


@dataclass
class _Results:
    """The results area: status, table, chart, per-utterance table, downloads, the utterance detail."""

    status: gr.Markdown
    table: gr.Dataframe
    chart: gr.Plot
    downloads: list
    utterances: gr.Dataframe
    detail: list  # group, heading, alignment, clean audio, noisy audio

    @property
    def outputs(self) -> list:
        return [self.status, self.table, self.chart, self.utterances, *self.downloads]


@dataclass
class _Earlier:
    """Earlier runs and the comparison with a baseline."""

    runs: gr.Dropdown
    open_run: gr.Button
    baseline: gr.Dropdown
    compare: gr.Button
    note: gr.Markdown
    table: gr.Dataframe


def build(page: gr.Blocks, config: DashboardConfig) -> None:
    store = get_store(config.data_dir)
    gr.Markdown(
        "## Validate\nWER per accent and noise condition over a dataset, with 95% bootstrap intervals. "
        f"*{SYNTHETIC_NOTE}*"
    )
    form = _form(page)
    results = _results()
    earlier = _earlier()
    tab = gr.State(lambda: ValidateTab())  # a factory: each tab gets its own
    _wire_form(page, store, config, tab, form, results, earlier)
    _wire_results(store, config, tab, results, earlier)


def _form(page: gr.Blocks) -> _Form:
    picker = model_picker(page, "validate")
    extra_models = gr.Dropdown(
        model_choices(),
        value=[],
        multiselect=True,
        allow_custom_value=True,
        label="Also run with these models (one run each, compared)",
        elem_id="validate-models",
    )
    with gr.Row():
        source = gr.Radio(SOURCES, value="builtin", label="Dataset", elem_id="validate-source")
        location = gr.Textbox(
            label="Folder, manifest file or hub id (ID[:CONFIG[:SPLIT]]); for real speech: languages (en or fr,it)",
            placeholder="/data/my-set or edinburghcstr/edacc",
            elem_id="validate-location",
        )
    with gr.Accordion("Columns (when the dataset's names are not the usual ones)", open=False):
        with gr.Row():
            split = gr.Textbox(label="Split", placeholder="test")
            text_column = gr.Dropdown([], label="Text column", allow_custom_value=True)
            group_columns = gr.Dropdown([], multiselect=True, allow_custom_value=True, label="Group columns")
            speaker_column = gr.Dropdown([], label="Speaker column", allow_custom_value=True)
        inspect = gr.Button("Read the dataset's columns", size="sm")
        columns_note = gr.Markdown()
    with gr.Row():
        kinds = gr.CheckboxGroup(NOISE_KINDS, value=["clean", "white"], label="Noise", elem_id="validate-noise")
        snrs = gr.Textbox("10", label="SNRs in dB (comma separated)", elem_id="validate-snrs")
        rt60s = gr.Textbox("0.6", label="Reverb RT60s in s")
        noise_dir = gr.Textbox(label="Your noise recordings folder (optional)", placeholder="/data/musan/noise")
    channels = gr.CheckboxGroup(CHANNELS, value=["none"], label="Channel (after the noise)", elem_id="validate-channel")
    conditions = gr.Markdown(elem_id="validate-conditions")
    with gr.Row():
        limit = gr.Number(0, label="Utterances (0: all)", precision=0, minimum=0, elem_id="validate-limit")
        seed = gr.Number(0, label="Seed", precision=0)
        executor = gr.Textbox(
            "local", label="Executor (local, ray or ray://HOST:PORT)", max_lines=1, elem_id="validate-executor"
        )
        mode = gr.Radio(MODES, value="offline", label="Path", elem_id="validate-mode")
        stream_seconds = gr.Number(0, label="Join into streams of (s; 0: each alone)", minimum=0)
        run = gr.Button("Run validation", variant="primary", elem_id="validate-run")
        cancel = gr.Button("Cancel", variant="stop", elem_id="validate-cancel")
    return _Form(
        source, location, split, text_column, group_columns, speaker_column, inspect, columns_note,
        [kinds, snrs, rt60s, noise_dir, channels], conditions, limit, seed, run, cancel,
        [picker.model, picker.backend, extra_models, executor, mode, stream_seconds],
    )  # fmt: skip


def _results() -> _Results:
    status = gr.Markdown(elem_id="validate-status")
    table = gr.Dataframe(label="WER by accent x noise", interactive=False, elem_id="wer-table")
    chart = gr.Plot(label="WER per group with 95% CI", elem_id="wer-chart")
    with gr.Row():
        downloads = [
            gr.DownloadButton(f"Download {label}", visible=False, elem_id=f"download-{name.replace('.', '-')}")
            for name, label in DOWNLOADS
        ]
    utterances = gr.Dataframe(
        label="Per utterance (click a row for the alignment and audio)",
        interactive=False,
        wrap=True,
        max_height=400,
        elem_id="utterance-table",
    )
    with gr.Group(visible=False) as detail:
        detail_heading = gr.Markdown()
        alignment = gr.HTML(elem_id="alignment-view")
        with gr.Row():
            clean_audio = gr.Audio(label="Clean", interactive=False, elem_id="clean-audio")
            noisy_audio = gr.Audio(
                label="As transcribed (with noise and channel)", interactive=False, elem_id="noisy-audio"
            )
    return _Results(
        status, table, chart, downloads, utterances, [detail, detail_heading, alignment, clean_audio, noisy_audio]
    )


def _earlier() -> _Earlier:
    with gr.Accordion("Earlier runs and comparison", open=True):
        with gr.Row():
            runs = gr.Dropdown([], label="Run", elem_id="validate-runs")
            open_run = gr.Button("Open", scale=0, elem_id="validate-open")
        with gr.Row():
            baseline = gr.Dropdown([], label="Compare the run shown with (baseline)", elem_id="validate-baseline")
            compare = gr.Button("Compare", scale=0, elem_id="validate-compare")
        note = gr.Markdown(elem_id="compare-note")
        table = gr.Dataframe(interactive=False, visible=False, wrap=True, elem_id="compare-table")
    return _Earlier(runs, open_run, baseline, compare, note, table)


def _wire_form(page, store: Store, config: DashboardConfig, tab, form: _Form, results: _Results, earlier: _Earlier):
    """The form's events: run lists on load, the conditions preview, column inspection, run and cancel."""
    page.load(lambda: (_run_choices(store),) * 2, None, [earlier.runs, earlier.baseline], api_name="validate_load_runs")
    gr.on(
        [page.load, *(c.change for c in form.noise)],
        lambda *v: _preview_conditions(*v, roots=config.roots()),
        form.noise,
        form.conditions,
        api_name="validate_conditions",
        show_progress="hidden",
    )
    form.inspect.click(
        lambda s, loc, sp: _inspect(store, config, s, loc, sp),
        [form.source, form.location, form.split],
        [form.text_column, form.group_columns, form.speaker_column, form.columns_note],
        api_name="validate_columns",
    )
    form.run.click(
        lambda t, *v: _run(store, config, t, *v),
        [tab, *form.inputs],
        [*results.outputs, earlier.runs, earlier.baseline],
        api_name="validate_run",
        concurrency_limit=1,
        concurrency_id="validate_run",
    )
    form.cancel.click(_cancel, tab, results.status, api_name="validate_cancel", concurrency_limit=None)


def _wire_results(store: Store, config: DashboardConfig, tab, results: _Results, earlier: _Earlier):
    """Reopening a run, comparing with a baseline, and the utterance detail."""
    earlier.open_run.click(
        lambda t, r: _open(store, config, t, r), [tab, earlier.runs], results.outputs, api_name="validate_open_run"
    )
    earlier.compare.click(
        lambda t, b: _compare(store, t, b),
        [tab, earlier.baseline],
        [earlier.note, earlier.table],
        api_name="validate_compare",
    )

    def pick_utterance(t: ValidateTab, evt: gr.SelectData):
        return _utterance(store, config, t, evt)

    results.utterances.select(pick_utterance, tab, results.detail, api_name="validate_utterance")


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
    all_options = run_options(form, config.roots())
    tab.cancel = threading.Event()
    done: list[RunResult] = []
    for n, options in enumerate(all_options, 1):
        prefix = f"model {n}/{len(all_options)} ({options.model_name}): " if len(all_options) > 1 else ""

        def report(finished: int, total: int, message: str, prefix=prefix) -> None:
            progress(finished / total if total else 0.0, desc=f"{prefix}{finished}/{total} {message}")

        try:
            result = run_validation(options, store, progress=report, cancel=tab.cancel)
        except USER_ERRORS as exc:
            raise gr.Error(without_paths(str(exc), store.db_path, store.data_dir)) from exc
        done.append(result)
        if result.status == "cancelled":
            break
    shown = _show(config, tab, done[0])
    choices = _run_choices(store).choices
    baseline = done[1].run_id if len(done) > 1 else None  # several models: the second is the first's baseline
    return (*shown, gr.Dropdown(choices=choices, value=done[0].run_id), gr.Dropdown(choices=choices, value=baseline))


def _cancel(tab: ValidateTab) -> str:
    tab.cancel.set()
    return "Cancelling after the current batch… (run it again with the same settings to resume)"


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
    return (r.status, r.table, r.chart, r.utterances, *buttons)


def _render(config: DashboardConfig, result: RunResult) -> Rendered:
    summary, settings = result.summary, result.settings
    extra = {"status": result.status, "wall_seconds": result.wall_seconds}
    paths = write_outputs(
        config.runs_dir / result.run_id, result.rows, summary, settings, result.run_id, extra, result.skipped
    )
    o = summary.overall
    lines = [
        f"**Run `{result.run_id}`** ({result.status}): `{esc(settings.model)}` on {esc(settings.backend)}, dataset "
        f"`{esc(settings.dataset)}`, noise {', '.join(f'`{esc(n)}`' for n in settings.noise)}, seed {settings.seed}, "
        f"normalizer `{esc(settings.normalizer)}`, executor `{esc(settings.executor)}`.",
        f"Overall WER **{_pct(o.wer)}** (raw {_pct(o.raw_wer)}), CER {_pct(o.cer)}, {o.utterances} utterances, "
        f"{o.audio_seconds:.0f} s of audio; rtfx {result.rtfx:.1f} (audio seconds per second) in this run."
        if math.isfinite(result.rtfx)
        else f"Overall WER **{_pct(o.wer)}** (raw {_pct(o.raw_wer)}), CER {_pct(o.cer)}, {o.utterances} utterances.",
        "`*` marks a cell with too few utterances or speakers to trust.",
    ]
    if summary.streaming is not None:
        lines.append("**Streaming** (committed text on the simulated live clock):\n\n" + _streaming_markdown(summary))
    if result.skipped:
        lines.append(f"⚠️ {len(result.skipped)} dataset row(s) skipped: " + "; ".join(map(esc, result.skipped[:5])))
    files = tuple(str(paths[name]) for name, _ in DOWNLOADS)
    return Rendered(
        "\n\n".join(lines),
        wer_table(summary),
        group_chart(result.rows, summary, settings.seed),
        utterance_frame(result.rows, summary.group_columns),
        files,
    )


def _streaming_markdown(summary) -> str:
    return markdown_table(format_streaming(summary.streaming, ["noise"]))


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%" if math.isfinite(value) else "n/a"


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
        f"**{esc(item['id'])}** · {esc(item['noise'])} · WER {_pct(float(item['wer']))} "
        f"({int(item['substitutions'])} substituted, {int(item['deletions'])} deleted, "
        f"{int(item['insertions'])} inserted; normalizer `{esc(result.settings.normalizer)}`)"
    )
    try:
        _check_run_paths(config, result.settings)
        audio = utterance_audio(store, result.run_id, str(item["id"]), str(item["noise"]))
    except (KeyError, *USER_ERRORS) as exc:
        gr.Warning(f"The audio could not be re-made: {without_paths(str(exc), store.db_path, store.data_dir)}")
        return gr.Group(visible=True), heading, render_alignment(spans), None, None
    if not check_regenerated(item, audio):
        heading += "\n\n⚠️ The dataset changed since this run: the audio below may differ from what was scored."
    clean, noisy = (SAMPLE_RATE, audio.clean), (SAMPLE_RATE, audio.noisy)
    return gr.Group(visible=True), heading, render_alignment(spans), clean, noisy


def _check_run_paths(config: DashboardConfig, settings) -> None:
    roots = config.roots()
    roots.check_dataset(settings.dataset)
    for spec in settings.noise:  # not parsed: parsing looks at the folder, which would say whether it exists
        for part in str(spec).split("+"):
            if part.strip().startswith("file:"):
                roots.check_folder(part.strip()[5:].rsplit("@", 1)[0], "noise folder")


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
