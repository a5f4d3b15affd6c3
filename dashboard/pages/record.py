"""Record (`/record`): a prompted recording session that turns a tester's voice into test cases.

A script (built-in, pasted, or an uploaded CSV/TXT) and a speaker profile start a session in the store. Each
prompt is shown large with its place ("12 / 40"); the tester records it through the same streaming engine as
Live (``live.feed_chunk`` / ``live.finish_take``), sees the live transcript while speaking, and on stop the
take's WER against the prompt with the alignment coloured and the take checks (``evaluation.takes``). Accept
saves it as a test case and moves on; Re-record keeps the prompt; Skip moves on without a take.

The session's place lives in the store, and its id in the browser's local storage, so a reload or a server
restart comes back to the same prompt; the resume list reaches any open session from any browser.
Keyboard: R starts and stops recording, A accepts the take (when focus is not in a text box).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from asr.streaming import StreamOptions, StreamUpdate
from dashboard.config import DashboardConfig
from dashboard.pages.live import LiveTab, feed_chunk, finish_take, start_listening, stop_event, streaming_mic
from dashboard.record_layout import PAGE_JS, SAVED, script_choices, setup_panel
from dashboard.record_view import (
    SUMMARY_COLUMNS,
    render_checks,
    render_live,
    render_prompt,
    render_wer,
    restored_note,
    session_choice,
    summary_frame,
)
from dashboard.shared import AGAIN, get_store, load_backend_or_error, model_picker
from evaluation.prompts import ScriptError, builtin_script, parse_pasted, parse_script_file
from evaluation.recordstore import RecordSession, SessionNotFound, SpeakerProfile, StaleTake
from evaluation.runstore import StoreError
from evaluation.store import Store
from evaluation.takes import AssessedTake, assess_take

logger = logging.getLogger(__name__)

SESSION_KEY = "asrqa-record-session"  # local-storage key of the session this browser records
SESSION_SECRET = "asrqa-record-session-id"  # only a session id is kept there: nothing secret to protect
NO_SESSION = (
    "No session yet: choose a script and enter the speaker under **Script and speaker**, press **Start session**, "
    "then record."
)


@dataclass(frozen=True)
class PendingTake:
    """The take on screen, waiting for Accept or Re-record."""

    index: int  # the prompt it was recorded for
    audio: np.ndarray
    take: AssessedTake  # full-context transcript, score against the prompt, checks
    model: str
    backend: str


class RecordTab(LiveTab):
    """A tab's streaming state (as Live's) plus the session it records and the take waiting for a decision."""

    def __init__(self) -> None:
        super().__init__()
        self.session_id: str | None = None
        self.pending: PendingTake | None = None
        # the prompt the take under way was started for: a Skip meanwhile moves the session on, and the take,
        # scored at stop against the prompt then current, was kept for the next prompt
        self.recording_for: int | None = None
        self.deciding = threading.Lock()  # held by Accept, Re-record and Skip: a take started meanwhile waits

    def __deepcopy__(self, memo) -> RecordTab:
        return self


@dataclass(frozen=True)
class Outputs:
    """The page's components that every session change redraws, in handler output order."""

    prompt: gr.HTML
    live: gr.HTML
    wer: gr.HTML
    checks: gr.HTML
    summary: gr.Dataframe
    message: gr.Markdown
    saved_id: gr.BrowserState
    setup: gr.Accordion  # folded while a session runs, so the prompt is what the tester sees
    decide: gr.Row  # Accept, Re-record, Skip: shown only while a session has a prompt to decide on
    accept: gr.Button  # Accept and Re-record: shown only while a take waits for a decision
    rerecord: gr.Button

    def all(self) -> list:
        return [
            self.prompt,
            self.live,
            self.wer,
            self.checks,
            self.summary,
            self.message,
            self.saved_id,
            self.setup,
            self.decide,
            self.accept,
            self.rerecord,
        ]

    def take(self) -> list:
        """What a take's start and stop redraw: live text, WER, checks, then (stop) the message and the buttons."""
        return [self.live, self.wer, self.checks, self.message, self.accept, self.rerecord]


