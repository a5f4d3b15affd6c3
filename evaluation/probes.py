"""Hallucination probes: non-speech clips every word of whose transcript is invented, and the same count on speech.

``--dataset probes`` is a built-in set of clips with an empty reference: digital silence, room tone, white and
pink noise, DTMF digits, answering-machine beeps and real music (the music-on-hold recordings of Debian's
``asterisk-moh-opsound-wav``, installed by setup). Whisper is known to write "Thank you." or "you" over
silence and lyrics over music; a QA team needs that rate per model, condition and path, as a group beside
the WER table.

Why it is built this way:
- The synthetic clips are made here from a fixed seed (not the run's), so the dataset is the same bytes in
  every run and on every machine; the music is cut at fixed offsets of the installed files.
- A hypothesis word is *invented* when no reference word stands for it: on a probe every word; on speech the
  insertions before the first and after the last reference word of the alignment, which is where Whisper
  hallucinates (over the leading and trailing silence). The rate is invented words per minute of non-speech:
  the whole clip for a probe, the part of the clean utterance the VAD does not call speech otherwise.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE, AudioError, load_audio
from evaluation.rowsource import Rows, RowSource
from evaluation.scoring import AlignedSpan

logger = logging.getLogger(__name__)

PROBES = "probes"
MUSIC_DIR = Path("/usr/share/asterisk/moh")  # asterisk-moh-opsound-wav
CLIP_SECONDS = 10.0
MUSIC_SECONDS = 20.0
MUSIC_OFFSET = 30.0  # seconds into each recording (past any fade-in)
SEED = 20_240_601  # fixed: the probes are the same clips in every run
DTMF = {  # digit -> (low, high) Hz, ITU-T Q.23
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "4": (770, 1209), "5": (770, 1336), "6": (770, 1477),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "*": (941, 1209), "0": (941, 1336), "#": (941, 1477),
}  # fmt: skip


def _dbfs(audio: np.ndarray, level: float) -> np.ndarray:
    """Scale to an RMS of ``level`` dB full scale (a full-scale sine is -3 dBFS RMS)."""
    rms = math.sqrt(float(np.mean(np.square(audio, dtype=np.float64)))) or 1.0
    return (audio * (10 ** (level / 20) / rms)).astype(np.float32)


def _pink(rng: np.random.Generator, n: int) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]
    return np.fft.irfft(spectrum / np.sqrt(freqs), n)


def _tone(freqs: Sequence[float], seconds: float, level: float = -12.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    ramp = np.minimum(1.0, np.minimum(t, t[::-1]) / 0.005)  # 5 ms ramps: no clicks
    return _dbfs(sum(np.sin(2 * np.pi * f * t) for f in freqs) * ramp, level)


def _pad(parts: Sequence[np.ndarray], seconds: float) -> np.ndarray:
    audio = np.concatenate(parts).astype(np.float32)
    n = int(seconds * SAMPLE_RATE)
    return np.pad(audio, (0, max(n - audio.size, 0)))[:n]


def dtmf(digits: str = "5551234#0*", on: float = 0.15, off: float = 0.15) -> np.ndarray:
    gap = np.zeros(int(off * SAMPLE_RATE), np.float32)
    return _pad([gap] + [p for d in digits for p in (_tone(DTMF[d], on), gap)] * 3, CLIP_SECONDS)


def beeps(freq: float = 1000.0, on: float = 0.3, period: float = 1.5) -> np.ndarray:
    gap = np.zeros(int((period - on) * SAMPLE_RATE), np.float32)
    return _pad([gap, *[p for _ in range(int(CLIP_SECONDS / period)) for p in (_tone([freq], on), gap)]], CLIP_SECONDS)


def synthetic_clips() -> list[tuple[str, str, np.ndarray]]:
    """(id, probe kind, audio) of the clips made here."""
    rng = np.random.default_rng(SEED)
    n = int(CLIP_SECONDS * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    room = _dbfs(_pink(rng, n), -60) + _dbfs(np.sin(2 * np.pi * 50 * t), -66)  # ventilation and mains hum
    return [
        ("probe-silence", "silence", np.zeros(n, np.float32)),
        ("probe-room-tone", "room tone", room.astype(np.float32)),
        ("probe-white", "white noise", _dbfs(rng.standard_normal(n), -30)),
        ("probe-pink", "pink noise", _dbfs(_pink(rng, n), -30)),
        ("probe-dtmf", "dtmf", dtmf()),
        ("probe-beep", "beep", beeps()),
    ]


def music_clips(folder: Path = MUSIC_DIR) -> list[tuple[str, str, np.ndarray]]:
    files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    if not files:
        logger.warning("probes: no music in %s (setup installs asterisk-moh-opsound-wav); music left out", folder)
    clips = []
    for path in files:
        try:
            audio = load_audio(path)
        except AudioError as exc:
            logger.warning("probes: %s left out: %s", path, exc)
            continue
        start = int(MUSIC_OFFSET * SAMPLE_RATE) if audio.size > (MUSIC_OFFSET + MUSIC_SECONDS) * SAMPLE_RATE else 0
        clips.append((f"music-{path.stem}", "music", audio[start : start + int(MUSIC_SECONDS * SAMPLE_RATE)]))
    return clips


def probes_source() -> RowSource:
    """The probes as a row source: ``id``, ``audio`` (16 kHz array), empty ``text``, group column ``probe``."""
    clips = synthetic_clips() + music_clips()
    rows = [
        {"id": ident, "audio": {"array": audio, "sampling_rate": SAMPLE_RATE}, "text": "", "probe": kind}
        for ident, kind, audio in clips
    ]

    def iterate(indices: Sequence[int] | None) -> Rows:
        for i in range(len(rows)) if indices is None else indices:
            yield i, rows[i]

    columns = ("id", "audio", "text", "probe")
    return RowSource(PROBES, columns, iterate, len(rows), default_groups=("probe",), empty_text_ok=True)


def invented_words(alignment: Sequence[AlignedSpan], ref_words: int, hypothesis_norm: str) -> tuple[str, ...]:
    """Hypothesis words no reference word stands for: all of them without a reference, else the edge insertions."""
    if ref_words == 0:
        return tuple(hypothesis_norm.split())
    spans = list(alignment)
    lead = next((i for i, span in enumerate(spans) if span.op != "insert"), len(spans))
    trail = next((i for i, span in enumerate(reversed(spans)) if span.op != "insert"), 0)
    edges = spans[:lead] + spans[len(spans) - trail :]
    return tuple(word for span in edges for word in span.hypothesis)


def hallucination_fields(alignment, ref_words: int, hypothesis_norm: str, seconds: float, speech: float) -> dict:
    """The result columns of one row: invented words, their text, and the non-speech seconds they fell in."""
    words = invented_words(alignment, ref_words, hypothesis_norm)
    return {
        "invented_words": len(words),
        "invented_text": " ".join(words),
        "nonspeech_seconds": round(seconds if ref_words == 0 else max(seconds - speech, 0.0), 3),
    }
