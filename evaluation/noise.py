"""Noise conditions: clean, white/pink/babble/file noise at an exact SNR, and synthetic reverberation.

Why it is built this way:
- SNR is set over the speech region found by the VAD on the clean utterance, not over the whole file, so
  leading and trailing silence do not make a "10 dB" mix easier or harder than another. The measured SNR of
  the finished mix (float32, after any peak guard) is recorded and equals the requested one within 0.1 dB.
- Every random choice comes from a generator seeded by (run seed, utterance id, condition), so a mix can be
  rebuilt exactly from its provenance, in any order and any process (resuming a run, or the dashboard
  replaying the noisy audio of one utterance).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from asr.audio import SAMPLE_RATE, AudioError, load_audio, naming_file
from asr.vad import VadOptions, speech_spans
from evaluation.channel import CHANNEL_USAGE, ChannelCondition, ChannelError, apply_channel, is_channel, parse_channel
from evaluation.reverb import convolve, measure_rt60, synthetic_rir

KINDS = ("clean", "white", "pink", "babble", "reverb", "file")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
BABBLE_TALKERS = 4  # other utterances summed into babble (a small crowd; fewer sounds like one interferer)
PEAK_LIMIT = 0.99  # a louder mix is scaled down as a whole, which keeps its SNR
MAX_RT60 = 3.0  # seconds; beyond a cathedral


class NoiseError(ValueError):
    """A noise condition that cannot be used, quoting it and saying what is expected."""


@dataclass(frozen=True)
class NoiseCondition:
    spec: str  # canonical text, e.g. "white@10", "reverb@0.6", "file:/data/musan@5"
    kind: str  # one of KINDS
    snr_db: float | None = None  # for white, pink, babble and file
    rt60: float | None = None  # seconds, for reverb
    directory: str | None = None  # for file
    channel: tuple[ChannelCondition, ...] = ()  # codec or band stages after the noise, in order (spec has them)

    @property
    def noise_only(self) -> NoiseCondition:
        """The same noise without the channel: its mix (and random draws) equal the plain noise condition's."""
        if not self.channel:
            return self
        tail = "+".join(c.spec for c in self.channel)
        spec = "clean" if self.spec == tail else self.spec[: -len(tail) - 1]
        return NoiseCondition(spec, self.kind, self.snr_db, self.rt60, self.directory)


@dataclass(frozen=True)
class Provenance:
    """How one noisy utterance was made: enough to rebuild it bit for bit."""

    condition: str
    kind: str
    seed: int  # the run's seed; the generator also takes the utterance id and the condition
    snr_db_requested: float | None = None
    snr_db_measured: float | None = None  # over the speech region of the finished mix
    rt60: float | None = None
    rt60_measured: float | None = None  # Schroeder T20 of the synthetic impulse response
    noise_file: str | None = None  # file noise: the file used
    noise_offset: float | None = None  # file noise: where in that file the noise starts (seconds)
    babble_sources: tuple[str, ...] = ()  # babble: the utterance ids mixed in
    gain: float = 1.0  # the peak guard's scale applied to the whole mix
    channel: str = ""  # the channel stages applied after the noise, e.g. "codec:opus@12k+loss5"
    channel_detail: str = ""  # how: encoder, line rate, bitrate, packets lost
    packets_lost: int | None = None  # packet-loss stages: packets replaced by silence


@dataclass(frozen=True)
class Mixed:
    audio: np.ndarray = field(repr=False)  # mono float32 at SAMPLE_RATE, as long as the clean utterance
    provenance: Provenance


USAGE = "clean, white@SNR, pink@SNR, babble@SNR, reverb@RT60 (seconds) or file:DIR@SNR (SNR in dB)"
FULL_USAGE = f"{USAGE}, each optionally followed by +CHANNEL ({CHANNEL_USAGE})"


def _number(text: str, spec: str) -> float:
    try:
        value = float(text.removesuffix("dB").removesuffix("db").removesuffix("s"))
    except ValueError:
        raise NoiseError(f"noise condition {spec!r}: {text!r} is not a number; use {USAGE}") from None
    if not math.isfinite(value):
        raise NoiseError(f"noise condition {spec!r}: the value must be finite")
    return value


