"""Full-context transcription conditions each window on the text of the window before it (Whisper's
``condition_on_previous_text``), in runs that keep batches full, on real speech (the real-speech set's joined dev
file, Debian's Asterisk prompts) and the real tiny.en."""

from __future__ import annotations

import json

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE, load_audio
from asr.results import DecodeOptions, Segment
from asr.transcribe import DecodedWindow, condition_prompt, transcribe, transcribe_many
from asr.vad import group_spans, speech_spans
from evaluation.realspeech import real_dir
from tests.conftest import check_invariants
from tests.test_real_speech import JOINED, VOLUME_MENU, _joined

CLIP = (0.0, 80.0)  # the joined dev file's first 80 s: three windows of speech
CONDITIONED = DecodeOptions(condition_words=15)  # conditioning is off by default (it did not hold on held-out speech)


def _clip(start: float, end: float):
    path = real_dir() / "long" / "en-dev-joined.wav"
    if not path.exists():
        pytest.skip(f"the real-speech long files are not built ({path}; run: python -m evaluation make-real)")
    return load_audio(path)[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]


def _window(text: str, *, retried: bool = False, split: bool = False) -> DecodedWindow:
    return DecodedWindow([Segment(0.0, 2.0, text)] if text else [], "en", retried, split)


def test_the_prompt_is_the_last_words_of_a_cleanly_decoded_window():
    options = DecodeOptions(condition_words=3)
    assert condition_prompt(_window("Press star to cancel this message."), options) == "cancel this message."
    assert condition_prompt(_window("Goodbye!"), options) == "Goodbye!"
    assert condition_prompt(_window("Goodbye!"), DecodeOptions(condition_words=0)) is None
    assert condition_prompt(_window(""), options) is None
    # a window the fallback decoded again, or one decoded in halves, leads the next one nowhere
    assert condition_prompt(_window("Press star to cancel.", retried=True), options) is None
    assert condition_prompt(_window("Press star to cancel.", split=True), options) is None
    # nor one whose text repeats itself (Whisper's compression test, whatever its pace): a genuine repeat, as the
    # held-out volume menu says it, leads the next window into one more repeat or one fewer
    menu = " ".join(
        f"to {w} your speaking volume to other participants." for w in ("decrease",) * 2 + ("increase",) * 2
    )
    assert condition_prompt(_window(menu), options) is None


# Second windows that say each of two sentences twice, after the same 28 s window of distinct dev prompts, with a
# phrase of theirs: tried in order for one whose decode, prompted with the end of the first window, comes out
# repeating itself at a speaking pace (not a loop the fallback would retry) on this CPU, which depends on its math
# libraries. The held-out volume menu did on the Intel machines (CTranslate2 with MKL); on the AMD EPYC one (DNNL)
# its prompted decode lost a repeat instead (compression 2.28, under the 2.4 the rule reads), while the password menu
# (dev prompts) gained one (3.6, 14 characters a second), and the greeting menu gained five (6.3, 24 a second: the
# pipeline's fallback retried that one first)
REPEATING_WINDOWS = (
    (VOLUME_MENU, "speaking volume"),
    (("en/vm-newpassword",) * 2 + ("en/vm-reenterpassword",) * 2, "re-enter your password"),
    (("en/vm-rec-busy",) * 2 + ("en/vm-rec-name",) * 2, "say your name"),
)


def test_a_prompted_window_that_repeats_itself_is_decoded_again_without_its_prompt(fw_backend):
    """Distinct dev prompts (28 s, one window), then a window whose speech says each sentence twice (the first of
    :data:`REPEATING_WINDOWS` that, prompted with the end of the first window, comes out repeating itself here at a
    pace the fallback keeps): it is decoded again unprompted and the transcript is the unconditioned one (held-out
    prompts joined: 98 -> 64 errors with this rule)."""
    from asr.fallback import needs_retry, repeats_itself
    from asr.transcribe import _window_spans
    from asr.vad import VadOptions, make_window

    first = JOINED + ("en/feature-not-avail-line", "en/privacy-unident", "en/tt-weasels", "en/pm-invalid-option")
    tried = []
    for second, phrase in REPEATING_WINDOWS:  # noqa: B007 (the phrase of the case chosen is read after)
        audio = np.concatenate([_joined(first)[0], _joined(second)[0]])
        windows = [make_window(audio, w) for w in _window_spans([audio], CONDITIONED, VadOptions())[0]]
        assert len(windows) == 2
        one = fw_backend.transcribe_windows([windows[0].audio], CONDITIONED)[0]
        prompt = condition_prompt(_window(one.text), CONDITIONED)
        assert prompt and "phone system" in prompt.lower()  # the end of the first window (en/tt-weasels)
        prompted = fw_backend.transcribe_windows([windows[1].audio], CONDITIONED.replace(initial_prompt=prompt))[0]
        tried.append(f"{second[0]}...: {prompted.text!r}")
        seconds = windows[1].audio.size / SAMPLE_RATE
        if repeats_itself(prompted.text, CONDITIONED) and not needs_retry(prompted, CONDITIONED, seconds):
            break  # the premise: the prompt led it into a repeat the fallback keeps
    else:
        pytest.fail("no window of REPEATING_WINDOWS repeats itself prompted on this CPU: add one\n" + "\n".join(tried))
    conditioned = transcribe(audio, backend=fw_backend, options=CONDITIONED)
    plain = transcribe(audio, backend=fw_backend)
    assert conditioned.windows_conditioned == 0 and conditioned.windows_retried == 0, tried[-1]
    assert conditioned.text == plain.text and phrase in plain.text.lower(), (tried[-1], conditioned.text, plain.text)


def test_each_window_after_the_first_is_prompted_and_the_options_say_so(fw_backend):
    clip = _clip(*CLIP)
    result = transcribe(clip, backend=fw_backend, options=CONDITIONED)
    assert len(group_spans(speech_spans(clip))) == 3
    assert result.windows_conditioned == 2, result.text
    record = result.to_dict()
    assert record["options"]["condition_words"] == 15 and record["options"]["condition_run"] == 8
    assert record["windows_conditioned"] == 2
    check_invariants(result)
    default = transcribe(clip, backend=fw_backend)
    assert default.windows_conditioned == 0 and default.to_dict()["options"]["condition_words"] == 0
    runs = transcribe(clip, backend=fw_backend, options=CONDITIONED.replace(condition_run=2))
    assert runs.windows_conditioned == 1  # windows 1-2 are one run, window 3 starts the next


def test_a_window_after_one_that_needed_the_fallback_is_not_prompted(fw_backend):
    clip = _clip(*CLIP)
    # every window is "too unlikely" at this threshold, so each is retried and prompts nothing
    strict = CONDITIONED.replace(logprob_threshold=-0.01, fallback_temperatures=(0.2,), word_timestamps=False)
    result = transcribe(clip, backend=fw_backend, options=strict)
    assert result.windows_retried == 3 and result.windows_conditioned == 0


def test_conditioned_text_is_the_same_alone_in_a_batch_and_at_any_batch_size(fw_backend):
    clip = _clip(*CLIP)
    other = _clip(200.0, 240.0)
    alone = transcribe(clip, backend=fw_backend, options=CONDITIONED).to_dict()
    batched = transcribe_many([other, clip], backend=fw_backend, options=CONDITIONED)[1].to_dict()
    small = transcribe(clip, backend=fw_backend, options=CONDITIONED.replace(batch_size=1)).to_dict()
    for record in (batched, small):
        assert json.dumps(record["segments"]) == json.dumps(alone["segments"])
        assert record["text"] == alone["text"] and record["words"] == alone["words"]
