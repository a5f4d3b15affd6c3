"""Recording scripts and take checks: parsing rules, built-in sets, and the checks on made signals."""

from __future__ import annotations

import math

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE, load_audio
from asr.vad import SpeechSpan
from evaluation.prompts import ScriptError, builtin_names, builtin_script, parse_pasted, parse_script_file
from evaluation.takes import check_take

HALF_SECOND = np.zeros(SAMPLE_RATE // 2, np.float32)


@pytest.fixture(scope="module")
def sentence(real_set) -> np.ndarray:
    """'Please check the number and dial again.', spoken by a person, with half a second of silence each side."""
    path = real_set / "audio" / "en" / "check-number-dial-again.wav"
    return np.concatenate([HALF_SECOND, load_audio(path), HALF_SECOND])


def _names(report) -> list[str]:
    return [c.name for c in report.problems]


def test_pasted_lines_become_prompts_in_order():
    prompts = parse_pasted("  Press one for sales. \n\nCancel my order.\n")
    assert [(p.id, p.text, p.type) for p in prompts] == [
        ("p01", "Press one for sales.", "custom"),
        ("p02", "Cancel my order.", "custom"),
    ]


def test_csv_with_and_without_header_and_a_type_column():
    with_header = parse_script_file(b'id,text,type\na1,Hello there.,greeting\na2,"Call 5, then 6.",digits\n', "s.csv")
    assert [(p.id, p.text, p.type) for p in with_header] == [
        ("a1", "Hello there.", "greeting"),
        ("a2", "Call 5, then 6.", "digits"),
    ]
    bare = parse_script_file("x1,Good morning.\nx2,Good night.\n", "s.csv")
    assert [(p.id, p.text, p.type) for p in bare] == [
        ("x1", "Good morning.", "custom"),
        ("x2", "Good night.", "custom"),
    ]


def test_a_csv_row_may_end_in_empty_cells():
    assert [p.text for p in parse_script_file("id,text\np1,Hello there.,,\n", "s.csv")] == ["Hello there."]


def test_txt_with_tabs_is_id_text_else_one_prompt_a_line():
    assert [p.id for p in parse_script_file("k1\tOne.\nk2\tTwo.\n", "s.txt")] == ["k1", "k2"]
    assert [p.text for p in parse_script_file("One, two.\nThree.\n", "s.txt")] == ["One, two.", "Three."]


@pytest.mark.parametrize(
    ("data", "name", "message"),
    [
        ("", "empty.txt", "no prompts"),
        ("a,One.\na,Two.\n", "dup.csv", "id 'a' is used twice"),
        ("a,One.\nb\n", "short.csv", "line 2: expected id,text"),
        ("a b,One.\n", "bad.csv", "id 'a b' must be"),
        ("a,\n", "blank.csv", "the text is empty"),
        ("Press one.\nHmm.\n", "filler.txt", r"prompt 2 \(p02\): 'Hmm.' has no words to score"),
        (b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\xda\xff", "take.csv", "not UTF-8 text"),  # a .wav picked by mistake
        ("a,Caf\u00e9.\n".encode("latin-1"), "latin.txt", "not UTF-8 text"),
        # a text with an unquoted comma: the prompt was cut to 'Hello' (with a header) or its rest became the type
        ("id,text\np1,Hello, there friend.\n", "comma.csv", r"line 2: 3 fields, the header has 2 \(id, text\); quote"),
        ("p1,Hello, there, friend.\n", "commas.csv", r"line 1: 4 fields, at most 3 \(id, text, type\); quote"),
        # a 100,000-character type was stored; a long id or text is quoted short, not echoed whole
        (f"a,Hello there.,{'t' * 65}\n", "type.csv", r"prompt 1 \(a\): type of 65 characters; at most 64"),
        (f"{'i' * 65},Hello there.\n", "id.csv", r"id 'iiiiiiiiiiii\.\.\.iiiiiiiiiiiii' must be up to 64 letters"),
        (f"a,{'.' * 501}\n", "dots.csv", r"prompt 1 \(a\): 501 characters; at most 500"),
    ],
)
def test_bad_scripts_are_one_line_naming_the_place(data, name, message):
    with pytest.raises(ScriptError, match=message) as info:
        parse_script_file(data, name)
    assert "\n" not in str(info.value) and name in str(info.value)


def test_builtin_scripts_have_unique_ids_and_their_type():
    for name in builtin_names():
        prompts = builtin_script(name)
        assert len({p.id for p in prompts}) == len(prompts) >= 10
    assert {p.type for p in builtin_script("mixed")} == {"harvard", "digits", "names", "commands"}
    assert builtin_script("ivr-commands")[0].text == "Press one for sales."
    assert builtin_script("harvard")[0].text == "The birch canoe slid on the smooth planks."
    with pytest.raises(ScriptError, match="built-in scripts are harvard"):
        builtin_script("nope")


def test_levels_are_measured_over_the_given_speech_span():
    """A full-scale sine is -3.0 dBFS; over a -60 dBFS noise floor its SNR is about 57 dB."""
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32) * 0.5
    floor = np.random.default_rng(0).standard_normal(SAMPLE_RATE).astype(np.float32) * 0.001
    audio = np.concatenate([floor, tone + floor[: tone.size], floor])
    report = check_take(audio, spans=[SpeechSpan(SAMPLE_RATE, 2 * SAMPLE_RATE)])
    assert report.speech_dbfs == pytest.approx(20 * math.log10(0.5) - 3.01, abs=0.05)
    assert report.snr_db == pytest.approx(10 * math.log10(0.125 / 1e-6), abs=0.3)
    assert (report.speech_start, report.speech_end) == (1.0, 2.0)
    assert report.ok, report.problems


def test_a_good_take_passes_every_check(sentence):
    report = check_take(sentence, words=7)
    assert report.ok, report.problems
    assert report.speech_dbfs > -30 and report.snr_db >= 60  # a studio recording with digital silence around it
    assert 0.3 < report.speech_start and report.speech_end < report.duration - 0.3


def test_clipped_take(sentence):
    report = check_take(np.clip(sentence * 20, -1.0, 1.0), words=7)
    assert _names(report) == ["clipping"], report.checks
    assert report.clipped_fraction > 0.05


def test_quiet_take(sentence):
    report = check_take(sentence * 0.003, words=7)
    assert "level" in _names(report) and "clipping" not in _names(report), report.checks
    assert report.speech_dbfs < -60


def test_speech_from_the_first_sample_is_cut_at_the_start(sentence):
    spoken = sentence[HALF_SECOND.size :]  # the recording starts as the speaker does: no silence before speech
    report = check_take(spoken, words=7)
    assert "start" in _names(report) and "end" not in _names(report), report.checks
    assert report.speech_start < 0.1


def test_speech_to_the_last_sample_is_cut_at_the_end(sentence):
    report = check_take(sentence[: -HALF_SECOND.size - SAMPLE_RATE // 4], words=7)
    assert "end" in _names(report), report.checks


def test_noise_gives_an_snr_estimate_near_the_made_one(sentence):
    from evaluation.takes import take_spans

    spans = take_spans(sentence)
    speech = np.concatenate([sentence[s.start : s.end] for s in spans])
    noise_rms = math.sqrt(float(np.mean(speech.astype(np.float64) ** 2)) / 10 ** (10 / 10))  # 10 dB SNR
    noisy = sentence + np.random.default_rng(1).standard_normal(sentence.size).astype(np.float32) * noise_rms
    report = check_take(noisy, words=7)
    assert report.snr_db == pytest.approx(10, abs=2), report.snr_db
    assert "snr" in _names(report)


def test_a_take_shorter_than_its_prompt_and_silence(sentence):
    half = sentence[: HALF_SECOND.size + SAMPLE_RATE * 3 // 4]  # "Please check" of a seven-word prompt
    assert "length" in _names(check_take(np.concatenate([half, HALF_SECOND]), words=7))
    silence = check_take(np.zeros(SAMPLE_RATE * 2, np.float32), words=7)
    assert [c.message for c in silence.problems] == ["no speech heard: check the microphone and record again"]