MIN_SNR_DB, MAX_SNR_DB = -20.0, 80.0  # below -20 dB speech is gone; above 80 dB the noise is below float32 detail


def _snr(text: str, spec: str) -> float:
    """An SNR in dB inside the bounds (1e9 used to overflow mid-run; -200 was accepted and meant nothing)."""
    value = _number(text, spec)
    if not MIN_SNR_DB <= value <= MAX_SNR_DB:
        raise NoiseError(f"noise condition {spec!r}: SNR must be between {MIN_SNR_DB:g} and {MAX_SNR_DB:g} dB")
    return value


def parse_condition(text: str) -> NoiseCondition:
    """A noise condition, then optional channel stages joined by ``+``: ``white@10+codec:opus@12k+loss5``.

    A channel alone (``codec:mulaw8k``) is clean speech on that line. The canonical spec drops ``clean+``.
    """
    tokens = [t.strip() for t in text.strip().split("+")]
    if not all(tokens):
        raise NoiseError(f"condition {text.strip()!r} has an empty part around '+'; use {FULL_USAGE}")
    first_is_channel = is_channel(tokens[0])
    noise = _parse_noise("clean" if first_is_channel else tokens[0])
    stages = _parse_stages(text.strip(), tokens[0 if first_is_channel else 1 :])
    if not stages:
        return noise
    tail = "+".join(c.spec for c in stages)
    return dataclasses.replace(noise, spec=tail if noise.kind == "clean" else f"{noise.spec}+{tail}", channel=stages)


def _parse_stages(text: str, tokens: Sequence[str]) -> tuple[ChannelCondition, ...]:
    stages, i = [], 0
    while i < len(tokens):
        token = tokens[i]
        loss = tokens[i + 1] if i + 1 < len(tokens) and tokens[i + 1].startswith("loss") else None
        if not is_channel(token):
            raise NoiseError(
                f"condition {text!r}: {token!r} is not a channel stage; after the noise use {CHANNEL_USAGE}"
            )
        try:
            stages.append(parse_channel(token, loss))
        except ChannelError as exc:
            raise NoiseError(str(exc)) from None
        i += 2 if loss else 1
    return tuple(stages)


def _parse_noise(text: str) -> NoiseCondition:
    spec = text.strip()
    if spec == "clean":
        return NoiseCondition("clean", "clean")
    if "@" not in spec:
        raise NoiseError(f"noise condition {spec!r} has no level; use {USAGE}")
    head, value = spec.rsplit("@", 1)
    if head == "reverb":
        number = _number(value, spec)
        if not 0.05 <= number <= MAX_RT60:
            raise NoiseError(f"noise condition {spec!r}: RT60 must be between 0.05 and {MAX_RT60} seconds")
        return NoiseCondition(f"reverb@{number:g}", "reverb", rt60=number)
    if head in ("white", "pink", "babble"):
        number = _snr(value, spec)
        return NoiseCondition(f"{head}@{number:g}", head, snr_db=number)
    if head.startswith("file:"):
        directory, number = head[5:], _snr(value, spec)
        noise_files(directory)  # fail now, not in the middle of a run
        return NoiseCondition(f"file:{directory}@{number:g}", "file", snr_db=number, directory=directory)
    raise NoiseError(f"unknown noise kind in {spec!r}; use {USAGE}")