def build(page: gr.Blocks, config: DashboardConfig) -> None:
    store = get_store(config.data_dir)
    gr.Markdown(
        "## Record\nRead a script aloud, one prompt at a time: each take is scored against its prompt and, once "
        "accepted, saved as a test case with the speaker's profile. Shortcuts: **R** record / stop, **A** accept."
    )
    tab = gr.State(RecordTab, delete_callback=_close_tab)
    saved_id = gr.BrowserState("", storage_key=SESSION_KEY, secret=SESSION_SECRET)
    setup = setup_panel()
    picker = model_picker(page, "record")
    prompt = gr.HTML(render_prompt(None), elem_id="record-prompt")
    mic = streaming_mic("record-mic")
    live = gr.HTML(render_live(StreamUpdate()), elem_id="record-live")
    with gr.Row():
        wer = gr.HTML(elem_id="record-wer")
        checks = gr.HTML(elem_id="record-checks")
    with gr.Row(visible=False) as decide:  # before a session they could only answer "start a session first"
        # before a take they could only answer "record the prompt first": shown once a take waits for a decision
        accept = gr.Button("Accept (A)", variant="primary", elem_id="record-accept", visible=False)
        rerecord = gr.Button("Re-record", elem_id="record-rerecord", visible=False)
        skip = gr.Button("Skip", elem_id="record-skip")
    message = gr.Markdown(elem_id="record-message")
    summary = gr.Dataframe(
        headers=SUMMARY_COLUMNS, interactive=False, label="This session: WER per prompt type", elem_id="record-summary"
    )
    out = Outputs(prompt, live, wer, checks, summary, message, saved_id, setup.panel, decide, accept, rerecord)

    page.load(
        lambda t, sid: _restore(store, t, sid),
        [tab, saved_id],
        [*out.all(), setup.resume, setup.builtin, tab],  # a load event keeps its state only when it is an output
        api_name="record_restore",
    )
    page.load(None, None, None, js=PAGE_JS, api_name="record_page_js")
    setup.start.click(
        lambda t, *v: _start(store, t, *v),
        [tab, *setup.inputs, picker.model, picker.backend],
        out.all(),
        api_name="record_start",
        show_progress_on=[out.prompt],  # one status badge (an error: one), not one over each of the outputs
    )
    setup.resume_button.click(
        lambda t, sid: _resume(store, t, sid),
        [tab, setup.resume],
        out.all(),
        api_name="record_resume",
        show_progress_on=[out.prompt],
        trigger_mode=AGAIN,  # another session picked and resumed while the last resume ran: that one
    )
    _wire_mic(mic, tab, picker, config, store, out)
    for button, action in ((accept, "accept"), (rerecord, "rerecord"), (skip, "skip")):
        button.click(
            lambda t, action=action: _decide(store, t, action),
            tab,
            out.all(),
            api_name=f"record_{action}",
            show_progress_on=[out.prompt],
            concurrency_limit=None,  # begun on the press, before a take started after it (see _on_start)
        )


def _wire_mic(mic: gr.Audio, tab, picker, config: DashboardConfig, store: Store, out: Outputs) -> None:
    options = StreamOptions(max_session_seconds=config.live_limit_s)
    mic.start_recording(
        lambda t: _on_start(store, t), tab, out.take(), api_name="record_mic_start", concurrency_limit=None
    )
    mic.stream(
        lambda chunk, t, m, b: _on_chunk(chunk, t, m, b, options),
        [mic, tab, picker.model, picker.backend],
        out.live,
        api_name="record_mic_stream",
        stream_every=config.stream_every,
        time_limit=int(config.live_limit_s) + 60,
        concurrency_limit=config.live_sessions,
        concurrency_id="live_stream",  # Record and Live share the limit on live streams
        show_progress="hidden",
    )
    stop_event(mic, lambda t: _on_stop(store, t), tab, out.take(), "record_mic_stop", config)


