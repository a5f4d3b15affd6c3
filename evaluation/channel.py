"""Channel conditions: what a phone line or a VoIP link does to speech after the microphone.

``codec:mulaw8k`` and ``codec:alaw8k`` (G.711 telephony), ``codec:amrnb@12.2k`` (the mobile-network codec),
``codec:g722`` (wideband VoIP), ``codec:opus@12k`` with optional packet loss (``codec:opus@12k+loss5``),
``codec:mp3@16k`` and ``band:300-3400`` (the telephone band alone). They follow the noise in a condition
(``white@10+codec:opus@12k``, see :func:`evaluation.noise.parse_condition`): noise is in the room, the codec
is on the line.

Why it is built this way:
- The audio is really encoded and decoded with FFmpeg's codecs through PyAV (the same library that reads
  files), not imitated by a filter, so codec artefacts (AMR's LPC buzz, Opus's band folding, G.711 companding
  noise) are the real ones. A codec this PyAV build lacks (its wheel has no GSM full-rate encoder) is refused
  when the condition is parsed, with one line, never in the middle of a run.
- The output is exactly as long as the input and aligned to it: the encoder's priming samples (the first
  packet's negative timestamp) are cut, and the tail is padded or cut. Word times and the VAD's speech mask of
  the clean utterance therefore still apply.
- Lost packets are chosen by a generator seeded like the noise (run seed, utterance id, condition), and are
  replaced by silence: FFmpeg cannot be asked to conceal a packet it never got without ending the stream, so
  this is loss without concealment, the worst case of a jitter buffer that gives up.
"""

from __future__ import annotations

import fractions
import functools
import math
import re
from dataclasses import dataclass, field

import numpy as np

from asr.audio import SAMPLE_RATE, resample

CHANNEL_USAGE = (
    "codec:mulaw8k, codec:alaw8k, codec:amrnb@12.2k, codec:g722, codec:opus@12k[+lossPCT], codec:mp3@16k "
    "or band:LOW-HIGH (Hz)"
)
MAX_LOSS_PERCENT = 50.0
BAND_EDGE_HZ = 50.0  # width of the raised-cosine edge of band:LOW-HIGH (a brick wall rings)
PCM_FRAME = 160  # samples per packet for the frameless G.711 encoders (20 ms at 8 kHz, as RTP sends)


class ChannelError(ValueError):
    """A channel condition that cannot be used, quoting it and saying what is expected."""


@dataclass(frozen=True)
class Codec:
    encoder: str  # FFmpeg encoder name
    decoder: str  # FFmpeg decoder name
    rate: int  # sample rate on the line
    bitrates: tuple[int, ...] = ()  # allowed bits per second (or its bounds, with ``bitrate_range``); () is fixed
    default_bitrate: int | None = None
    loss: bool = False  # whether +lossPCT is offered
    options: tuple[tuple[str, str], ...] = ()  # encoder options
    bitrate_range: bool = False  # ``bitrates`` is (lowest, highest), any value between allowed
    decoder_skips_priming: bool = False  # the decoder cuts the priming itself (libmp3lame tells FFmpeg's mp3 decoder)


MP3_16K_RATES = (8000, 16000, 24000, 32000, 40000, 48000, 56000, 64000, 80000, 96000, 112000, 128000, 144000, 160000)
CODECS = {
    "mulaw8k": Codec("pcm_mulaw", "pcm_mulaw", 8000),
    "alaw8k": Codec("pcm_alaw", "pcm_alaw", 8000),
    "amrnb": Codec(
        "libopencore_amrnb", "libopencore_amrnb", 8000, (4750, 5150, 5900, 6700, 7400, 7950, 10200, 12200), 12200
    ),
    "g722": Codec("g722", "g722", 16000),
    "opus": Codec("libopus", "libopus", 16000, (6000, 64000), 12000, True, (("application", "voip"),), True),
    "mp3": Codec("libmp3lame", "mp3", 16000, MP3_16K_RATES, 16000, decoder_skips_priming=True),
}
CHANNEL_CHOICES = (  # what the Validate page offers
    "codec:mulaw8k",
    "codec:alaw8k",
    "codec:amrnb@12.2k",
    "codec:g722",
    "codec:opus@12k",
    "codec:opus@12k+loss5",
    "codec:mp3@16k",
    "band:300-3400",
)
MISSING = {"gsm": "libgsm", "gsm-fr": "libgsm"}  # asked for, but no wheel of PyAV has an encoder for it


@dataclass(frozen=True)
class ChannelCondition:
    spec: str  # canonical text, e.g. "codec:opus@12k+loss5", "band:300-3400"
    kind: str  # "codec" or "band"
    codec: str | None = None  # a key of CODECS
    bitrate: int | None = None  # bits per second, for the codecs that take one
    loss_percent: float = 0.0  # packets dropped (opus)
    low_hz: float | None = None  # band
    high_hz: float | None = None  # band