def parse_conditions(text: str | Sequence[str]) -> tuple[NoiseCondition, ...]:
    """``"clean,white@10"`` or a list of specs; duplicates are dropped, order kept."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    conditions = [parse_condition(p) for p in parts if p.strip()]
    if not conditions:
        raise NoiseError(f"no noise condition given; use {USAGE}")
    return tuple({c.spec: c for c in conditions}.values())


@functools.lru_cache(maxsize=16)
def noise_files(directory: str) -> tuple[Path, ...]:
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise NoiseError(f"noise folder {directory!r} does not exist")
    files = tuple(sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()))
    if not files:
        raise NoiseError(f"noise folder {directory!r} holds no audio files ({', '.join(AUDIO_SUFFIXES)})")
    return files


@functools.lru_cache(maxsize=32)
def _noise_file_audio(path: Path) -> np.ndarray:
    try:
        return load_audio(path)
    except AudioError as exc:  # the engine's message names the file already: it said "noise file P: P: ..."
        raise NoiseError(f"noise file {naming_file(path, exc)}") from exc


def check_noise_files(conditions: Sequence[NoiseCondition]) -> None:
    """Decode every file of each file-noise folder before a run: a corrupt one failed the run mid-way, when the
    generator first drew it, and left a "failed" run in the store. Called once per run, not per parse: the
    workers parse conditions per batch and need only the files they draw."""
    for path in sorted({p for c in conditions if c.kind == "file" for p in noise_files(c.directory or "")}):
        _decodes(path)


@functools.cache
def _decodes(path: Path) -> None:  # a failure is not cached: a file put right is read again
    _noise_file_audio(path)


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "little")


def generator(seed: int, utterance_id: str, condition: NoiseCondition) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), _stable(utterance_id), _stable(condition.spec)]))


# The speech level behind every SNR: spans padded 0.2 s and cut at 0.16 s pauses, fixed here so that a change of
# the decoder's VAD defaults (asr.vad.VadOptions) never changes how loud a condition's noise is.
SNR_VAD = VadOptions(min_silence_seconds=0.16, speech_pad_seconds=0.2)


def speech_mask(clean: np.ndarray) -> np.ndarray:
    """Samples the VAD calls speech; the whole utterance when it finds none (tones, very short clips)."""
    mask = np.zeros(clean.size, bool)
    for span in speech_spans(clean, SNR_VAD):
        mask[span.start : span.end] = True
    if not mask.any():
        mask[:] = True
    return mask


def snr_db(clean: np.ndarray, noise: np.ndarray, mask: np.ndarray) -> float:
    """10 log10 of speech power over noise power, both over the masked (speech) samples."""
    s = float(np.sum(np.square(clean[mask], dtype=np.float64)))
    n = float(np.sum(np.square(noise[mask], dtype=np.float64)))
    if n == 0:
        return math.inf
    return 10 * math.log10(s / n) if s > 0 else -math.inf


def white_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    return rng.standard_normal(n)


def pink_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """1/f power spectrum, shaped in the frequency domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1] if n > 1 else 1.0
    return np.fft.irfft(spectrum / np.sqrt(freqs), n)


def _tile(audio: np.ndarray, n: int, start: int) -> np.ndarray:
    reps = math.ceil((start + n) / max(audio.size, 1))
    return np.tile(audio, reps)[start : start + n] if audio.size else np.zeros(n)


