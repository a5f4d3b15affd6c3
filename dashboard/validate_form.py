"""The Validate page's form turned into runner options: dataset string, noise condition specs, one run per model.

Mistakes a tester can make in the form (an empty path, an SNR that is not a number, an unknown model) become a
``gr.Error`` with the runner's own message, at the UI edge.
"""

from __future__ import annotations

import dataclasses

import gradio as gr

from asr.backends import BackendError
from asr.models import UnknownModelError
from dashboard.roots import DatasetRoots, PathRefused
from evaluation.datasets import DatasetError
from evaluation.executors import ExecutorError
from evaluation.noise import NoiseError
from evaluation.realspeech import LANGUAGES
from evaluation.runner import RunError, RunOptions

USER_ERRORS = (DatasetError, RunError, NoiseError, UnknownModelError, BackendError, ExecutorError)
REAL_SPEECH_MIN_WORDS = 3  # the form's "at least N words" for the real-speech set, half of whose prompts are one
# word (letters, digits, "Added."): a small sample of it is then sentences; other sets default to any length


def default_min_words(kind: str) -> int:
    """The words-per-utterance floor the form proposes when ``kind`` is picked (the tester may change it)."""
    return REAL_SPEECH_MIN_WORDS if kind == "builtin-real" else 0


def english_only(model: str | None) -> bool:
    """Whisper's naming rule (``tiny.en``, ``openai/whisper-base.en``, ``distil-small.en``): an English-only model
    hears every language as English, so on the real-speech set only its English rows measure the model."""
    return str(model or "").strip().rstrip("/").endswith(".en")


def default_languages(model: str | None) -> str:
    """The real-speech languages the form proposes for ``model``: ``en`` for an English-only model (a sample of
    all five gave fr/ru rows at 100%+ WER that measured the language mix-up), all five for a multilingual one."""
    return "en" if english_only(model) else ",".join(LANGUAGES)


def is_language_list(text: str | None) -> bool:
    """Whether the languages box holds real-speech languages (``fr, it``), not a folder left from another set."""
    parts = [p.strip().lower() for p in (text or "").split(",")]
    return all(p in LANGUAGES for p in parts) and any(parts)


def follow_languages(kind: str, model: str | None, location: str | None, proposed: str) -> tuple[str, str]:
    """The languages box after the dataset or the model changed, and the page's proposal now in it.

    ``proposed`` is what the page last put in the box: a box that differs from it was typed by the tester (told
    apart by value, not by a typing event, which may arrive after the model's change). Real speech: the model's
    default (:func:`default_languages`) unless the tester typed languages. Another set: the box is emptied when
    it holds only the proposal made for real speech, kept when typed.
    """
    location = location or ""
    typed = location != proposed
    if kind == "builtin-real":
        if typed and is_language_list(location):
            return location, proposed
        default = default_languages(model)
        return default, default
    return (location, proposed) if typed else ("", "")


LOCATION_BOXES = {  # what the form's one text box means for each dataset kind (no box for the others)
    "builtin-real": ("Languages (en, or e.g. fr,it; all five: en,es,fr,it,ru)", "en"),
    "folder": ("Folder or manifest file (CSV, TSV, JSONL, Parquet)", "/data/my-set"),
    "hub": ("Hugging Face hub id (ID[:CONFIG[:SPLIT]])", "edinburghcstr/edacc"),
}


def location_box(kind: str, model: str | None, location: str | None, proposed: str) -> tuple[gr.Textbox, str]:
    """The text box for the dataset picked: its label says what to type (one label for folder, hub id and
    languages at once read as a riddle), hidden where nothing is typed; its value per :func:`follow_languages`."""
    value, proposed = follow_languages(kind, model, location, proposed)
    if kind not in LOCATION_BOXES:
        return gr.Textbox(value=value, visible=False), proposed
    label, placeholder = LOCATION_BOXES[kind]
    return gr.Textbox(value=value, label=label, placeholder=placeholder, visible=True), proposed


def dataset_spec(kind: str, text: str, roots: DatasetRoots | None = None) -> str:
    """The runner's dataset string for the source picked in the form (refused outside ``roots`` when given)."""
    spec = _dataset_spec(kind, text)
    if roots is None:
        return spec
    try:
        return roots.check_dataset(spec)
    except PathRefused as exc:
        raise gr.Error(str(exc)) from exc