@dataclass(frozen=True)
class ChannelResult:
    audio: np.ndarray = field(repr=False)  # mono float32 at SAMPLE_RATE, as long as the input
    detail: str  # how it was made, e.g. "libopus 16000 Hz 12000 b/s, 3 of 276 packets lost"
    packets: int | None = None
    packets_lost: int | None = None


def _bitrate(text: str, spec: str) -> int:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(k?)", text.strip().lower())
    if not match:
        raise ChannelError(f"channel condition {spec!r}: {text!r} is not a bitrate (e.g. 12k or 12.2k)")
    value = float(match.group(1)) * (1000 if match.group(2) else 1)
    return int(round(value))


@functools.cache
def has_codec(name: str, mode: str) -> bool:
    import av

    try:
        av.codec.Codec(name, mode)
    except (av.codec.codec.UnknownCodecError, ValueError):
        return False
    return True


def _parse_codec(spec: str, body: str, loss: float) -> ChannelCondition:
    name, _, rate_text = body.partition("@")
    if name in MISSING:
        raise ChannelError(
            f"channel condition {spec!r}: this PyAV build has no {MISSING[name]} encoder; use {CHANNEL_USAGE}"
        )
    codec = CODECS.get(name)
    if codec is None:
        raise ChannelError(f"unknown codec in {spec!r}; use {CHANNEL_USAGE}")
    for ffmpeg_name, mode in ((codec.encoder, "w"), (codec.decoder, "r")):
        if not has_codec(ffmpeg_name, mode):
            what = "encoder" if mode == "w" else "decoder"
            raise ChannelError(f"channel condition {spec!r}: this PyAV build has no {ffmpeg_name} {what}")
    if loss and not codec.loss:
        raise ChannelError(f"channel condition {spec!r}: packet loss (+loss) is offered for codec:opus only")
    if not codec.bitrates:
        if rate_text:
            raise ChannelError(f"channel condition {spec!r}: codec:{name} has a fixed bitrate; write codec:{name}")
        return ChannelCondition(f"codec:{name}", "codec", name)
    bitrate = _bitrate(rate_text, spec) if rate_text else codec.default_bitrate
    low, high = codec.bitrates[0], codec.bitrates[-1]
    if not (low <= bitrate <= high if codec.bitrate_range else bitrate in codec.bitrates):
        allowed = (
            f"{low / 1000:g}k to {high / 1000:g}k"
            if codec.bitrate_range
            else ", ".join(f"{b / 1000:g}k" for b in codec.bitrates)
        )
        raise ChannelError(f"channel condition {spec!r}: codec:{name} takes a bitrate of {allowed}")
    text = f"codec:{name}@{bitrate / 1000:g}k" + (f"+loss{loss:g}" if loss else "")
    return ChannelCondition(text, "codec", name, bitrate, loss)


def _parse_band(spec: str, body: str) -> ChannelCondition:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)", body.strip())
    if not match:
        raise ChannelError(f"channel condition {spec!r}: expected band:LOW-HIGH in Hz, e.g. band:300-3400")
    low, high = float(match.group(1)), float(match.group(2))
    if not 0 <= low < high <= SAMPLE_RATE / 2:
        raise ChannelError(f"channel condition {spec!r}: need 0 <= LOW < HIGH <= {SAMPLE_RATE // 2} Hz")
    return ChannelCondition(f"band:{low:g}-{high:g}", "band", low_hz=low, high_hz=high)


def parse_loss(text: str, spec: str) -> float:
    """``loss5`` -> 5.0 (percent of packets)."""
    try:
        value = float(text[4:].removesuffix("%"))
    except ValueError:
        raise ChannelError(f"channel condition {spec!r}: {text!r} is not lossPCT, e.g. loss5") from None
    if not (math.isfinite(value) and 0 < value <= MAX_LOSS_PERCENT):
        raise ChannelError(f"channel condition {spec!r}: packet loss must be above 0 and at most {MAX_LOSS_PERCENT:g}%")
    return value


def is_channel(token: str) -> bool:
    return token.startswith(("codec:", "band:"))


def parse_channel(token: str, loss: str | None = None) -> ChannelCondition:
    """One channel stage: ``codec:opus@12k`` (with ``loss="loss5"`` when ``+loss5`` followed it) or ``band:...``."""
    token = token.strip()
    spec = token + (f"+{loss}" if loss else "")
    kind, _, body = token.partition(":")
    if kind == "band":
        if loss:
            raise ChannelError(f"channel condition {spec!r}: packet loss (+loss) is offered for codec:opus only")
        return _parse_band(spec, body)
    if kind == "codec":
        return _parse_codec(spec, body.strip().lower(), parse_loss(loss, spec) if loss else 0.0)
    raise ChannelError(f"unknown channel condition {spec!r}; use {CHANNEL_USAGE}")


