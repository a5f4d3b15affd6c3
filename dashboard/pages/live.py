"""Live (`/`): microphone streaming through ``asr.streaming``, committed text black, tentative tail grey.

How it copes with Gradio's streaming (a ``gr.Audio(streaming=True)`` stream event calls its handler once per
chunk, and a chunk waits while the handler is busy):
- the stream handler only feeds the chunk to the session and reads its latest update, both instant; the shared
  scheduler's worker transcribes. So the handler is never busy when the next chunk comes, and nothing is lost;
- ``stop_recording`` carries only the last chunk, so the session keeps the whole recording itself, and the stop
  handler finishes the session (commits the tail) and keeps the recording for saving;
- the stream event has ``concurrency_limit`` = ``--live-sessions``, so several testers stream at once;
- the session stops taking audio after ``--live-limit`` seconds (default one hour), not after 30 s.
"""

from __future__ import annotations

import logging
import threading
import uuid
from dataclasses import dataclass, field

import gradio as gr
import numpy as np

from asr.audio import AudioError
from asr.streaming import StreamingError, StreamingSession, StreamOptions, StreamUpdate
from dashboard.config import DashboardConfig
from dashboard.shared import (
    AGAIN,
    Heard,
    case_form,
    esc,
    load_backend_or_error,
    model_picker,
    player_audio,
    save_test_case,
)

logger = logging.getLogger(__name__)

# before the first recording (it read "live · update 0.00 s · lag 0.0 s · ..." as if a session ran)
READY = "<span class='asrqa-readout' id='live-readout-text'>ready: press Record and speak</span>"
FINISH_TIMEOUT_S = 120.0  # longest wait for the worker to decode the tail when the tester stops


@dataclass(frozen=True)
class LiveTake:
    """A finished recording as the tester saw it, ready to be saved as a test case."""

    audio: np.ndarray  # mono float32 at SAMPLE_RATE
    transcript: str
    model: str
    backend: str
    origin: str = field(default_factory=lambda: uuid.uuid4().hex)  # saving it again updates its case (the store
    # finds it by this key)


