"""Pieces every page uses: the store, the shared model and backend picker, the test-case form, small renderers.

``gr.State`` does not cross pages (each page loads fresh), so what is shared lives elsewhere: models in the
process-wide cache of ``asr.backends.get_backend``, saved data in the store, and the tester's model choice in
the browser's local storage (``gr.BrowserState``), so that a model picked on one page is picked on the next.
"""

from __future__ import annotations

import functools
import html
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from asr.audio import SAMPLE_RATE
from asr.backends import DEFAULT_BACKEND, Backend, BackendError, get_backend
from asr.models import UnknownModelError, default_model, list_models
from asr.results import BACKENDS
from evaluation.scoring import AlignedSpan, score
from evaluation.store import Store

logger = logging.getLogger(__name__)

MODEL_CHOICE_KEY = "asrqa-model-choice"  # local-storage key shared by every page
ACCENTS = ["", "US", "British", "Scottish", "Irish", "Welsh", "Indian", "Caribbean", "Australian", "other"]
NOISE_CONDITIONS = ["", "quiet room", "office", "street", "car", "cafe / babble", "music", "wind", "other"]
DEVICES = ["", "laptop microphone", "headset", "phone", "desk microphone", "far-field", "other"]
WIDE_TABLE = "asrqa-wide-table"  # class of a table laid out at 1200 px at least (dashboard.app.CSS), else words break
# Trigger modes: what a press does while the same event of the tab is still under way. Gradio's default ("once")
# drops it without a word: a Save after a correction, a Stop, a row clicked were lost. AGAIN runs it once more when
# the last ends, with the page as it is then (a save updates its case, a read shows the last pick); EACH runs every
# press, in order (a table's select: AGAIN replays the first click's row). A long run disables its button instead.
AGAIN = "always_last"
EACH = "multiple"


def disabled() -> gr.Button:
    """The update that disables a button as its long event starts (see :func:`enabled_after`)."""
    return gr.Button(interactive=False)


def enabled_after(event, button: gr.Button, name: str) -> None:
    """``button`` enabled again once ``event``, the last step of the chain its press started, ends or fails.

    Not ``event.then``: Gradio 6's browser runs a ``.then`` step after success only, though its docs say "regardless
    of success or failure" (fixed once for Gradio 3, gradio-app/gradio#4113), so a refused run (a dataset path outside
    the roots, an export of nothing) left its button disabled until the page was reloaded. ``.success`` and
    ``.failure`` each run on their own outcome, so exactly one runs, whichever way Gradio settles ``.then``."""
    options = {"concurrency_limit": None, "show_progress": "hidden"}
    event.success(_enabled, None, button, api_name=f"{name}_ended", **options)
    event.failure(_enabled, None, button, api_name=f"{name}_failed", **options)


def _enabled() -> gr.Button:
    return gr.Button(interactive=True)


def disabled_while(button: gr.Button, name: str, fn, inputs, outputs, **kwargs) -> None:
    """``button`` runs ``fn`` (event ``name``) and is disabled until it ends: pressed again during a long run, the
    press was dropped without a word (what was shown then came from the first press)."""
    start = button.click(disabled, None, button, api_name=f"{name}_start", show_progress="hidden")
    enabled_after(start.then(fn, inputs, outputs, api_name=name, **kwargs), button, name)


_STORE_LOCK = threading.Lock()


def get_store(data_dir: Path) -> Store:
    """One Store per data folder per process (it opens a connection per call, so sharing it is safe).

    Made under a lock, so that Flag and Save pressed at once on a new data folder make one Store, not two side by
    side (the second one's ``PRAGMA journal_mode=WAL`` failed with "database is locked" and the Save was lost; the
    store now waits for another opener itself, in this process or another: ``evaluation.storefile.prepare``)."""
    with _STORE_LOCK:
        return _store(data_dir)


@functools.cache
def _store(data_dir: Path) -> Store:
    return Store(data_dir)


def model_choices() -> list[str]:
    """Registered models whose weights are installed; any hub id or local folder may still be typed in."""
    names = [m.name for m in list_models() if m.present]
    default = default_model()
    return names if default in names else [default, *names]