def band_limit(audio: np.ndarray, low: float, high: float) -> np.ndarray:
    """Zero-phase band-pass in the frequency domain with raised-cosine edges (keeps length and alignment)."""
    n = audio.size
    if n == 0:
        return audio
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    half = BAND_EDGE_HZ / 2

    def edge(x: np.ndarray) -> np.ndarray:  # 0 below -half, 1 above +half
        return 0.5 - 0.5 * np.cos(np.pi * np.clip((x + half) / BAND_EDGE_HZ, 0.0, 1.0))

    gain = (edge(freqs - low) if low > 0 else 1.0) * edge(high - freqs)
    return np.fft.irfft(np.fft.rfft(audio.astype(np.float64)) * gain, n).astype(np.float32)


def apply_channel(
    audio: np.ndarray, condition: ChannelCondition, rng: np.random.Generator | None = None
) -> ChannelResult:
    """The audio as it comes out of the line: same length, same rate, float32."""
    audio = np.asarray(audio, np.float32)
    if condition.kind == "band":
        return ChannelResult(band_limit(audio, condition.low_hz or 0.0, condition.high_hz or 0.0), condition.spec)
    codec = CODECS[condition.codec or ""]
    if audio.size == 0:
        return ChannelResult(audio, condition.spec, 0, 0)
    line = resample(audio, SAMPLE_RATE, codec.rate) if codec.rate != SAMPLE_RATE else audio
    packets, frame_size, priming = _encode(line, codec, condition.bitrate)
    lost = _losses(len(packets), condition.loss_percent, rng)
    decoded, decoded_rate = _decode(packets, codec, lost, frame_size)
    skip = 0 if codec.decoder_skips_priming else int(round(priming * decoded_rate / codec.rate))
    out = resample(decoded[skip:], decoded_rate, SAMPLE_RATE) if decoded_rate != SAMPLE_RATE else decoded[skip:]
    out = _fit(out, audio.size)
    rate_text = f" {condition.bitrate} b/s" if condition.bitrate else ""
    detail = f"{codec.encoder} {codec.rate} Hz{rate_text}"
    if condition.loss_percent:
        detail += f", {int(lost.sum())} of {len(packets)} packets lost (silence)"
    return ChannelResult(out, detail, len(packets), int(lost.sum()))


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    if audio.size >= n:
        return np.ascontiguousarray(audio[:n], dtype=np.float32)
    return np.concatenate([audio, np.zeros(n - audio.size, np.float32)]).astype(np.float32)


def _losses(n: int, percent: float, rng: np.random.Generator | None) -> np.ndarray:
    if not percent:
        return np.zeros(n, bool)
    if rng is None:
        raise ValueError("packet loss needs a seeded generator")
    return rng.random(n) < percent / 100.0


def _encode(line: np.ndarray, codec: Codec, bitrate: int | None) -> tuple[list, int, int]:
    """Packets, the samples per packet, and the encoder's priming samples (cut from the decoded start)."""
    import av

    enc = av.CodecContext.create(codec.encoder, "w")
    enc.sample_rate = codec.rate
    enc.layout = "mono"
    fmt = next(f.name for f in enc.codec.audio_formats if f.name in ("s16", "s16p"))
    enc.format = fmt
    if bitrate:
        enc.bit_rate = bitrate
    enc.time_base = fractions.Fraction(1, codec.rate)
    if codec.options:
        enc.options = dict(codec.options)
    enc.open()
    size = enc.frame_size or PCM_FRAME
    pcm = np.clip(np.rint(line.astype(np.float64) * 32767.0), -32768, 32767).astype(np.int16)
    pcm = np.pad(pcm, (0, (-pcm.size) % size))
    packets = []
    for start in range(0, pcm.size, size):
        frame = av.AudioFrame.from_ndarray(pcm[start : start + size].reshape(1, -1), format=fmt, layout="mono")
        frame.sample_rate, frame.pts = codec.rate, start
        packets.extend(enc.encode(frame))
    packets.extend(enc.encode(None))
    first = packets[0].pts if packets and packets[0].pts is not None else 0
    return packets, size, max(-int(first), 0)


def _decode(packets: list, codec: Codec, lost: np.ndarray, frame_size: int) -> tuple[np.ndarray, int]:
    import av

    dec = av.CodecContext.create(codec.decoder, "r")
    dec.sample_rate, dec.layout = codec.rate, "mono"
    parts, rate = [], codec.rate
    for packet, gone in zip(packets, lost, strict=True):
        if gone:
            samples = packet.duration or frame_size
            parts.append(np.zeros(int(round(samples * rate / codec.rate)), np.float32))
            continue
        for frame in dec.decode(packet):
            rate = frame.sample_rate
            parts.append(_frame_float(frame))
    for frame in dec.decode(None):
        parts.append(_frame_float(frame))
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), rate


def _frame_float(frame) -> np.ndarray:
    data = frame.to_ndarray()
    if data.ndim == 2 and data.shape[0] > 1 and frame.format.is_planar:
        data = data.mean(axis=0)
    data = data.reshape(-1)
    if np.issubdtype(data.dtype, np.integer):
        return data.astype(np.float32) / float(2 ** (8 * data.dtype.itemsize - 1))
    return data.astype(np.float32)
