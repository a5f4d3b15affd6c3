"""The Validate page's components: the run form, the results area and the earlier runs, laid out once.

``dashboard.pages.validate`` wires these components to its handlers; keeping the layout here leaves that module
with the events alone. ``Form.inputs`` is the order ``validate_form.run_options`` reads the form in.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from dashboard.shared import WIDE_TABLE, model_choices, model_picker
from evaluation.channel import CHANNEL_CHOICES

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
class Form:
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
    min_words: gr.Number
    seed: gr.Number
    run: gr.Button
    cancel: gr.Button
    models: list  # model, backend, extra models, executor, path (mode), stream seconds

    @property
    def inputs(self) -> list:
        columns = [self.source, self.location, self.split, self.text_column, self.group_columns, self.speaker_column]
        return [*columns, *self.noise, self.limit, self.min_words, self.seed, *self.models]


@dataclass
class Results:
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
class Earlier:
    """Earlier runs and the comparison with a baseline."""

    runs: gr.Dropdown
    open_run: gr.Button
    baseline: gr.Dropdown
    compare: gr.Button
    note: gr.Markdown
    table: gr.Dataframe


def form(page: gr.Blocks) -> Form:
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
        # labelled and shown for the dataset picked (validate_form.location_box); the built-in set needs none
        location = gr.Textbox(label="Folder or manifest file", visible=False, elem_id="validate-location")
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
        limit = gr.Number(
            0, label="Utterances (0: all; else spread evenly)", precision=0, minimum=0, elem_id="validate-limit"
        )
        min_words = gr.Number(
            0, label="Words per utterance, at least (0: any)", precision=0, minimum=0, elem_id="validate-min-words"
        )
        seed = gr.Number(0, label="Seed", precision=0)
        executor = gr.Textbox(
            "local", label="Executor (local, ray or ray://HOST:PORT)", max_lines=1, elem_id="validate-executor"
        )
    with gr.Row():
        mode = gr.Radio(MODES, value="offline", label="Path", elem_id="validate-mode", scale=2)
        stream_seconds = gr.Number(0, label="Join into streams of (s; 0: each alone)", minimum=0)
    with gr.Row():
        run = gr.Button("Run validation", variant="primary", elem_id="validate-run", scale=3)
        cancel = gr.Button("Cancel", variant="stop", elem_id="validate-cancel", scale=1)
    return Form(
        source, location, split, text_column, group_columns, speaker_column, inspect, columns_note,
        [kinds, snrs, rt60s, noise_dir, channels], conditions, limit, min_words, seed, run, cancel,
        [picker.model, picker.backend, extra_models, executor, mode, stream_seconds],
    )  # fmt: skip


def results() -> Results:
    status = gr.Markdown(  # never empty: a run's progress bar is drawn over it
        "*Press **Run validation**: progress shows here, then the tables.*", elem_id="validate-status"
    )
    # hidden until a run is shown: empty, a table reads "1 2 3" and the chart is a blank box
    table = gr.Dataframe(label="WER by accent x noise", interactive=False, visible=False, elem_id="wer-table")
    chart = gr.Plot(label="WER per group with 95% CI", visible=False, elem_id="wer-chart")
    with gr.Row(equal_height=True):  # at 1024 px 'Download Summary CSV' took two lines, the others one
        downloads = [
            gr.DownloadButton(f"Download {label}", visible=False, elem_id=f"download-{name.replace('.', '-')}")
            for name, label in DOWNLOADS
        ]
    utterances = gr.Dataframe(
        label="Per utterance (click a row for the alignment and audio)",
        interactive=False,
        wrap=True,
        max_height=400,
        visible=False,
        elem_id="utterance-table",
        elem_classes=[WIDE_TABLE],  # at 820 px its words broke ("stre aming"): scrolls sideways instead
    )
    with gr.Group(visible=False) as detail:
        detail_heading = gr.Markdown()
        alignment = gr.HTML(elem_id="alignment-view")
        with gr.Row():
            clean_audio = gr.Audio(label="Clean", interactive=False, elem_id="clean-audio")
            # short: 'As transcribed (with noise and channel)' ran under its download buttons at 800 px
            noisy_audio = gr.Audio(label="As the model heard it", interactive=False, elem_id="noisy-audio")
    return Results(
        status, table, chart, downloads, utterances, [detail, detail_heading, alignment, clean_audio, noisy_audio]
    )


def earlier() -> Earlier:
    with gr.Accordion("Earlier runs and comparison", open=True):
        with gr.Row():
            runs = gr.Dropdown([], label="Run", elem_id="validate-runs")
            open_run = gr.Button("Open", scale=0, elem_id="validate-open")
        with gr.Row():
            baseline = gr.Dropdown([], label="Compare the run shown with (baseline)", elem_id="validate-baseline")
            compare = gr.Button("Compare", scale=0, elem_id="validate-compare")
        note = gr.Markdown(elem_id="compare-note")
        table = gr.Dataframe(
            label="WER change per group, B - A",
            interactive=False,
            visible=False,
            wrap=True,
            elem_id="compare-table",
        )
    return Earlier(runs, open_run, baseline, compare, note, table)