def load_backend_or_error(model: str, backend: str) -> Backend:
    """The shared model for (model, backend), or a ``gr.Error`` that tells the tester what to do."""
    try:
        return get_backend(str(model or default_model()).strip(), backend or DEFAULT_BACKEND)
    except (UnknownModelError, BackendError) as exc:
        raise gr.Error(str(exc)) from exc
    except (OSError, RuntimeError, ValueError) as exc:  # weights that cannot be read, a hub that cannot be reached
        raise gr.Error(f"could not load model {model!r} on {backend}: {exc}") from exc


@dataclass(frozen=True)
class ModelPicker:
    model: gr.Dropdown
    backend: gr.Dropdown


def model_picker(page: gr.Blocks, prefix: str) -> ModelPicker:
    """Model and backend dropdowns that remember the tester's choice across pages and reloads."""
    saved = gr.BrowserState([default_model(), DEFAULT_BACKEND], storage_key=MODEL_CHOICE_KEY)
    with gr.Row(equal_height=True):
        model = gr.Dropdown(
            model_choices(),
            value=default_model(),
            label="Model",
            allow_custom_value=True,
            info="A registered model, a Hugging Face hub id or a local model folder",
            elem_id=f"{prefix}-model",
        )
        backend = gr.Dropdown(list(BACKENDS), value=DEFAULT_BACKEND, label="Backend", elem_id=f"{prefix}-backend")
    page.load(_restore_choice, saved, [model, backend], api_name=f"{prefix}_restore_model", show_progress="hidden")
    gr.on(
        [model.change, backend.change],
        lambda m, b: [m, b],
        [model, backend],
        saved,
        api_name=f"{prefix}_remember_model",
        show_progress="hidden",
    )
    return ModelPicker(model, backend)


def _restore_choice(saved: list[str] | None) -> tuple[str, str]:
    model, backend = (list(saved or []) + [default_model(), DEFAULT_BACKEND])[:2]
    return (model or default_model()), (backend if backend in BACKENDS else DEFAULT_BACKEND)


@dataclass(frozen=True)
class CaseForm:
    """What a tester fills in to save a test case: reference text and labels."""

    reference: gr.Textbox
    accent: gr.Dropdown
    noise: gr.Dropdown
    device: gr.Dropdown
    notes: gr.Textbox

    @property
    def inputs(self) -> list[gr.components.Component]:
        return [self.reference, self.accent, self.noise, self.device, self.notes]


def case_form(prefix: str, reference_label: str = "Reference text (what was really said)") -> CaseForm:
    reference = gr.Textbox(label=reference_label, lines=3, elem_id=f"{prefix}-reference")
    with gr.Row():
        accent = gr.Dropdown(ACCENTS, value="", label="Accent", allow_custom_value=True, elem_id=f"{prefix}-accent")
        noise = gr.Dropdown(
            NOISE_CONDITIONS, value="", label="Noise condition", allow_custom_value=True, elem_id=f"{prefix}-noise"
        )
        device = gr.Dropdown(DEVICES, value="", label="Device", allow_custom_value=True, elem_id=f"{prefix}-device")
    notes = gr.Textbox(label="Notes", lines=1, elem_id=f"{prefix}-notes")
    return CaseForm(reference, accent, noise, device, notes)


def labels_from(accent: str, noise: str, device: str) -> dict[str, str]:
    """The store drops empty values, so an unset dropdown adds no label."""
    return {"accent": accent or "", "noise": noise or "", "device": device or ""}


@dataclass(frozen=True)
class Heard:
    """What a page heard and transcribed, to be saved as a test case with the tester's ``case_form`` values."""

    audio: object  # a path or mono float32 samples at SAMPLE_RATE (what ``Store.add_case`` takes)
    transcript: str
    model: str
    backend: str
    origin: str  # the take's key (made once per take): saving it again updates its case (``Store.save_take``)


@dataclass(frozen=True)
class SavedCase:
    """What a save did: the case's id and the line for the page."""

    case_id: str
    message: str


def save_test_case(data_dir: Path, heard: Heard, reference, accent, noise, device, notes) -> SavedCase:
    """Store the take as a test case (the reference defaults to the transcript) and say where it is listed.

    A reference of spaces alone counts as none (it was stored as typed, and validation skips a case whose reference
    is empty).

    Saving the same take again (``heard.origin``) updates its case: a second press (a double click, or Save again
    after correcting the reference or a label) made a duplicate of the take. A case deleted since is saved anew.
    """
    saved = get_store(data_dir).save_take(
        "test_case",
        heard.audio,
        origin=heard.origin,
        transcript=heard.transcript,
        model=heard.model,
        backend=heard.backend,
        reference=(reference or "").strip() or heard.transcript,
        labels=labels_from(accent, noise, device),
        notes=notes,
    )
    case = saved.case
    if not saved.added:
        message = f"Updated test case `{case.id}` (this take was saved already): listed on the [Review](/review) page."
        message += kept_line(saved.kept)
    else:
        message = f"Saved test case `{case.id}` ({case.duration:.1f} s): it is listed on the [Review](/review) page."
    return SavedCase(case.id, message)


