"""Silero VAD: spans of speech, packing into Whisper windows, and the map back to file time."""

from __future__ import annotations

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE, load_audio
from asr.vad import (
    FRAME,
    SpeechSpan,
    StreamingVad,
    VadOptions,
    pack_windows,
    speech_probabilities,
    speech_spans,
    with_lead_in,
)


def test_silence_and_faint_noise_have_no_speech(silence, faint_noise):
    assert speech_spans(silence) == []
    assert speech_spans(faint_noise) == []
    assert speech_spans(np.zeros(0, np.float32)) == []


def test_speech_is_found_inside_padding(speech_wav):
    speech = load_audio(speech_wav)
    padded = np.concatenate([np.zeros(2 * SAMPLE_RATE, np.float32), speech, np.zeros(2 * SAMPLE_RATE, np.float32)])
    spans = speech_spans(padded)
    assert spans, "speech must be detected"
    assert spans[0].start >= 1.5 * SAMPLE_RATE
    assert spans[-1].end <= padded.size - 1.5 * SAMPLE_RATE
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))


def test_pack_windows_never_exceeds_30_seconds():
    audio = np.zeros(100 * SAMPLE_RATE, np.float32)
    spans = [SpeechSpan(i * 4 * SAMPLE_RATE, (i * 4 + 3) * SAMPLE_RATE) for i in range(25)]
    windows = pack_windows(audio, spans)
    assert all(w.seconds <= 30.0 for w in windows)
    assert sum(len(w.spans) for w in windows) == len(spans)
    assert len(windows) == 3  # 25 spans of 3 s, 10 per window


def test_window_maps_packed_time_back_to_file_time():
    audio = np.arange(20 * SAMPLE_RATE, dtype=np.float32)
    spans = [SpeechSpan(2 * SAMPLE_RATE, 4 * SAMPLE_RATE), SpeechSpan(10 * SAMPLE_RATE, 13 * SAMPLE_RATE)]
    (window,) = pack_windows(audio, spans)
    assert window.seconds == pytest.approx(5.0)
    assert window.to_file_time(0.0) == pytest.approx(2.0)
    assert window.to_file_time(1.5) == pytest.approx(3.5)
    assert window.to_file_time(2.5) == pytest.approx(10.5)
    assert window.to_file_time(2.0, is_end=True) == pytest.approx(4.0)  # an end at the seam stays in span 1
    assert window.to_file_time(2.0) == pytest.approx(10.0)  # a start at the seam begins span 2
    assert window.audio[int(2.5 * SAMPLE_RATE)] == audio[int(10.5 * SAMPLE_RATE)]


def test_overlong_span_is_cut_to_one_window():
    audio = np.zeros(40 * SAMPLE_RATE, np.float32)
    (window,) = pack_windows(audio, [SpeechSpan(0, 40 * SAMPLE_RATE)])
    assert window.seconds == pytest.approx(30.0)


def test_streaming_vad_matches_offline_probabilities(speech_wav):
    speech = load_audio(speech_wav)
    n = (speech.size // FRAME) * FRAME
    offline = speech_probabilities(speech[:n])
    vad = StreamingVad()
    pieces = [vad.accept(speech[i : i + 8000]) for i in range(0, n, 8000)]
    streamed = np.concatenate(pieces)
    assert streamed.size == offline.size
    assert np.corrcoef(streamed, offline)[0, 1] > 0.9
    assert ((streamed > 0.5) == (offline > 0.5)).mean() > 0.9


def test_blocks_found_on_threads_are_the_spans_of_each_block_alone(monkeypatch):
    from asr import vad
    from evaluation.realspeech import real_dir

    path = real_dir() / "long" / "en-dev-joined.wav"
    if not path.exists():
        pytest.skip(f"the real-speech long files are not built ({path}; run: python -m evaluation make-real)")
    clip = load_audio(path)[: 75 * SAMPLE_RATE]  # real speech, 0.7 s pauses: spans cross the block edges
    block = 30 * SAMPLE_RATE
    monkeypatch.setattr(vad, "BLOCK_SAMPLES", block)  # three blocks, found side by side on threads
    alone = [
        SpeechSpan(offset + s.start, offset + s.end)
        for offset in range(0, clip.size, block)
        for s in speech_spans(clip[offset : offset + block])  # one block: found in this thread
    ]
    assert len(alone) >= 3
    assert speech_spans(clip) == alone
    tail = clip[2 * block :]
    assert vad.speech_spans_many([clip, tail]) == [alone, speech_spans(tail)]


def test_long_form_spans_pack_windows_fuller_from_sentences():
    from asr import vad
    from evaluation.realspeech import real_dir

    path = real_dir() / "long" / "en-dev-long.wav"
    if not path.exists():
        pytest.skip(f"the real-speech long files are not built ({path}; run: python -m evaluation make-real)")
    clip = load_audio(path)[: 120 * SAMPLE_RATE]  # real prompts with 0.35 s pauses: one span cut at every 30 s
    options = [VadOptions(), VadOptions().for_long_form()]
    spans = vad.speech_spans_many([clip, clip], options)  # each recording with its own options
    assert spans == [speech_spans(clip), speech_spans(clip, options[1])]
    assert len(spans[1]) > 4 * len(spans[0])  # sentences, not 30 s cuts
    seconds = [[sum(s.seconds for s in w) for w in vad.group_spans(found)] for found in spans]
    assert max(seconds[1]) <= vad.MAX_WINDOW_SECONDS and len(seconds[1]) == len(seconds[0])
    assert sum(seconds[1][:-1]) > sum(seconds[0][:-1]) + 1.0  # the full windows hold more: less left over


def test_a_short_lead_in_is_kept_and_a_pause_is_not():
    """The first span starts at sample 0 when less than a span-ending pause precedes it (as faster-whisper's
    transcribe reads a recording), never when a real pause does, never past one window, and only the first."""
    s = SAMPLE_RATE
    opts = VadOptions()  # a 2 s pause ends a span
    spans = [SpeechSpan(int(0.3 * s), 4 * s), SpeechSpan(int(7.5 * s), 9 * s)]
    assert with_lead_in(spans, opts) == [SpeechSpan(0, 4 * s), spans[1]]
    late = [SpeechSpan(int(2.5 * s), 4 * s)]
    assert with_lead_in(late, opts) == late  # 2.5 s of silence first: left out, as silence invites inventions
    assert with_lead_in([SpeechSpan(int(0.3 * s), 30 * s + 1)], opts)[0].start == int(0.3 * s)  # past 30 s
    assert with_lead_in([SpeechSpan(0, s)], opts) == [SpeechSpan(0, s)]
    assert with_lead_in([], opts) == []
    assert with_lead_in(spans, VadOptions(keep_lead_in=False)) == spans
    long_form = opts.for_long_form()  # long recordings: a 0.16 s pause ends a span, so only a shorter lead-in
    assert with_lead_in(spans, long_form) == spans
    assert with_lead_in([SpeechSpan(int(0.1 * s), s)], long_form) == [SpeechSpan(0, s)]