def babble_noise(
    rng: np.random.Generator, n: int, utterance_id: str, pool: Mapping[str, np.ndarray]
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Sum of other utterances of the set, each at equal power, from a random offset (looped)."""
    others = sorted(k for k in pool if k != utterance_id and pool[k].size)
    if not others:
        raise NoiseError("babble noise needs other utterances in the dataset; use at least two utterances")
    picks = rng.choice(len(others), size=min(BABBLE_TALKERS, len(others)), replace=False)
    total = np.zeros(n)
    chosen = []
    for i in picks:
        source = pool[others[i]].astype(np.float64)
        part = _tile(source, n, int(rng.integers(0, source.size)))
        power = np.mean(part**2)
        total += part / math.sqrt(power) if power > 0 else part
        chosen.append(others[i])
    return total, tuple(chosen)


def file_noise(rng: np.random.Generator, n: int, directory: str) -> tuple[np.ndarray, Path, float]:
    files = noise_files(directory)
    path = files[int(rng.integers(0, len(files)))]
    audio = _noise_file_audio(path).astype(np.float64)
    start = int(rng.integers(0, audio.size - n + 1)) if audio.size > n else 0
    return _tile(audio, n, start), path, start / SAMPLE_RATE


def _scale_to_snr(clean: np.ndarray, noise: np.ndarray, mask: np.ndarray, target_db: float) -> np.ndarray:
    p_speech = float(np.mean(np.square(clean[mask], dtype=np.float64)))
    p_noise = float(np.mean(np.square(noise[mask], dtype=np.float64)))
    if p_noise == 0 or p_speech == 0:
        return np.zeros_like(noise)
    return noise * math.sqrt(p_speech / (p_noise * 10 ** (target_db / 10)))


def _finish(clean: np.ndarray, added: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Add, guard the peak by scaling everything, and measure the SNR of the float32 result."""
    mix = clean.astype(np.float64) + added
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    gain = PEAK_LIMIT / peak if peak > PEAK_LIMIT else 1.0
    out = (mix * gain).astype(np.float32)
    reference = (clean.astype(np.float64) * gain).astype(np.float32)
    measured = snr_db(reference, out.astype(np.float64) - reference, mask)
    return out, measured, gain


class Mixer:
    """Applies noise conditions to the utterances of one dataset, deterministically per seed.

    ``pool`` maps utterance ids to clean audio: the talkers that babble noise is made of (the dataset itself).
    Speech masks are computed once per utterance and reused for every condition.
    """

    def __init__(self, seed: int = 0, pool: Mapping[str, np.ndarray] | None = None) -> None:
        self.seed = int(seed)
        self.pool = pool or {}
        self._masks: dict[str, np.ndarray] = {}

    def mask(self, utterance_id: str, clean: np.ndarray) -> np.ndarray:
        cached = self._masks.get(utterance_id)
        if cached is None or cached.size != clean.size:
            cached = self._masks[utterance_id] = speech_mask(clean)
        return cached

    def mix(self, utterance_id: str, clean: np.ndarray, condition: NoiseCondition) -> Mixed:
        """The noise at its SNR, then each channel stage (its packet losses drawn from the same seed)."""
        mixed = self._mix_noise(utterance_id, clean, condition.noise_only)
        if not condition.channel:
            return mixed
        audio, details, lost = mixed.audio, [], None
        for stage in condition.channel:
            result = apply_channel(audio, stage, generator(self.seed, utterance_id, stage))
            audio = result.audio
            details.append(result.detail)
            if stage.loss_percent:
                lost = (lost or 0) + (result.packets_lost or 0)
        channel = "+".join(c.spec for c in condition.channel)
        provenance = dataclasses.replace(
            mixed.provenance,
            condition=condition.spec,
            channel=channel,
            channel_detail="; ".join(details),
            packets_lost=lost,
        )
        return Mixed(audio, provenance)

    def _mix_noise(self, utterance_id: str, clean: np.ndarray, condition: NoiseCondition) -> Mixed:
        clean = np.asarray(clean, np.float32)
        base = Provenance(condition.spec, condition.kind, self.seed)
        if condition.kind == "clean":
            return Mixed(clean, base)
        rng = generator(self.seed, utterance_id, condition)
        if condition.kind == "reverb":
            return self._reverb(utterance_id, clean, condition, rng, base)
        n, extra = clean.size, {}
        if condition.kind == "white":
            noise = white_noise(rng, n)
        elif condition.kind == "pink":
            noise = pink_noise(rng, n)
        elif condition.kind == "babble":
            noise, sources = babble_noise(rng, n, utterance_id, self.pool)
            extra = {"babble_sources": sources}
        else:
            noise, path, offset = file_noise(rng, n, condition.directory or "")
            extra = {"noise_file": str(path), "noise_offset": round(offset, 6)}
        mask = self.mask(utterance_id, clean)
        out, measured, gain = _finish(clean, _scale_to_snr(clean, noise, mask, condition.snr_db or 0.0), mask)
        return Mixed(
            out, _replace(base, snr_db_requested=condition.snr_db, snr_db_measured=measured, gain=gain, **extra)
        )

    def _reverb(self, utterance_id, clean, condition, rng, base) -> Mixed:
        rir = synthetic_rir(rng, condition.rt60 or 0.5)
        wet = convolve(clean.astype(np.float64), rir)
        mask = self.mask(utterance_id, clean)
        p_clean = float(np.mean(np.square(clean[mask], dtype=np.float64)))
        p_wet = float(np.mean(wet[mask] ** 2))
        if p_wet > 0:
            wet *= math.sqrt(p_clean / p_wet)  # same speech level as the dry utterance
        peak = float(np.max(np.abs(wet))) if wet.size else 0.0
        gain = PEAK_LIMIT / peak if peak > PEAK_LIMIT else 1.0
        provenance = _replace(base, rt60=condition.rt60, rt60_measured=measure_rt60(rir), gain=gain)
        return Mixed((wet * gain).astype(np.float32), provenance)


def _replace(p: Provenance, **changes) -> Provenance:
    from dataclasses import replace

    return replace(p, **changes)