def _close_tab(tab) -> None:
    if isinstance(tab, RecordTab):
        tab.close()


def _prompts_from(store: Store, choice: str, pasted: str, upload, name: str):
    """(script name, source, prompts) from the form: an upload, else pasted lines, else the chosen script."""
    if upload:
        path = Path(upload)
        label = (name or "").strip() or path.name
        return label, "upload", parse_script_file(path.read_bytes(), path.name), None
    if (pasted or "").strip():
        return (name or "").strip() or "pasted prompts", "pasted", parse_pasted(pasted), None
    if (choice or "").startswith(SAVED):
        return None, None, None, choice[len(SAVED) :]
    builtin = (choice or "builtin:harvard").removeprefix("builtin:")
    return builtin, "builtin", builtin_script(builtin), None


def _start(
    store: Store,
    tab: RecordTab,
    choice,
    pasted,
    upload,
    name,
    speaker,
    accent,
    gender,
    age,
    device,
    env,
    model,
    backend,
):
    profile = SpeakerProfile(speaker or "", accent or "", gender or "", age or "", device or "", env or "")
    try:
        label, source, prompts, script_id = _prompts_from(store, choice, pasted, upload, name)
        profile = profile.validate()
        if script_id is None:
            script_id = _reuse_or_save(store, label, source, prompts)
        session = store.recordings.start_session(script_id, profile, model=model or "", backend=backend or "")
    except (ScriptError, StoreError, SessionNotFound) as exc:
        raise gr.Error(str(exc)) from exc
    return _show(store, tab, session, f"Session `{session.id}` started: {session.total} prompts.")


def _reuse_or_save(store: Store, label: str, source: str, prompts) -> str:
    """A built-in script is saved once and reused, so its sessions share one script row."""
    if source == "builtin":
        return store.recordings.builtin_script(label, prompts).id
    return store.recordings.save_script(label, prompts, source).id


def _resume(store: Store, tab: RecordTab, session_id: str):
    if not session_id:
        raise gr.Error("Pick a session in the list to resume.")
    try:
        session = store.recordings.get_session(session_id)
    except SessionNotFound as exc:
        raise gr.Error(str(exc)) from exc
    return _show(store, tab, session, f"Resumed session `{session.id}`.")


def _restore(store: Store, tab: RecordTab, saved_id: str):
    """On page load: the session this browser was recording (if it still exists), and the lists."""
    session = None
    if saved_id:
        try:
            session = store.recordings.get_session(saved_id)
        except SessionNotFound:
            session = None
    resume = gr.Dropdown(choices=[session_choice(s) for s in store.recordings.list_sessions(open_only=True)])
    scripts = gr.Dropdown(choices=script_choices(store.recordings.list_scripts()))
    if session is None:
        return (*_blank(), resume, scripts, tab)
    return (*_show(store, tab, session, restored_note(session)), resume, scripts, tab)


def _blank():
    return (
        render_prompt(None),
        gr.skip(),
        "",
        "",
        summary_frame([]),
        "",
        "",
        gr.Accordion(open=True),
        gr.Row(visible=False),
        *_take_buttons(False),
    )


def _take_buttons(shown: bool) -> tuple[gr.Button, gr.Button]:
    """Accept and Re-record, shown while a take waits for a decision (and only then: else they had nothing to do)."""
    return gr.Button(visible=shown), gr.Button(visible=shown)


def _show(store: Store, tab: RecordTab, session: RecordSession, note: str):
    with tab.lock:
        tab.session_id = session.id
        tab.pending = None
    return (
        render_prompt(session),
        render_live(StreamUpdate()),
        "",
        "",
        summary_frame(store.recordings.summary(session.id)),
        note,
        session.id,
        gr.Accordion(open=session.done),
        gr.Row(visible=not session.done),  # a finished session has no prompt left to accept or skip
        *_take_buttons(False),  # the take was decided on (or there is none yet): the next one brings them back
    )


