"""The Record page's setup panel (script and speaker) and the script that runs when the page loads.

``dashboard.pages.record`` wires these to its handlers; ``SetupPanel.inputs`` is the order ``_start`` reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from dashboard.shared import ACCENTS, DEVICES, NOISE_CONDITIONS
from evaluation.prompts import builtin_names

GENDERS = ["", "female", "male", "non-binary", "prefer not to say"]
AGE_BANDS = ["", "under 18", "18-29", "30-44", "45-59", "60-74", "75+"]
SAVED = "saved:"  # prefix of a saved script's value in the script list
# Runs once when the page loads. (1) A take becomes a dataset row, so it is recorded as the microphone gives it:
# the browser's echo cancellation, noise suppression and automatic gain (on by default) would rescale and filter
# every take differently, and the take checks would measure the browser rather than the microphone and the room.
# (2) The keyboard shortcuts.
PAGE_JS = """() => {
  const media = navigator.mediaDevices;
  if (media && !media.asrqaRaw) {
    const open = media.getUserMedia.bind(media);
    media.getUserMedia = (c) => {
      if (c && c.audio) {
        const audio = typeof c.audio === 'object' ? c.audio : {};
        c = {...c, audio: {...audio, echoCancellation: false, noiseSuppression: false, autoGainControl: false}};
      }
      return open(c);
    };
    media.asrqaRaw = true;
  }
  if (window.asrqaRecordKeys) return;
  window.asrqaRecordKeys = true;
  document.addEventListener('keydown', (e) => {
    const t = e.target;
    if (e.ctrlKey || e.metaKey || e.altKey || (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName)))) return;
    const key = e.key.toLowerCase();
    const click = (sel, text) => {
      const shown = (x) => x.offsetParent !== null;  // a hidden button (no session yet) is not pressed
      const b = [...document.querySelectorAll(sel)].find((x) => shown(x) && (!text || x.innerText.trim().startsWith(text)));
      if (b) { b.click(); e.preventDefault(); }
    };
    if (key === 'r') {
      const stop = [...document.querySelectorAll('#record-mic button')].find((x) => x.innerText.trim().startsWith('Stop'));
      stop ? stop.click() : click('#record-mic button', 'Record');
    } else if (key === 'a') click('#record-accept');
  });
}"""


@dataclass(frozen=True)
class SetupPanel:
    panel: gr.Accordion
    builtin: gr.Dropdown
    script: gr.Textbox
    upload: gr.File
    name: gr.Textbox
    speaker: gr.Textbox
    accent: gr.Dropdown
    gender: gr.Dropdown
    age: gr.Dropdown
    device: gr.Dropdown
    environment: gr.Dropdown
    start: gr.Button
    resume: gr.Dropdown
    resume_button: gr.Button

    @property
    def inputs(self) -> list:
        return [
            self.builtin,
            self.script,
            self.upload,
            self.name,
            self.speaker,
            self.accent,
            self.gender,
            self.age,
            self.device,
            self.environment,
        ]


def setup_panel() -> SetupPanel:
    with gr.Accordion("Script and speaker", open=True, elem_id="record-setup") as panel:
        with gr.Row():
            builtin = gr.Dropdown(
                script_choices([]), value="builtin:harvard", label="Script", elem_id="record-builtin", scale=2
            )
            name = gr.Textbox(label="Name for a pasted or uploaded script", elem_id="record-script-name", scale=2)
            upload = gr.File(
                label="or upload CSV / TXT",  # one line: wrapped in two, it covered the top of the drop zone
                file_types=[".csv", ".txt"],
                type="filepath",
                elem_id="record-upload",
                scale=1,
                min_width=200,  # its label on one line: at 800 px it wrapped in two and covered the icon
                height=140,  # Gradio's default drop zone was twice the row's text boxes: a blank band beside them
            )
        script = gr.Textbox(
            label="or paste prompts, one a line (used instead of the script above when filled in)",
            lines=3,
            elem_id="record-script",
        )
        with gr.Row():
            speaker = gr.Textbox(
                label="Speaker id (an alias; required)", placeholder="tester-07", elem_id="record-speaker"
            )
            accent = gr.Dropdown(
                ACCENTS, value="", label="Accent or L1 (required)", allow_custom_value=True, elem_id="record-accent"
            )
            gender = gr.Dropdown(GENDERS, value="", label="Gender (optional)", allow_custom_value=True)
            age = gr.Dropdown(AGE_BANDS, value="", label="Age band (optional)")
            device = gr.Dropdown(DEVICES, value="", label="Device", allow_custom_value=True, elem_id="record-device")
            environment = gr.Dropdown(
                NOISE_CONDITIONS, value="", label="Environment", allow_custom_value=True, elem_id="record-environment"
            )
        start = gr.Button("Start session", variant="primary", elem_id="record-start")
        with gr.Row():
            resume = gr.Dropdown([], label="or resume an open session", elem_id="record-resume", scale=4)
            resume_button = gr.Button("Resume", elem_id="record-resume-button", scale=1)
    return SetupPanel(
        panel,
        builtin,
        script,
        upload,
        name,
        speaker,
        accent,
        gender,
        age,
        device,
        environment,
        start,
        resume,
        resume_button,
    )


def script_choices(saved) -> list[tuple[str, str]]:
    builtins = [(f"built-in: {n}", f"builtin:{n}") for n in builtin_names()]
    return builtins + [(f"saved: {s.name} ({len(s.prompts)})", f"{SAVED}{s.id}") for s in saved]
