"""Full-context transcription with the real tiny.en on faster-whisper: accuracy, silence, long files, invariants."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.results import DecodeOptions
from asr.transcribe import transcribe, transcribe_many
from asr.vad import VadOptions
from tests.conftest import HARVARD, check_invariants, wer


def test_speech_is_transcribed(fw_backend, speech_wav, speech_text):
    result = transcribe(speech_wav, backend=fw_backend)
    assert wer(speech_text, result.text) < 0.5
    assert "smooth" in result.text.lower() and "sheet" in result.text.lower()
    assert result.language == "en" and result.backend == "faster-whisper" and result.model == "whisper-tiny.en"
    assert result.duration == pytest.approx(sf.info(speech_wav).duration, abs=0.01)
    assert result.compute_seconds > 0 and result.words
    check_invariants(result)


@pytest.mark.parametrize("which", ["silence", "faint_noise"])
def test_silence_and_faint_noise_give_empty_text(fw_backend, request, which):
    result = transcribe(request.getfixturevalue(which), backend=fw_backend)
    assert result.text == "" and result.segments == () and result.words == ()
    assert result.duration == pytest.approx(5.0)


def test_recipe_inputs_48k_int16_stereo_tuple(fw_backend, speech_wav, speech_text):
    audio = load_audio(speech_wav)
    import soxr

    stereo = (np.stack([soxr.resample(audio, SAMPLE_RATE, 48_000)] * 2, axis=1) * 32767).astype(np.int16)
    result = transcribe((48_000, stereo), backend=fw_backend)
    assert wer(speech_text, result.text) < 0.5


def test_file_longer_than_30_seconds(fw_backend, long_wav):
    result = transcribe(long_wav, backend=fw_backend)
    assert result.duration > 30
    reference = " ".join(HARVARD)
    assert wer(reference, result.text) < 0.5
    assert result.segments[-1].end > 25, "the end of the file must be transcribed too"
    check_invariants(result)


def test_many_recordings_share_batches_and_keep_order(fw_backend, speech_wav, silence):
    speech = load_audio(speech_wav)
    results = transcribe_many([speech, silence, speech[: 4 * SAMPLE_RATE]], backend=fw_backend)
    assert [bool(r.text) for r in results] == [True, False, True]
    assert results[0].text == transcribe(speech, backend=fw_backend).text
    assert results[2].duration == pytest.approx(4.0)


def test_finished_hands_over_each_recording_once_done_and_survives_a_stop(fw_backend, speech_wav, silence):
    """``finished`` gets every recording, the one without speech before any model call, with the text the call
    returns; a progress callback that stops the call after its first model call has still handed over the first
    recording (the validation runner stores what ``finished`` gave when a run is cancelled mid-batch)."""
    speech = load_audio(speech_wav)
    audios, options = [speech, silence, speech[: 4 * SAMPLE_RATE]], DecodeOptions(batch_size=1)
    seen: dict[int, str] = {}
    results = transcribe_many(
        audios, backend=fw_backend, options=options, finished=lambda i, t: seen.update({i: t.text})
    )
    assert seen == {i: r.text for i, r in enumerate(results)} and list(seen)[0] == 1

    class Stop(Exception):
        pass

    def stop(done: float, total: float) -> None:
        raise Stop

    seen.clear()
    with pytest.raises(Stop):
        transcribe_many(
            audios, backend=fw_backend, options=options, progress=stop, finished=lambda i, t: seen.update({i: t.text})
        )
    assert seen == {1: "", 0: results[0].text}


def test_progress_reaches_the_total(fw_backend, long_wav):
    seen = []
    transcribe(long_wav, backend=fw_backend, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == pytest.approx(seen[-1][1])
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_beam_search_and_options_are_recorded(fw_backend, speech_wav):
    options = DecodeOptions(beam_size=5)
    result = transcribe(speech_wav, backend=fw_backend, options=options)
    assert result.options.beam_size == 5 and result.text
    assert result.to_dict()["options"]["beam_size"] == 5


def test_bad_options_quote_the_value():
    with pytest.raises(ValueError, match="beam_size must be an integer >= 1, not 0"):
        DecodeOptions(beam_size=0).validate()


def test_nan_audio_is_an_error_not_a_transcript(fw_backend):
    audio = np.full(SAMPLE_RATE, np.nan, np.float32)
    with pytest.raises(AudioError, match="NaN"):
        transcribe(audio, backend=fw_backend)


# (built-in utterance, noise seed, SNR in dB) cases where greedy tiny.en loops, tried in order: whether a case loops
# depends on the CPU's math libraries (it is chaotic: loops are rare and change with the noise seed), so the test uses
# the first that loops on this machine. The first looped on the Intel machines (CTranslate2 with MKL), not on the AMD
# EPYC one (DNNL); the others loop there (at 0 dB: 2 of the 63 utterances with seed 0, 2 of the 21 m7_06 cases with
# seeds 1 to 3), and the fallback repaired each
LOOP_CASES = (
    ("en-us_m3_02", 0, 0.0),
    ("en-gb-x-gbcwmd_m7_06", 0, 0.0),
    ("en-gb-x-rp_m7_06", 0, 0.0),
    ("en-gb_m7_06", 3, 0.0),
)


def test_a_window_stuck_in_a_loop_is_decoded_again(fw_backend):
    """A built-in utterance under white noise makes greedy tiny.en loop (the first of :data:`LOOP_CASES` that
    does on this CPU); the fallback decodes the window again and the loop is gone."""
    from asr.results import COMPRESSION_RATIO_THRESHOLD, compression_ratio

    # the loop shows with Whisper's full 30 s padding, <|notimestamps|> and the earlier VAD padding
    whisper_window = DecodeOptions(encoder_seconds=30.0, timestamp_tokens=False)
    vad = VadOptions(speech_pad_seconds=0.2, min_silence_seconds=0.16)
    tried = []
    for name, seed, snr_db in LOOP_CASES:
        clean = load_audio(f"evaluation/builtin/audio/{name}.flac")
        noise = np.random.default_rng(seed).standard_normal(clean.size).astype(np.float32)
        noisy = clean + noise * np.sqrt(np.mean(clean**2)) * 10 ** (-snr_db / 20)
        looping = transcribe(
            noisy, backend=fw_backend, options=whisper_window.replace(fallback_temperatures=()), vad=vad
        )
        tried.append(f"{name} seed {seed} at {snr_db:g} dB: {looping.text[:60]!r}")
        if compression_ratio(looping.text) > COMPRESSION_RATIO_THRESHOLD:
            break
    else:
        pytest.fail("no case of LOOP_CASES loops on this CPU: add one that does\n" + "\n".join(tried))
    repaired = transcribe(noisy, backend=fw_backend, options=whisper_window, vad=vad)
    assert repaired.windows_retried == 1, tried[-1]
    assert compression_ratio(repaired.text) <= COMPRESSION_RATIO_THRESHOLD, (tried[-1], repaired.text)
    assert len(repaired.text.split()) < 30, (tried[-1], repaired.text)


def test_the_backend_cache_is_keyed_by_the_resolved_model(fw_backend):
    """The same weights asked for by another spelling, or on the device auto picks, are the one loaded model."""
    from asr.backends import get_backend
    from asr.backends.base import pick_device

    assert get_backend("  whisper-tiny.en ", "faster-whisper") is fw_backend
    same_device = pick_device("auto", "ctranslate2")
    assert get_backend("whisper-tiny.en", "faster-whisper", device=same_device) is fw_backend