def kept_line(kept: Sequence[str], reference: str = "reference") -> str:
    """What a take saved again kept as someone changed it on Review (``SavedTake.kept``), for the page's message;
    "" when nothing. Saving the take again used to put the page's values over a reviewer's correction unsaid."""
    if not kept:
        return ""
    names = ", ".join(reference if k == "reference" else k.removeprefix("label ") for k in kept)
    return f" It keeps what was changed on Review since: {esc(names)}; change those there."


def without_paths(message: str, *paths: object) -> str:
    """A message for the page with server paths (Gradio's cache, the data folder) cut to their file names."""
    for path in sorted({str(p) for p in paths if p}, key=len, reverse=True):
        message = message.replace(path, Path(path).name)
    return message


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def confidence_band(probability: float) -> str:
    """The colour band a word is shown in; the thresholds are where tiny.en's errors concentrate."""
    if probability >= 0.8:
        return "high"
    if probability >= 0.5:
        return "medium"
    return "low"


CONFIDENCE_COLORS = {"high": "#bbf7d0", "medium": "#fde68a", "low": "#fecaca"}


def render_alignment(spans: Sequence[AlignedSpan]) -> str:
    """Reference against hypothesis, word by word: substitutions, deletions and insertions coloured."""
    if not spans:
        return "<p class='asrqa-muted'>Both texts are empty.</p>"
    parts = []
    for span in spans:
        ref, hyp = " ".join(span.reference), " ".join(span.hypothesis)
        if span.op == "equal":
            parts.append(f"<span class='asrqa-ok'>{esc(ref)}</span>")
        elif span.op == "substitute":
            parts.append(f"<span class='asrqa-sub' title='reference: {esc(ref)}'>{esc(ref)} → {esc(hyp)}</span>")
        elif span.op == "delete":
            parts.append(f"<span class='asrqa-del' title='missing from the hypothesis'>{esc(ref)}</span>")
        else:
            parts.append(f"<span class='asrqa-ins' title='not in the reference'>+{esc(hyp)}</span>")
    legend = (
        "<span class='asrqa-sub'>substituted</span> <span class='asrqa-del'>deleted</span> "
        "<span class='asrqa-ins'>inserted</span>"
    )
    return f"<div class='asrqa-diff'>{' '.join(parts)}</div><div class='asrqa-legend'>{legend}</div>"


def render_diff(reference: str, hypothesis: str) -> str:
    """The hypothesis's WER against the reference and the word diff, scored as validation scores them (its
    normalizer). Review's Save redraws it: the panel kept the diff it was opened with, so a corrected reference
    showed the old errors."""
    scored = score(reference, hypothesis)
    figure = "n/a" if not scored.ref_words else f"{scored.wer:.1%}"
    errors = f"{scored.errors} error{'s' if scored.errors != 1 else ''} / {scored.ref_words} words"
    return (
        f"<div class='asrqa-take-wer'><b>WER {figure}</b> <span class='asrqa-muted'>({errors} "
        f"against the reference)</span></div>{render_alignment(scored.alignment)}"
    )


def parse_extra_labels(text: str) -> dict[str, str]:
    """``key=value`` lines into labels; a line without ``=`` is a mistake the tester should see."""
    labels: dict[str, str] = {}
    for n, line in enumerate((text or "").splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise gr.Error(f"Other labels, line {n}: expected key=value, got {line.strip()!r}")
        labels[key.strip()] = value.strip()
    return labels


def player_audio(samples: np.ndarray) -> tuple[int, np.ndarray]:
    """``(rate, int16 samples)`` for a ``gr.Audio`` player, at the level the samples have.

    Given float samples, Gradio divides them by their peak (and logs a UserWarning each time), so a quiet take
    played back as loud as any other and Validate's clean and noisy clips each at full scale: a tester could not
    hear that a take was too quiet. The int16 conversion is made here, without that normalisation.
    """
    return SAMPLE_RATE, (np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0) * 32767).astype(np.int16)