def _dataset_spec(kind: str, text: str) -> str:
    text = (text or "").strip()
    if kind in ("builtin", "recorded", "probes"):
        return kind
    if kind == "builtin-real":  # the box may name languages: "en" or "fr,it"; all five is the whole set
        languages = text.replace(" ", "").lower()  # "EN" is en, as --language EN is
        return f"{kind}:{languages}" if text and set(languages.split(",")) != set(LANGUAGES) else kind
    if not text:
        raise gr.Error("Type the folder, manifest or hub id of the dataset.")
    if kind == "hub" and not text.startswith("hub:"):
        return f"hub:{text}"
    return text


def noise_specs(
    kinds: list[str],
    snrs: str,
    rt60s: str,
    noise_dir: str,
    roots: DatasetRoots | None = None,
    channels: list[str] | tuple[str, ...] = (),
) -> list[str]:
    """Noise condition specs from the checkboxes: every noise kind at every SNR, reverb at every RT60, each on
    every channel ticked ("none" is the noise alone; no channel ticked: none).

    A noise folder outside ``roots`` (when given) is refused before anything looks at it.
    """
    if roots is not None and (noise_dir or "").strip():
        try:
            roots.check_folder(noise_dir.strip(), "noise folder")
        except PathRefused as exc:
            raise gr.Error(str(exc)) from exc

    def numbers(text: str, what: str) -> list[str]:
        values = [v.strip() for v in (text or "").replace(";", ",").split(",") if v.strip()]
        for v in values:
            try:
                float(v)
            except ValueError:
                raise gr.Error(f"{what}: {v!r} is not a number") from None
        return values

    specs = ["clean"] if "clean" in kinds else []
    levels = numbers(snrs, "SNRs (dB)")
    for kind in ("white", "pink", "babble"):
        if kind in kinds:
            specs += [f"{kind}@{snr}" for snr in levels]
    if "reverb" in kinds:
        specs += [f"reverb@{rt}" for rt in numbers(rt60s, "RT60 (s)")]
    if (noise_dir or "").strip():
        specs += [f"file:{noise_dir.strip()}@{snr}" for snr in levels]
    lines = list(channels or ["none"])
    return [spec if line == "none" else f"{spec}+{line}" for line in lines for spec in specs]


def run_options(form: tuple, roots: DatasetRoots | None = None) -> list[RunOptions]:
    """One ``RunOptions`` per model from the page's form values (in the order of the page's ``form`` list)."""
    (
        kind,
        location,
        split,
        text_col,
        group_cols,
        speaker_col,
        kinds,
        snrs,
        rt60s,
        noise_dir,
        channels,
        limit,
        min_words,
        seed,
        model,
        backend,
        extra,
        executor,
        mode,
        stream_seconds,
    ) = form
    base = RunOptions(
        dataset=dataset_spec(kind, location, roots),
        noise=tuple(noise_specs(kinds, snrs, rt60s, noise_dir, roots, channels)),
        backend=backend,
        limit=int(limit) if limit and float(limit) >= 1 else None,  # 0 or empty: every utterance
        min_words=int(min_words or 0),
        text_column=text_col or None,
        group_columns=tuple(group_cols or ()),
        speaker_column=speaker_col or None,
        split=(split or "").strip() or None,
        seed=int(seed or 0),
        executor=(executor or "").strip() or "local",
        mode=mode or "offline",
        stream_seconds=float(stream_seconds) if stream_seconds and float(stream_seconds) > 0 else None,  # 0: each alone
        audio_allowed=roots.allows if roots is not None else None,  # a row naming a file outside them is skipped
    )
    models = list(dict.fromkeys([model, *(extra or [])]))
    try:
        return [dataclasses.replace(base, model=m).validate() for m in models]
    except USER_ERRORS as exc:
        raise gr.Error(str(exc)) from exc


def check_run_paths(roots, settings) -> None:
    """Refuse a stored run's dataset or noise folder outside the page's roots (re-making its audio would read them)."""
    roots.check_dataset(settings.dataset)
    for spec in settings.noise:  # not parsed: parsing looks at the folder, which would say whether it exists
        for part in str(spec).split("+"):
            if part.strip().startswith("file:"):
                roots.check_folder(part.strip()[5:].rsplit("@", 1)[0], "noise folder")
