"""Audio conversion: every dtype, layout, rate and container a tester or browser produces, and the bad ones."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import soundfile as sf

from asr.audio import SAMPLE_RATE, AudioError, convert, load_audio, to_float32, to_mono

RATE_48K = 48_000


def tone(seconds: float = 1.0, rate: int = SAMPLE_RATE, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(
    ("dtype", "peak", "expected"),
    [
        (np.int16, 32767, 32767 / 32768),
        (np.int32, 2**31 - 1, (2**31 - 1) / 2**31),
        (np.uint8, 255, 127 / 128),
        (np.float64, 0.5, 0.5),
        (np.float32, -1.0, -1.0),
    ],
)
def test_to_float32_scales_each_dtype(dtype, peak, expected):
    out = to_float32(np.array([0, peak], dtype=dtype))
    assert out.dtype == np.float32
    assert out[-1] == pytest.approx(expected, abs=1e-6)


def test_uint8_midpoint_is_silence():
    assert to_float32(np.array([128], np.uint8))[0] == 0.0


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_samples_are_rejected(bad):
    data = tone(0.1)
    data[5] = bad
    with pytest.raises(AudioError, match="NaN or infinite"):
        to_float32(data)


def test_channels_last_and_channels_first_give_the_same_mono():
    left, right = tone(0.5), tone(0.5, freq=220)
    expected = (left + right) / 2
    np.testing.assert_allclose(to_mono(np.stack([left, right], axis=1)), expected, atol=1e-6)
    np.testing.assert_allclose(to_mono(np.stack([left, right], axis=0)), expected, atol=1e-6)


def test_six_channel_audio_is_averaged():
    data = np.tile(tone(0.2)[:, None], (1, 6))
    np.testing.assert_allclose(to_mono(data), tone(0.2), atol=1e-6)


def test_three_dimensional_audio_is_refused():
    with pytest.raises(AudioError, match="shape"):
        to_mono(np.zeros((2, 2, 2), np.float32))


def test_gradio_tuple_48k_int16_stereo_becomes_16k_mono():
    stereo = (np.stack([tone(1.0, RATE_48K)] * 2, axis=1) * 32767).astype(np.int16)
    out = load_audio((RATE_48K, stereo))
    assert out.dtype == np.float32 and out.ndim == 1
    assert out.size == pytest.approx(SAMPLE_RATE, abs=2)
    assert np.abs(out).max() == pytest.approx(0.5, abs=0.01)  # level kept: no peak normalisation


def test_resampling_keeps_a_tone_at_its_frequency():
    out = convert(tone(1.0, 44_100, freq=1000.0), 44_100)
    spectrum = np.abs(np.fft.rfft(out))
    assert np.argmax(spectrum) * SAMPLE_RATE / out.size == pytest.approx(1000.0, abs=2)


def test_silence_stays_silence_not_nan():
    out = load_audio((RATE_48K, np.zeros(RATE_48K, np.int16)))
    assert np.isfinite(out).all() and not out.any()


@pytest.mark.parametrize("source", [np.zeros(0, np.float32), (RATE_48K, np.zeros(0, np.int16))])
def test_empty_audio_is_an_error(source):
    with pytest.raises(AudioError, match="empty"):
        load_audio(source)


def test_bad_sample_rate_is_an_error():
    with pytest.raises(AudioError, match="sample rate"):
        load_audio((0, tone(0.1)))


def test_strings_are_not_samples():
    with pytest.raises(AudioError, match="numbers"):
        load_audio((SAMPLE_RATE, np.array(["a", "b"])))


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "ogg", "opus", "webm", "m4a"])
def test_every_container_decodes_to_16k_mono(tmp_path, ext):
    src = tmp_path / "src.wav"
    sf.write(src, np.stack([tone(2.0, RATE_48K)] * 2, axis=1), RATE_48K)
    out = tmp_path / f"clip.{ext}"
    codec = {"ogg": ["-c:a", "libvorbis"], "opus": ["-c:a", "libopus"], "webm": ["-c:a", "libopus"]}.get(ext, [])
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(src), *codec, str(out)], check=True)
    audio = load_audio(out)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert audio.size / SAMPLE_RATE == pytest.approx(2.0, abs=0.1)
    rms = float(np.sqrt(np.mean(audio[SAMPLE_RATE // 4 : -SAMPLE_RATE // 4] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.1)  # level kept through lossy codecs


def test_bytes_decode_like_the_file(tmp_path):
    path = tmp_path / "a.flac"
    sf.write(path, tone(1.0, 22_050), 22_050)
    np.testing.assert_allclose(load_audio(path.read_bytes()), load_audio(path), atol=1e-6)


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 10)
    with pytest.raises(AudioError, match="broken.wav"):
        load_audio(path)


@pytest.mark.parametrize("name", ["notes.mp3", "notes.wav"])
def test_text_file_is_not_audio(tmp_path, name):
    """One short reason, the file named once: the line repeated both decoders' messages, each naming the file."""
    path = tmp_path / name
    path.write_text("hello, these are notes, not audio")
    with pytest.raises(AudioError, match=f"{name}: not a decodable audio file") as err:
        load_audio(path)
    message = str(err.value)
    assert message.count(name) == 1 and "soundfile" not in message and "pyav" not in message.lower(), message
    assert "Errno" not in message and len(message) < len(str(path)) + 120, message


@pytest.mark.parametrize(("name", "message"), [("missing.wav", "no such file"), ("empty.wav", "empty")])
def test_missing_and_empty_files(tmp_path, name, message):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(AudioError, match=message):
        load_audio(tmp_path / name)


def test_folder_is_not_a_file(tmp_path):
    with pytest.raises(AudioError, match="folder"):
        load_audio(tmp_path)
