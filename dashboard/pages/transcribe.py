"""Transcribe (`/transcribe`): full-context transcription of an upload or a recording, then Flag or Save.

The page turns UI values into a call to ``asr.transcribe.transcribe`` and renders the ``Transcript``; saving goes
to the store. What was transcribed is kept per browser tab in a ``gr.State`` so that Flag and Save use exactly
the audio and text the tester saw.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field

import gradio as gr

from asr.audio import AudioError, collect_warnings
from asr.results import Transcript
from asr.transcribe import transcribe
from dashboard.config import DashboardConfig
from dashboard.shared import (
    AGAIN,
    CONFIDENCE_COLORS,
    Heard,
    case_form,
    confidence_band,
    esc,
    get_store,
    kept_line,
    load_backend_or_error,
    model_picker,
    save_test_case,
    without_paths,
)

logger = logging.getLogger(__name__)

FLAG_REASONS = [
    "wrong words",
    "missing words",
    "invented words (hallucination)",
    "names or terms",
    "punctuation or casing",
    "word timing",
    "other",
]


@dataclass(frozen=True)
class Take:
    """One transcription as the tester saw it: the audio file and the result."""

    audio_path: str
    transcript: Transcript
    # the key the store finds this take's flag and test case by: flagging or saving it again updates them (no
    # copy), whichever press ends first; the ids were kept here, and Flag and Save at once lost one of them
    origin: str = field(default_factory=lambda: uuid.uuid4().hex)


class Shown:
    """Which file the page shows now, per tab: its path, and a turn bumped on every change of file (cleared and
    picked again is another turn): a transcription of an earlier turn is not drawn (a long file's transcript landed
    under the next file, to be flagged with it) and stops at its next batch. A Transcribe pressed at once after a
    pick can reach the server before the pick's change event: it takes the file's turn itself (:meth:`pick`), where
    the change coming after it used to abandon it, and nothing was shown. ``done`` and ``running`` are the turn,
    model and backend of the transcript shown and of the run under way: pressed again for those (a double click ran
    the file twice, the second run replacing the take already flagged, so the next Flag made a copy), Transcribe has
    nothing new to do."""

    def __init__(self) -> None:
        self.turn = 0
        self.path: str | None = None
        self.done: tuple[int, str, str] | None = None
        self.running: tuple[int, str, str] | None = None

    def __deepcopy__(self, memo) -> Shown:
        return Shown()

    def pick(self, path: str | None) -> bool:
        """The file shown is ``path`` now: a new turn, unless it is the one shown already (False then)."""
        if path == self.path:
            return False
        self.path, self.turn = path, self.turn + 1
        return True


ALREADY_DONE = "Transcribe pressed again for the same file and model: its transcript is (or will be) the one shown."


class _Abandoned(Exception):
    """Raised from the engine's progress callback once the tester moved to another file: the abandoned run stops
    after its current batch instead of keeping the two cores busy to its end."""


def build(page: gr.Blocks, config: DashboardConfig) -> None:
    gr.Markdown("## Transcribe\nFull-context transcription of a recording or an uploaded file of any length.")
    picker = model_picker(page, "transcribe")
    audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Audio", elem_id="transcribe-audio")
    run = gr.Button("Transcribe", variant="primary", elem_id="transcribe-button")
    text = gr.Textbox(label="Transcript", lines=4, interactive=False, buttons=["copy"], elem_id="transcript")
    words = gr.HTML(label="Words by confidence", elem_id="transcript-words")
    stats = gr.Markdown(elem_id="transcribe-stats")
    take = gr.State(None)
    shown = gr.State(Shown)
    with gr.Accordion("Flag this transcript", open=False, elem_id="flag-panel"):
        reason = gr.Dropdown(FLAG_REASONS, value=FLAG_REASONS[0], label="Reason", elem_id="flag-reason")
        corrected = gr.Textbox(label="Corrected transcript", lines=3, elem_id="flag-corrected")
        flag_notes = gr.Textbox(label="Notes", lines=1, elem_id="flag-notes")
        flag = gr.Button("Flag", variant="stop", elem_id="flag-button")
    with gr.Accordion("Save as test case", open=False, elem_id="save-panel"):
        form = case_form("transcribe")
        save = gr.Button("Save as test case", elem_id="transcribe-save")
    saved = gr.Markdown(elem_id="transcribe-saved")

    run.click(
        _transcribe,
        [audio, picker.model, picker.backend, shown],
        [take, text, words, stats, corrected, form.reference],
        api_name="transcribe",
        show_progress_on=[text],  # one progress bar (and one Error badge), on the transcript box
        concurrency_limit=2,
        # Gradio's default ("once") ignored a press while this tab's last run was still going, so Transcribe on the
        # next file did nothing; the press now runs once that run ends (it stops at its next batch: see _Abandoned).
        trigger_mode=AGAIN,
    )
    # Another file (or none) forgets the last one's transcript: it stayed on screen, and in what Flag and Save would
    # keep, under a new upload (and under the error of one that could not be read).
    audio.change(
        _forget,
        [audio, shown],
        [take, text, words, stats, corrected, form.reference, saved],
        api_name="transcribe_forget",
        show_progress="hidden",
    )
    # Flag or Save pressed again while the last one was still writing, after correcting the text or a label, was
    # dropped: it now runs after it, and updates the same case (found by the take's origin, in the store)
    flag.click(
        lambda *args: _flag(config, *args),
        [take, reason, corrected, flag_notes],
        saved,
        api_name="transcribe_flag",
        trigger_mode=AGAIN,
    )
    save.click(
        lambda *args: _save(config, *args),
        [take, *form.inputs],
        saved,
        api_name="transcribe_save_case",
        trigger_mode=AGAIN,
    )


def _transcribe(audio_path: str | None, model: str, backend: str, shown: Shown, progress=gr.Progress()):  # noqa: B008
    if not audio_path:
        raise gr.Error("Upload a file or record from the microphone first.")
    shown.pick(audio_path)  # its change event may not have come yet
    key = (shown.turn, model, backend)
    if key in (shown.done, shown.running):
        gr.Info(ALREADY_DONE)
        return (gr.skip(),) * 6
    shown.running = key
    try:
        return _run(audio_path, model, backend, shown, progress)
    finally:
        if shown.running == key:
            shown.running = None


def _run(audio_path: str, model: str, backend: str, shown: Shown, progress) -> tuple:
    """The transcription for this turn of ``shown``, or skips once another file was picked (see ``Shown``)."""
    turn = shown.turn
    progress(0, desc="loading the model")
    engine = load_backend_or_error(model, backend)
    progress(0, desc="reading the audio and finding speech")

    def report(done: float, total: float) -> None:
        if shown.turn != turn:
            raise _Abandoned
        progress(done / total if total else 1.0, desc=f"{done:.0f} of {total:.0f} s of audio")

    try:
        with collect_warnings() as warnings:
            result = transcribe(audio_path, backend=engine, progress=report)
    except AudioError as exc:
        raise gr.Error(without_paths(str(exc), audio_path)) from exc
    except _Abandoned:
        return (gr.skip(),) * 6
    if shown.turn != turn:  # another file was picked meanwhile: this one's result is not shown
        return (gr.skip(),) * 6
    for warning in warnings:  # e.g. loud float audio scaled back into range
        gr.Warning(without_paths(warning, audio_path))
    shown.done = (turn, model, backend)
    return (
        Take(audio_path, result),
        result.text,
        render_words(result),
        render_stats(result, engine.multilingual),
        result.text,
        result.text,
    )


def _forget(audio_path: str | None, shown: Shown) -> tuple:
    """Nothing transcribed: no take to flag or save, and nothing of the last file on screen. A change to the file a
    run already took (see ``Shown``) changes nothing."""
    if not shown.pick(audio_path):
        return (gr.skip(),) * 7
    return None, "", "", "", "", "", ""


def render_words(result: Transcript) -> str:
    """Each word coloured by the model's confidence, with its probability and times on hover."""
    if not result.words:
        return "<p class='asrqa-muted'>No speech found.</p>" if not result.text else f"<p>{esc(result.text)}</p>"
    spans = [
        f"<span class='asrqa-word asrqa-{confidence_band(w.probability)}' "
        f"title='p={w.probability:.2f}, {w.start:.2f}-{w.end:.2f} s'>{esc(w.word.strip())}</span>"
        for w in result.words
    ]
    legend = " ".join(f"<span class='asrqa-word asrqa-{band}'>{band}</span>" for band in CONFIDENCE_COLORS)
    return f"<div class='asrqa-words'>{' '.join(spans)}</div><div class='asrqa-legend'>confidence: {legend}</div>"


