"""All audio conversion in one place: anything in, mono float32 at ``SAMPLE_RATE`` out.

Inputs are what testers and browsers produce: Gradio ``(sample_rate, ndarray)`` tuples (browsers send 48 kHz
int16, mono or stereo), bare arrays of any integer or float dtype, channel-first or channel-last, and files in
the common containers. Files are decoded block by block and resampled as a stream, so an hour of 48 kHz stereo
never sits in memory at its native rate. Resampling is soxr's (no torchaudio). Audio in range is never
peak-normalised (dividing by the peak is what turns the recipe's silence into NaN); float audio beyond
[-1, 1], which Whisper would hear as clipped noise and transcribe as nothing, is scaled back into range with a
warning (see :func:`collect_warnings`). A file whose header promises more audio than it holds is an error,
and only samples really decoded are used, so a truncated file decodes the same way every time.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soxr

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # Whisper's rate; the one place it is written down
MAX_CHANNELS = 64  # a 2-D array whose both sides are longer than this cannot be told apart

AudioSource = str | os.PathLike | bytes | np.ndarray | tuple


INT16_SCALE = 32768.0  # float samples holding int16 values (peak up to this) are divided by it, not by the peak
EXACT_LENGTH_FORMATS = ("WAV", "WAVEX", "RF64", "W64", "AIFF", "AU", "CAF", "FLAC")  # headers that state the length


class AudioError(ValueError):
    """Audio that cannot be used, with a message a tester understands (it names the file when there is one)."""


def naming_file(path: str | os.PathLike, error: BaseException | str) -> str:
    """``error``'s message with ``path`` in it once: the engine's messages name the file already (callers that put
    it in front again printed "P: P: ..."), an OSError's or a library's may not, so those get it in front."""
    message, name = str(error), os.fspath(path)
    return message if name in message else f"{name}: {message}"


_warnings: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar("asr_audio_warnings", default=None)


@contextlib.contextmanager
def collect_warnings() -> Iterator[list[str]]:
    """Collect the warnings audio loading gives inside the block (per thread/task), for JSON output and pages.

    Warnings are also logged; without a collector they are only logged.
    """
    token = _warnings.set([])
    try:
        yield _warnings.get()  # type: ignore[misc]
    finally:
        _warnings.reset(token)


def _warn(message: str) -> None:
    logger.warning("%s", message)
    collected = _warnings.get()
    if collected is not None:
        collected.append(message)


def fit_range(audio: np.ndarray, *, integer_valued: bool, what: str = "audio", peak: float | None = None) -> np.ndarray:
    """Float audio beyond [-1, 1] scaled back (int16-scale floats by 1/32768, others by the peak), with a warning.

    ``peak`` is the source's own peak when ``audio`` has been resampled: resampling a file that touches full
    scale overshoots 1.0 a little (soxr's filter rings), which is no reason to rescale it or to warn.
    """
    if peak is None:
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 1.0:
        return audio
    if integer_valued and peak <= INT16_SCALE:
        _warn(f"{what}: float samples in int16 scale (peak {peak:g}); divided by {INT16_SCALE:g}")
        return (audio / np.float32(INT16_SCALE)).astype(np.float32)
    _warn(f"{what}: float samples exceed 1.0 (peak {peak:g}); peak-normalised to 1.0")
    return (audio / np.float32(peak)).astype(np.float32)


def _integer_valued(data: np.ndarray) -> bool:
    return bool(np.issubdtype(data.dtype, np.floating) and data.size and np.array_equal(data, np.round(data)))


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
    samples = to_float32(data, what=what)
    integer_valued = _integer_valued(samples) if np.issubdtype(np.asarray(data).dtype, np.floating) else False
    mono = to_mono(samples, what=what)
    return np.ascontiguousarray(resample(fit_range(mono, integer_valued=integer_valued, what=what), int(sample_rate)))


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
        what = str(source)
        audio = decode_file(_read_pipe(source), what=what) if _is_pipe(source) else decode_file(source)
    else:
        raise AudioError(f"unsupported audio input of type {type(source).__name__}")
    if audio.size == 0 and not allow_empty:
        raise AudioError(f"{what}: the audio is empty (no samples)")
    return audio


def _is_pipe(path: str | os.PathLike) -> bool:
    try:
        return stat.S_ISFIFO(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def _read_pipe(path: str | os.PathLike) -> io.BytesIO:
    """A pipe's bytes, read once (the header check and each decoder reopen a file; a pipe gives its data once)."""
    with open(path, "rb") as f:
        return io.BytesIO(f.read())


def check_file(path: str | os.PathLike, what: str | None = None) -> None:
    """Raise :class:`AudioError` for a path no audio can come from: an empty name (it read as the current folder,
    "``: is a folder``"), no such file, a folder, an empty file. Cheap, so callers check every path before they
    load a model (a mistyped name took the model's load time to report)."""
    what = what or str(path)
    if not os.fspath(path).strip():
        raise AudioError("an empty file name: give the path of an audio file")
    p = Path(path)
    if not p.exists():
        raise AudioError(f"{what}: no such file")
    if p.is_dir():
        raise AudioError(f"{what}: is a folder, not an audio file")
    mode = p.stat().st_mode
    if stat.S_ISFIFO(mode):  # a pipe (bash's <(sox ...)): its size says nothing; load_audio reads it once
        return
    if not stat.S_ISREG(mode):  # /dev/zero said "the file is empty", and read on it would never end
        raise AudioError(f"{what}: not a regular file (a device?); give an audio file")
    if p.stat().st_size == 0:
        raise AudioError(f"{what}: the file is empty")


def decode_file(path: str | os.PathLike | io.IOBase, *, what: str | None = None) -> np.ndarray:
    """Decode a file to mono float32 at 16 kHz, streaming, with soundfile first and PyAV for the rest (MP3: PyAV
    first, see :func:`_is_mpeg`)."""
    what = what or str(path)
    if isinstance(path, (str, os.PathLike)):
        check_file(path, what)
    check_wav_header(path, what)
    errors = []
    for decoder in (_pyav_blocks, _soundfile_blocks) if _is_mpeg(path) else (_soundfile_blocks, _pyav_blocks):
        if isinstance(path, io.IOBase):
            path.seek(0)
        try:
            audio, integer_valued, peak = _resample_stream(decoder(path, what), what)
            return fit_range(audio, integer_valued=integer_valued, what=what, peak=peak)
        except AudioError:
            raise
        except Exception as exc:  # noqa: BLE001 - each library raises its own types
            detail = str(exc)
            if isinstance(path, (str, os.PathLike)):  # the line names the file once; libraries repeat its path
                detail = detail.replace(str(path), Path(path).name)
            else:  # not the stream's memory address: the same bytes give the same message in any process
                detail = detail.replace(str(path), "the bytes")
            errors.append(f"{decoder.__name__.strip('_').split('_')[0]}: {detail}")
    logger.debug("%s: every decoder failed: %s", what, "; ".join(errors))
    raise AudioError(f"{what}: not a decodable audio file ({_short_reason(errors[0])})")


def _short_reason(error: str) -> str:
    """The first decoder's reason without its decoder, file name or error number ("format not recognised"): the
    line repeated both libraries' messages, each naming the file again; the whole of them is logged (--debug)."""
    reason = error.split(": ", 1)[1]
    reason = re.sub(r"^\[Errno -?\d+\] ", "", reason)
    reason = re.sub(r"^Error opening '[^']*': ", "", reason)
    reason = re.sub(r": '[^']*'$", "", reason).strip().rstrip(".")
    return (reason[:1].lower() + reason[1:])[:200] or "unknown format"


def _is_mpeg(source: str | os.PathLike | io.IOBase) -> bool:
    """MP3 (an ID3 tag or an MPEG frame sync first) goes to PyAV first: libsndfile's libmpg123, read block by
    block, printed "error: part2_3_length (2880) too large for available bit count" on stderr for a sound
    file, about 80 times for 13 minutes, for the same samples as PyAV's (within 2e-6)."""
    if isinstance(source, io.IOBase):
        source.seek(0)
        head = source.read(3)
        source.seek(0)
    else:
        with open(source, "rb") as f:
            head = f.read(3)
    return head[:3] == b"ID3" or (len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)


BLOCK_FRAMES = 1 << 16
UNKNOWN_SIZES = (0, 0xFFFFFFFF)  # what streaming writers put in a RIFF size they cannot know yet


def check_wav_header(source: str | os.PathLike | io.IOBase, what: str) -> None:
    """A RIFF/WAVE header that promises more audio than the file holds is an error naming the file.

    libsndfile silently shortens such a file to what is there, so a header claiming 4 channels at 48 kHz and
    2 GB of data decoded the real bytes as something else, and the tester got an empty transcript.
    """
    if isinstance(source, io.IOBase):
        source.seek(0)
        head, size = source.read(1 << 16), source.seek(0, io.SEEK_END)
        source.seek(0)
    else:
        with open(source, "rb") as f:
            head, size = f.read(1 << 16), os.fstat(f.fileno()).st_size
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return
    offset = 12
    while offset + 8 <= len(head):
        chunk, length = head[offset : offset + 4], int.from_bytes(head[offset + 4 : offset + 8], "little")
        if chunk == b"fmt " and offset + 16 <= len(head):
            channels = int.from_bytes(head[offset + 10 : offset + 12], "little")
            rate = int.from_bytes(head[offset + 12 : offset + 16], "little")
            if not 0 < channels <= MAX_CHANNELS or rate <= 0:
                raise AudioError(f"{what}: the WAV header is wrong ({channels} channel(s) at {rate} Hz)")
        if chunk == b"data":
            available = size - offset - 8
            if length not in UNKNOWN_SIZES and length > available:
                raise AudioError(
                    f"{what}: the WAV header promises {length} bytes of audio but the file holds {available}: "
                    "it is truncated or its header is wrong"
                )
            return
        offset += 8 + length + (length & 1)


def _resample_stream(blocks: Iterator[tuple[np.ndarray, int]], what: str) -> tuple[np.ndarray, bool, float]:
    """The decoded blocks resampled as one stream, whether every sample was a whole number (int16 scale), and
    the mono peak before resampling (what :func:`fit_range` judges)."""
    stream = None
    rate = None
    integer_valued = True
    peak = 0.0
    out: list[np.ndarray] = []
    for block, block_rate in blocks:
        samples = to_float32(block, what=what)
        integer_valued = integer_valued and (samples.size == 0 or _integer_valued(samples))
        mono = samples.mean(axis=1, dtype=np.float32)  # blocks are always (frames, channels)
        peak = max(peak, float(np.max(np.abs(mono))) if mono.size else 0.0)
        if rate is None:
            rate = block_rate
            if rate != SAMPLE_RATE:
                stream = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        out.append(stream.resample_chunk(mono) if stream is not None else mono)
    if stream is not None:
        out.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    if rate is None:
        return np.zeros(0, np.float32), False, 0.0
    return np.ascontiguousarray(np.concatenate(out).astype(np.float32, copy=False)), integer_valued, peak


def _soundfile_blocks(path, what: str) -> Iterator[tuple[np.ndarray, int]]:
    """Blocks of the samples really read. soundfile's ``blocks()`` yields whole blocks even when the file ends
    early, so a truncated file used to add uninitialised memory (a different number of NaNs on every run)."""
    import soundfile as sf

    with sf.SoundFile(path) as f:
        read = 0
        while True:
            block = f.read(BLOCK_FRAMES, dtype="float32", always_2d=True)
            if not len(block):
                break
            read += len(block)
            yield block, f.samplerate
        if f.format in EXACT_LENGTH_FORMATS and read < f.frames:
            raise AudioError(
                f"{what}: the header promises {f.frames} frames ({f.channels} channel(s) at {f.samplerate} Hz) "
                f"but the file holds {read}: it is truncated or its header is wrong"
            )


def _pyav_blocks(path, what: str) -> Iterator[tuple[np.ndarray, int]]:
    import av

    with av.open(path, mode="r", metadata_errors="ignore") as container:
        if not container.streams.audio:
            raise AudioError(f"{what}: the file has no audio stream")
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
