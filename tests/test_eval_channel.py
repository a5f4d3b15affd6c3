"""Channel conditions on a real recording: every codec round-trips through PyAV with the length and alignment
kept and the spectrum limited to what the line carries; the grammar that joins noise and channel; loss seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from asr.audio import SAMPLE_RATE, load_audio
from evaluation.noise import Mixer, NoiseError, parse_condition, parse_conditions

REAL = Path("/usr/share/asterisk/sounds/en_US_f_Allison/agent-alreadyon.wav")  # a real voice (Debian package)

# (condition, highest frequency the line carries: energy above it must be gone, lowest one it keeps)
CODECS = [
    ("codec:mulaw8k", 4000, None),
    ("codec:alaw8k", 4000, None),
    ("codec:amrnb@12.2k", 4000, None),
    ("codec:g722", None, 7000),
    ("codec:opus@12k", None, 7000),
    ("codec:opus@12k+loss5", None, 7000),
    ("codec:mp3@16k", 6000, None),
    ("band:300-3400", 3500, None),
]


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    """The real prompt (8 kHz telephone audio); the tests add white noise at 20 dB so that there is energy up to
    8 kHz for a narrowband line to remove."""
    if not REAL.exists():
        pytest.skip(f"{REAL} is missing (scripts/setup.sh installs asterisk-core-sounds-en-wav)")
    return load_audio(REAL)


def band_db(audio: np.ndarray, low: float, high: float) -> float:
    """Energy between ``low`` and ``high`` Hz relative to the whole signal, in dB."""
    power = np.abs(np.fft.rfft(audio.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(audio.size, 1 / SAMPLE_RATE)
    return float(10 * np.log10(power[(freqs >= low) & (freqs < high)].sum() / power.sum() + 1e-30))


def lag(out: np.ndarray, ref: np.ndarray, max_lag: int = 400) -> int:
    """Samples by which ``out`` trails ``ref`` (negative: it leads)."""
    n = min(ref.size, 3 * SAMPLE_RATE)
    c = np.correlate(out[: n + max_lag], ref[max_lag:n], "valid")
    return int(np.argmax(c)) - max_lag


@pytest.mark.parametrize(("spec", "cut_above", "keeps_up_to"), CODECS)
def test_codec_round_trip(clip, spec, cut_above, keeps_up_to):
    mixer = Mixer(seed=7)
    noisy = mixer.mix("agent", clip, parse_condition("white@20")).audio
    mixed = mixer.mix("agent", clip, parse_condition(f"white@20+{spec}"))
    out = mixed.audio
    assert out.dtype == np.float32 and out.size == clip.size  # duration kept to the sample
    assert np.isfinite(out).all()
    assert abs(lag(out, noisy)) <= 32, "the codec's priming samples must be cut (2 ms at most)"
    assert band_db(noisy, 4100, 8000) > -35  # the input does have wideband content
    if cut_above is not None:
        assert band_db(out, cut_above + 100, 8000) < -60, f"{spec} must carry nothing above {cut_above} Hz"
    if keeps_up_to is not None:
        assert band_db(out, 4100, keeps_up_to) > band_db(noisy, 4100, keeps_up_to) - 6, f"{spec} is wideband"
    speech = band_db(out, 350, 3300)
    assert speech > -10, "the speech band must survive"
    p = mixed.provenance
    assert p.condition == parse_condition(f"white@20+{spec}").spec
    assert p.channel == spec and p.channel_detail and p.snr_db_measured == pytest.approx(20, abs=0.1)


def test_band_keeps_nothing_below_low_edge(clip):
    out = Mixer(0).mix("agent", clip, parse_condition("band:300-3400")).audio
    assert band_db(out, 0, 250) < -60 and band_db(clip, 0, 250) > -20


def test_loss_is_seeded_and_recorded(clip):
    condition = parse_condition("codec:opus@12k+loss10")
    a = Mixer(3).mix("agent", clip, condition)
    b = Mixer(3).mix("agent", clip, condition)
    c = Mixer(4).mix("agent", clip, condition)
    assert np.array_equal(a.audio, b.audio), "same seed, same utterance: the same packets are lost"
    assert not np.array_equal(a.audio, c.audio)
    assert a.provenance.packets_lost and a.provenance.packets_lost == b.provenance.packets_lost
    assert "packets lost" in a.provenance.channel_detail
    clean = Mixer(3).mix("agent", clip, parse_condition("codec:opus@12k"))
    assert clean.provenance.packets_lost is None


def test_noise_under_a_channel_is_the_plain_noise(clip):
    """The noise of ``white@10+codec:g722`` is drawn exactly as ``white@10``'s: a paired codec comparison."""
    mixer = Mixer(5)
    plain = mixer.mix("agent", clip, parse_condition("white@10"))
    both = mixer.mix("agent", clip, parse_condition("white@10+codec:g722"))
    assert both.provenance.snr_db_measured == plain.provenance.snr_db_measured
    assert lag(both.audio, plain.audio) == 0


def test_grammar_canonical():
    specs = [c.spec for c in parse_conditions("clean+codec:mulaw8k, white@10dB+codec:opus@12k+loss5,codec:amrnb")]
    assert specs == ["codec:mulaw8k", "white@10+codec:opus@12k+loss5", "codec:amrnb@12.2k"]
    c = parse_condition("pink@5+band:300-3400+codec:alaw8k")
    assert [s.spec for s in c.channel] == ["band:300-3400", "codec:alaw8k"] and c.noise_only.spec == "pink@5"


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("codec:gsm", "no libgsm encoder"),
        ("codec:speex", "unknown codec"),
        ("white@10+loss5", "not a channel stage"),
        ("codec:mulaw8k+white@10", "not a channel stage"),
        ("codec:opus@100k", "6k to 64k"),
        ("codec:amrnb@11k", "12.2k"),
        ("codec:g722+loss5", "codec:opus only"),
        ("codec:opus@12k+loss80", "at most 50%"),
        ("band:3400-300", "LOW < HIGH"),
        ("white@10++codec:g722", "empty part"),
    ],
)
def test_bad_conditions_one_line(bad, words):
    with pytest.raises(NoiseError, match=words) as info:
        parse_condition(bad)
    assert "\n" not in str(info.value)