def render_stats(result: Transcript, multilingual: bool = True) -> str:
    rtfx = "instant" if result.compute_seconds <= 0 else f"rtfx {result.rtfx:.1f}"
    return (
        f"**{result.duration:.1f} s** of audio ({result.speech_seconds:.1f} s speech) in "
        f"**{result.compute_seconds:.2f} s** compute: **{rtfx}** · {esc(result.model)} on {esc(result.backend)}"
        f" · language **{esc(result.language)}** ({_language_source(result, multilingual)})"
    )


def _language_source(result: Transcript, multilingual: bool) -> str:
    """Whether the language was forced, detected (multilingual models: per window, the majority shown), or the
    only one an English-only model has."""
    if result.options.language:
        return "forced"
    return "detected" if multilingual else "English-only model"


def _flag(config: DashboardConfig, take: Take | None, reason: str, corrected: str, notes: str) -> str:
    if take is None:
        raise gr.Error("Transcribe something first; a flag keeps the audio and the transcript together.")
    saved = get_store(config.data_dir).save_take(
        "flag",
        take.audio_path,
        origin=take.origin,
        transcript=take.transcript.text,
        reference=corrected or take.transcript.text,
        reason=reason or "other",
        notes=notes,
        model=take.transcript.model,
        backend=take.transcript.backend,
    )
    case = saved.case
    if not saved.added:  # flagged already (a double click, or a second go at the correction): that flag is updated
        kept = f"; its reason stays {esc(case.reason)}" if case.reason != (reason or "other") else ""
        return (
            f"Updated flag `{case.id}` (this transcript was flagged already{kept}): see [Review](/review)."
            + kept_line(saved.kept, "corrected transcript")
        )
    return f"Flagged ({esc(case.reason)}) as `{case.id}`: it is listed on the [Review](/review) page."


def _save(
    config: DashboardConfig, take: Take | None, reference: str, accent: str, noise: str, device: str, notes: str
) -> str:
    if take is None:
        raise gr.Error("Transcribe something first; a test case keeps the audio and the transcript together.")
    heard = Heard(take.audio_path, take.transcript.text, take.transcript.model, take.transcript.backend, take.origin)
    return save_test_case(config.data_dir, heard, reference, accent, noise, device, notes).message
