"""All audio conversion in one place: anything in, mono float32 at ``SAMPLE_RATE`` out.

Inputs are what testers and browsers produce: Gradio ``(sample_rate, ndarray)`` tuples (browsers send 48 kHz
int16, mono or stereo), bare arrays of any integer or float dtype, channel-first or channel-last, and files in
the common containers. Files are decoded block by block and resampled as a stream, so an hour of 48 kHz stereo
never sits in memory at its native rate. Resampling is soxr's (no torchaudio). Nothing is peak-normalised:
dividing by the peak is what turns the recipe's silence into NaN.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soxr

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Whisper's rate; the one place it is written down
MAX_CHANNELS = 64  # a 2-D array whose both sides are longer than this cannot be told apart

AudioSource = str | os.PathLike | bytes | np.ndarray | tuple


class AudioError(ValueError):
    """Audio that cannot be used, with a message a tester understands (it names the file when there is one)."""


def to_float32(data: np.ndarray, *, what: str = "audio") -> np.ndarray:
    """Scale integer PCM to [-1, 1] float32 and reject NaN or infinite samples."""
    data = np.asarray(data)
    if data.dtype == np.uint8:
        out = (data.astype(np.float32) - 128.0) / 128.0
    elif np.issubdtype(data.dtype, np.signedinteger):
        out = data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    elif np.issubdtype(data.dtype, np.floating):
        out = data.astype(np.float32, copy=False)
    elif data.dtype == np.bool_ or data.dtype.kind in "OUSV":
        raise AudioError(f"{what}: samples must be numbers, not {data.dtype}")
    else:
        out = data.astype(np.float32)
    if out.size and not np.isfinite(out).all():
        bad = int(out.size - np.isfinite(out).sum())
        raise AudioError(f"{what}: {bad} sample(s) are NaN or infinite; the recording is corrupt")
    return out


def to_mono(data: np.ndarray, *, what: str = "audio") -> np.ndarray:
    """Average channels; accepts ``(n,)``, ``(n, ch)`` (Gradio, soundfile) and ``(ch, n)`` (torch, librosa)."""
    if data.ndim == 1:
        return data
    if data.ndim != 2:
        raise AudioError(f"{what}: expected 1-D or 2-D samples, got shape {data.shape}")
    rows, cols = data.shape
    if cols <= MAX_CHANNELS and (cols <= rows or rows > MAX_CHANNELS):
        return data.mean(axis=1, dtype=np.float32)
    if rows <= MAX_CHANNELS:
        return data.mean(axis=0, dtype=np.float32)
    raise AudioError(f"{what}: cannot tell channels from samples in shape {data.shape}")


def resample(audio: np.ndarray, rate_in: int, rate_out: int = SAMPLE_RATE) -> np.ndarray:
    """Resample mono float32 with soxr (high quality, no torchaudio)."""
    if rate_in == rate_out or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    return soxr.resample(audio, rate_in, rate_out, quality="HQ").astype(np.float32, copy=False)


def convert(data: np.ndarray, sample_rate: int, *, what: str = "audio") -> np.ndarray:
    """Any array at any rate to mono float32 at ``SAMPLE_RATE``."""
    if not isinstance(sample_rate, (int, np.integer)) or sample_rate <= 0:
        raise AudioError(f"{what}: sample rate must be a positive integer, not {sample_rate!r}")
    mono = to_mono(to_float32(data, what=what), what=what)
    return np.ascontiguousarray(resample(mono, int(sample_rate)))


def load_audio(source: AudioSource, *, allow_empty: bool = False) -> np.ndarray:
    """Turn a path, bytes, Gradio ``(rate, array)`` tuple or 16 kHz array into mono float32 at 16 kHz.

    Raises :class:`AudioError` for empty, NaN, undecodable or unsupported input, so that callers can show one
    message instead of a traceback. A bare ndarray is taken to be at ``SAMPLE_RATE`` already.
    """
    if isinstance(source, tuple):
        if len(source) != 2:
            raise AudioError("audio tuple must be (sample_rate, samples)")
        rate, data = source
        if isinstance(rate, np.ndarray) and not isinstance(data, np.ndarray):
            rate, data = data, rate  # (samples, rate), as librosa returns
        audio = convert(np.asarray(data), rate)
        what = "audio"
    elif isinstance(source, np.ndarray):
        audio = convert(source, SAMPLE_RATE)
        what = "audio"
    elif isinstance(source, (bytes, bytearray)):
        audio = decode_file(io.BytesIO(source), what="uploaded audio")
        what = "uploaded audio"
    elif isinstance(source, (str, os.PathLike)):
        audio = decode_file(source)
        what = str(source)
    else:
        raise AudioError(f"unsupported audio input of type {type(source).__name__}")
    if audio.size == 0 and not allow_empty:
        raise AudioError(f"{what}: the audio is empty (no samples)")
    return audio


def decode_file(path: str | os.PathLike | io.IOBase, *, what: str | None = None) -> np.ndarray:
    """Decode a file to mono float32 at 16 kHz, streaming, with soundfile first and PyAV for the rest."""
    what = what or str(path)
    if isinstance(path, (str, os.PathLike)):
        p = Path(path)
        if not p.exists():
            raise AudioError(f"{what}: no such file")
        if p.is_dir():
            raise AudioError(f"{what}: is a folder, not an audio file")
        if p.stat().st_size == 0:
            raise AudioError(f"{what}: the file is empty")
    errors = []
    for decoder in (_soundfile_blocks, _pyav_blocks):
        if isinstance(path, io.IOBase):
            path.seek(0)
        try:
            return _resample_stream(decoder(path))
        except AudioError:
            raise
        except Exception as exc:  # noqa: BLE001 - each library raises its own types
            errors.append(f"{decoder.__name__.strip('_').split('_')[0]}: {exc}")
    raise AudioError(f"{what}: not a decodable audio file ({'; '.join(errors)[:300]})")


BLOCK_FRAMES = 1 << 16


def _resample_stream(blocks: Iterator[tuple[np.ndarray, int]]) -> np.ndarray:
    stream = None
    rate = None
    out: list[np.ndarray] = []
    for block, block_rate in blocks:
        mono = to_float32(block).mean(axis=1, dtype=np.float32)  # blocks are always (frames, channels)
        if rate is None:
            rate = block_rate
            if rate != SAMPLE_RATE:
                stream = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        out.append(stream.resample_chunk(mono) if stream is not None else mono)
    if stream is not None:
        out.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    if rate is None:
        return np.zeros(0, np.float32)
    return np.ascontiguousarray(np.concatenate(out).astype(np.float32, copy=False))


def _soundfile_blocks(path) -> Iterator[tuple[np.ndarray, int]]:
    import soundfile as sf

    with sf.SoundFile(path) as f:
        for block in f.blocks(blocksize=BLOCK_FRAMES, dtype="float32", always_2d=True):
            yield block, f.samplerate


def _pyav_blocks(path) -> Iterator[tuple[np.ndarray, int]]:
    import av

    with av.open(path, mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise AudioError(f"{getattr(path, 'name', path)}: the file has no audio stream")
        stream = container.streams.audio[0]
        # Planar float at the stream's own layout and rate: channels are averaged by to_mono (libswresample's
        # own downmix adds them at -3 dB, which changes the level) and resampling is soxr's.
        resampler = av.AudioResampler(format="fltp")
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                yield out.to_ndarray().T, out.sample_rate
        for out in resampler.resample(None):
            yield out.to_ndarray().T, out.sample_rate


def write_wav(path: str | os.PathLike, audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono float32 audio as 16-bit PCM WAV (what the store and tests keep)."""
    import soundfile as sf

    sf.write(str(path), np.clip(audio, -1.0, 1.0), sample_rate, subtype="PCM_16")