def _on_start(store: Store, tab: RecordTab):
    if tab.session_id is None:
        raise gr.Error("Start or resume a session first: the take needs a prompt.")
    start_listening(tab)
    # A then R: the take waited for no decision, and the take pending was dropped before Accept read it ("record
    # the prompt first"), or it was accepted and the new take, started for its prompt, was discarded as "skipped"
    with tab.deciding:
        position = store.recordings.get_session(tab.session_id).position
        with tab.lock:
            tab.pending, tab.recording_for = None, position
    return render_live(StreamUpdate()), "", "", gr.skip(), *_take_buttons(False)  # the last note stays


def _on_chunk(chunk, tab: RecordTab, model: str, backend: str, options: StreamOptions):
    if tab.session_id is None:
        return gr.skip()
    fed = feed_chunk(tab, chunk, model, backend, options)
    return gr.skip() if fed is None else render_live(fed[0])


def _on_stop(store: Store, tab: RecordTab):
    """Finish the take: the final transcript, its WER against the prompt, and the checks on its audio."""
    final = finish_take(tab)
    with tab.lock:
        started_for, tab.recording_for = tab.recording_for, None
    if tab.session_id is None:  # it said "Nothing was heard: record again", which recording again did not mend
        return gr.skip(), "", "", NO_SESSION, *_take_buttons(False)
    if final is None or tab.take is None:
        return gr.skip(), "", "", "Nothing was heard: record again.", *_take_buttons(False)
    session = store.recordings.get_session(tab.session_id)
    if session.done:
        return render_live(final), "", "", "This session is finished.", *_take_buttons(False)
    if started_for is not None and started_for != session.position:  # skipped (here or in another tab) meanwhile
        note = (
            f"Take discarded: it was recorded for prompt {started_for + 1}, which was skipped while recording. "
            f"Record prompt {session.position + 1} now."
        )
        return render_live(final), "", "", note, *_take_buttons(False)
    backend = load_backend_or_error(tab.take.model, tab.take.backend)
    take = assess_take(tab.take.audio, session.prompt.text, backend)
    with tab.lock:
        tab.pending = PendingTake(session.position, tab.take.audio, take, tab.take.model, tab.take.backend)
    hint = "Accept it (A), re-record it, or skip the prompt."
    return render_live(final), render_wer(take), render_checks(take.report), hint, *_take_buttons(True)


def _decide(store: Store, tab: RecordTab, action: str):
    """Accept, re-record or skip the prompt on screen, then show where the session is now."""
    if tab.session_id is None:
        raise gr.Error("Start or resume a session first.")
    with tab.deciding:
        with tab.lock:
            pending, session_id = tab.pending, tab.session_id
        session = store.recordings.get_session(session_id)
        if action != "skip" and pending is None:
            raise gr.Error("Record the prompt first (press R or the microphone's Record button), then stop.")
        index = pending.index if pending is not None and action != "skip" else session.position
        try:
            note = _apply(store, session, index, action, pending, tab.recording_for is not None)
        except StaleTake as exc:
            note = f"{exc}. Showing where the session is now."
        return _show(store, tab, store.recordings.get_session(session_id), note)


def _apply(
    store: Store, session: RecordSession, index: int, action: str, pending: PendingTake | None, recording: bool
) -> str:
    if action == "skip":
        store.recordings.skip(session.id, index)
        return f"Skipped prompt {index + 1}." + (" The take under way will be discarded at stop." if recording else "")
    take = pending.take
    fields = {
        "transcript": take.transcript,
        "errors": take.errors,
        "ref_words": take.ref_words,
        "checks": take.report.to_json(),
    }
    if action == "rerecord":
        store.recordings.rerecord(session.id, index, **fields)
        return f"Prompt {index + 1}: take discarded; record it again."
    _, case = store.recordings.accept(
        session.id, index, pending.audio, model=pending.model, backend=pending.backend, **fields
    )
    return f"Prompt {index + 1} saved as test case `{case.id}` ([Review](/review))."