class LiveTab:
    """One browser tab's live state: the running session, whether recording is on, and the last take.

    Handlers of one tab run on different threads (stream, start, stop), so every change is made under a lock.
    Gradio deep-copies a state's initial value; a fresh tab is returned as is.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.session: StreamingSession | None = None
        self.model = ""
        self.backend = ""
        self.listening = True  # False between a stop and the next start: stray chunks are ignored
        self.take: LiveTake | None = None

    def __deepcopy__(self, memo) -> LiveTab:
        return self

    def close(self) -> None:
        with self.lock:
            session, self.session = self.session, None
        if session is not None:
            session.close()


def build(page: gr.Blocks, config: DashboardConfig) -> None:
    minutes = config.live_limit_s / 60
    gr.Markdown(
        "## Live\nPress record and speak: **committed** text is final, the *grey tail* may still change. "
        f"A session runs up to {minutes:g} minutes; stop it to save what was said as a test case."
    )
    picker = model_picker(page, "live")
    mic = streaming_mic("live-mic")
    view = gr.HTML(render_view(StreamUpdate()), elem_id="live-view")
    readout = gr.HTML(READY, elem_id="live-readout")
    tab = gr.State(LiveTab, delete_callback=_close_tab)
    # shown once there is a recording to save (open before it, it offered an empty player and a Save that
    # could only fail); it stays while the next recording runs, so the last take can still be saved
    with gr.Accordion("Save as test case", open=True, visible=False, elem_id="live-save-panel") as save_panel:
        playback = gr.Audio(type="numpy", interactive=False, label="Recording", elem_id="live-recording")
        form = case_form("live")
        save = gr.Button("Save as test case", elem_id="live-save")
    saved = gr.Markdown(elem_id="live-saved")

    options = StreamOptions(max_session_seconds=config.live_limit_s)
    mic.start_recording(
        _on_start, tab, [view, readout], api_name="live_start", show_progress="hidden", concurrency_limit=None
    )
    mic.stream(
        lambda chunk, t, m, b: _on_chunk(chunk, t, m, b, options, config),
        [mic, tab, picker.model, picker.backend],
        [view, readout],
        api_name="live_stream",
        stream_every=config.stream_every,
        time_limit=int(config.live_limit_s) + 60,  # counts handler time only; the session enforces the limit
        concurrency_limit=config.live_sessions,
        concurrency_id="live_stream",
        show_progress="hidden",
    )
    outputs = [view, readout, playback, form.reference, save_panel, saved]
    stop_event(mic, lambda t: _on_stop(t, config), tab, outputs, "live_stop", config)
    save.click(
        lambda t, *v: _save(config, t, *v),
        [tab, *form.inputs],
        saved,
        api_name="live_save_case",
        # Save pressed again while the last save was still writing (a long take) was dropped, with the reference
        # or labels corrected in between: it now runs after it, and updates the same case
        trigger_mode=AGAIN,
    )


def streaming_mic(elem_id: str) -> gr.Audio:
    """The microphone that streams to ``feed_chunk`` (Live and Record).

    It draws no waveform while recording: headless Chromium spent 16-17 CPU seconds drawing the page over an
    18.5 s stream with the waveform and 6-7 s without it, on the 2 cores the model decoding the same stream
    needs (4 interleaved runs each). The first commit came 3.6-8.5 s after the start with it, 2.5-2.7 s without
    it; the live text is what the tester watches.
    """
    return gr.Audio(
        sources=["microphone"],
        streaming=True,
        type="numpy",
        label="Microphone",
        elem_id=elem_id,
        waveform_options=gr.WaveformOptions(show_recording_waveform=False),
    )


def stop_event(mic: gr.Audio, fn, tab, outputs: list, api_name: str, config: DashboardConfig) -> None:
    """The microphone's stop (Live and Record; ``--live-sessions`` stops finish at once). A Stop pressed while the
    tab's last take was still being finished was dropped by Gradio's default trigger mode: that recording was never
    finished, nor offered for saving. It now runs once the last stop ends."""
    limit = config.live_sessions
    mic.stop_recording(
        fn, tab, outputs, api_name=api_name, concurrency_limit=limit, concurrency_id="live_stop", trigger_mode=AGAIN
    )


def _close_tab(tab: LiveTab | None) -> None:
    if isinstance(tab, LiveTab):
        tab.close()


def _on_start(tab: LiveTab) -> tuple[str, str]:
    start_listening(tab)
    return render_view(StreamUpdate()), "<span class='asrqa-readout'>listening…</span>"


def start_listening(tab: LiveTab) -> None:
    with tab.lock:
        tab.listening = True


def _on_chunk(chunk, tab: LiveTab, model: str, backend: str, options: StreamOptions, config: DashboardConfig):
    """Hand the chunk to the session and show its latest state; never waits for the model."""
    fed = feed_chunk(tab, chunk, model, backend, options)
    if fed is None:
        return gr.skip(), gr.skip()
    update, taken = fed
    full = not taken and update.audio_seconds >= config.live_limit_s - 0.01
    return render_view(update), render_readout(update, config, limit_reached=full)


def feed_chunk(
    tab: LiveTab, chunk, model: str, backend: str, options: StreamOptions
) -> tuple[StreamUpdate, bool] | None:
    """Feed one microphone chunk to the tab's session (created on the first chunk): the update, and whether
    the chunk was taken (False once the session's limit is reached). None for a chunk that arrives after stop.

    Shared by Live and Record, so both stream exactly the same way.
    """
    if chunk is None:
        return None
    with tab.lock:
        if not tab.listening:
            return None
        if tab.session is None:
            load_backend_or_error(model, backend)  # a clear message for a bad model, and the model loaded once
            tab.session = StreamingSession(model=model, backend=backend, options=options)
            tab.model, tab.backend = model, backend
        session = tab.session
    try:
        taken = session.feed(chunk)
    except AudioError as exc:
        raise gr.Error(str(exc)) from exc
    return session.update(), taken


def _on_stop(tab: LiveTab, config: DashboardConfig):
    """Finish the session (commit the tail), keep the whole recording for saving (the save panel shown, open),
    and free the session. Nothing heard: the last take, if any, stays on screen and saveable."""
    final = finish_take(tab)
    if final is None:
        nothing = "<span class='asrqa-readout'>Nothing was heard.</span>"
        return gr.skip(), nothing, gr.skip(), gr.skip(), gr.skip(), gr.skip()
    recording = player_audio(tab.take.audio)
    panel = gr.Accordion(visible=True, open=True)
    # the new take is not saved yet: "Saved test case …" of the last one, left under it, read as if it were
    return render_view(final), render_readout(final, config), recording, final.committed, panel, ""


def finish_take(tab: LiveTab) -> StreamUpdate | None:
    """Stop listening, commit the tail and keep the recording as ``tab.take``; None when nothing was heard."""
    with tab.lock:
        tab.listening = False
        session, tab.session = tab.session, None
    if session is None:
        return None
    try:
        final = session.finish(timeout=FINISH_TIMEOUT_S)
        audio = session.recording()
    except (StreamingError, TimeoutError) as exc:
        raise gr.Error(f"The live transcript could not be finished: {exc}") from exc
    finally:
        session.close()
    with tab.lock:
        tab.take = LiveTake(audio, final.committed, tab.model, tab.backend)
    return final


def _save(config: DashboardConfig, tab: LiveTab, reference, accent, noise, device, notes) -> str:
    take = tab.take if isinstance(tab, LiveTab) else None
    if take is None or take.audio.size == 0:
        raise gr.Error("Record something and stop the recording first; then save it.")
    heard = Heard(take.audio, take.transcript, take.model, take.backend, take.origin)
    return save_test_case(config.data_dir, heard, reference, accent, noise, device, notes).message


def render_view(update: StreamUpdate) -> str:
    committed = esc(update.committed)
    tentative = esc(update.tentative)
    return (
        f"<div class='asrqa-live'><span id='live-committed'>{committed}</span> "
        f"<span id='live-tentative'>{tentative}</span></div>"
    )


def render_readout(update: StreamUpdate, config: DashboardConfig, limit_reached: bool = False) -> str:
    state = "finished" if update.finished else "live"
    text = (
        f"{state} · update {update.update_seconds:.2f} s · lag {update.lag_seconds:.1f} s · "
        f"heard {update.audio_seconds:.1f} s · transcribed {update.processed_seconds:.1f} s · "
        f"limit {config.live_limit_s / 60:g} min"
    )
    if limit_reached:
        text += " · <b>limit reached: stop the recording to keep it</b>"
    return f"<span class='asrqa-readout' id='live-readout-text'>{text}</span>"
