"""Noise conditions on real speech: exact SNR over the speech region, determinism, provenance, reverb RT60."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from asr.audio import SAMPLE_RATE, load_audio
from evaluation.noise import Mixer, NoiseError, measure_rt60, parse_condition, parse_conditions, snr_db, speech_mask
from tests.conftest import HARVARD, speak


@pytest.fixture(scope="module")
def utterances(tmp_path_factory) -> dict[str, np.ndarray]:
    folder = tmp_path_factory.mktemp("noise")
    voices = ["en-us", "en-gb-scotland", "en-029", "en-gb-x-rp"]
    return {f"u{i}": load_audio(speak(HARVARD[i], folder / f"u{i}.wav", voice)) for i, voice in enumerate(voices)}


@pytest.fixture(scope="module")
def noise_dir(tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("noisefiles")
    rng = np.random.default_rng(5)
    t = np.arange(SAMPLE_RATE * 7) / SAMPLE_RATE
    hum = 0.2 * np.sin(2 * np.pi * 120 * t) + 0.05 * rng.standard_normal(t.size)
    sf.write(folder / "hum.wav", hum.astype(np.float32), SAMPLE_RATE)
    sf.write(folder / "short.flac", (0.1 * rng.standard_normal(SAMPLE_RATE // 2)).astype(np.float32), 44_100)
    return str(folder)


@pytest.mark.parametrize("kind", ["white", "pink", "babble", "file"])
@pytest.mark.parametrize("snr", [20, 5, 0, -5])
def test_measured_snr_equals_requested(utterances, noise_dir, kind, snr):
    spec = f"file:{noise_dir}@{snr}" if kind == "file" else f"{kind}@{snr}"
    mixer = Mixer(seed=1, pool=utterances)
    for uid, clean in utterances.items():
        mixed = mixer.mix(uid, clean, parse_condition(spec))
        assert mixed.audio.dtype == np.float32 and mixed.audio.size == clean.size
        assert np.max(np.abs(mixed.audio)) <= 1.0
        p = mixed.provenance
        assert p.snr_db_measured == pytest.approx(snr, abs=0.1)
        # independently: the noise actually added, over the speech the VAD finds in the clean utterance
        mask = speech_mask(clean)
        scaled = clean * p.gain
        assert snr_db(scaled, mixed.audio.astype(np.float64) - scaled, mask) == pytest.approx(snr, abs=0.1)
        assert mask.sum() < clean.size  # the region is the speech, not the whole file


def test_peak_guard_keeps_snr(utterances):
    loud = {k: v / np.max(np.abs(v)) * 0.99 for k, v in utterances.items()}
    mixed = Mixer(0, loud).mix("u0", loud["u0"], parse_condition("white@-5"))
    assert mixed.provenance.gain < 1.0 and np.max(np.abs(mixed.audio)) <= 0.99 + 1e-6
    assert mixed.provenance.snr_db_measured == pytest.approx(-5, abs=0.1)


def test_mixing_is_deterministic_per_seed(utterances):
    a = Mixer(3, utterances).mix("u1", utterances["u1"], parse_condition("babble@5"))
    b = Mixer(3, utterances).mix("u1", utterances["u1"], parse_condition("babble@5"))
    c = Mixer(4, utterances).mix("u1", utterances["u1"], parse_condition("babble@5"))
    assert np.array_equal(a.audio, b.audio) and a.provenance == b.provenance
    assert not np.array_equal(a.audio, c.audio)
    other = Mixer(3, utterances).mix("u2", utterances["u2"], parse_condition("babble@5"))
    assert "u1" not in a.provenance.babble_sources and "u2" not in other.provenance.babble_sources
    assert len(a.provenance.babble_sources) == 3  # every other utterance of this four-utterance set


def test_file_noise_provenance(utterances, noise_dir):
    mixed = Mixer(0, utterances).mix("u0", utterances["u0"], parse_condition(f"file:{noise_dir}@10"))
    p = mixed.provenance
    assert p.kind == "file" and p.noise_file.startswith(noise_dir) and p.noise_offset >= 0 and p.seed == 0


def test_reverb_has_the_requested_rt60(utterances):
    for rt60 in (0.3, 0.8):
        mixed = Mixer(0, utterances).mix("u0", utterances["u0"], parse_condition(f"reverb@{rt60}"))
        assert mixed.provenance.rt60_measured == pytest.approx(rt60, rel=0.1)
        assert not np.allclose(mixed.audio, utterances["u0"])
        mask = speech_mask(utterances["u0"])
        level = np.mean(mixed.audio[mask].astype(np.float64) ** 2) / np.mean(utterances["u0"][mask] ** 2)
        assert level == pytest.approx(1.0, rel=0.05) or mixed.provenance.gain < 1
    rng = np.random.default_rng(0)
    decay = rng.standard_normal(SAMPLE_RATE) * np.exp(-3 * np.log(10) * np.arange(SAMPLE_RATE) / SAMPLE_RATE / 0.5)
    assert measure_rt60(decay) == pytest.approx(0.5, rel=0.1)


def test_clean_is_untouched(utterances):
    mixed = Mixer(0, utterances).mix("u0", utterances["u0"], parse_condition("clean"))
    assert np.array_equal(mixed.audio, utterances["u0"]) and mixed.provenance.snr_db_measured is None


def test_parse_conditions():
    specs = [c.spec for c in parse_conditions("clean, white@10,pink@5dB,babble@-3,reverb@0.6,white@10")]
    assert specs == ["clean", "white@10", "pink@5", "babble@-3", "reverb@0.6"]
    assert [c.snr_db for c in parse_conditions("white@-20,pink@80")] == [-20.0, 80.0]  # the bounds themselves
    for bad, match in [
        ("white", "no level"),
        ("white@loud", "not a number"),
        ("thunder@5", "unknown noise kind"),
        ("reverb@30", "RT60"),
        ("file:/no/such/dir@5", "does not exist"),
        ("", "no noise condition"),
        ("white@1e9", "between -20 and 80 dB"),
        ("babble@-20.5", "between -20 and 80 dB"),
        ("file:/no/such/dir@100", "between -20 and 80 dB"),
    ]:
        with pytest.raises(NoiseError, match=match):
            parse_conditions(bad)


def test_babble_needs_other_utterances(utterances):
    with pytest.raises(NoiseError, match="other utterances"):
        Mixer(0, {"u0": utterances["u0"]}).mix("u0", utterances["u0"], parse_condition("babble@5"))


def test_an_undecodable_noise_file_is_named_once(utterances, tmp_path):
    """The message said 'noise file PATH: PATH: ...': the engine's error names the file already."""
    (tmp_path / "broken.wav").write_bytes(np.random.default_rng(0).bytes(2_000))
    with pytest.raises(NoiseError) as caught:
        Mixer(0, utterances).mix("u0", utterances["u0"], parse_condition(f"file:{tmp_path}@10"))
    message, path = str(caught.value), str(tmp_path / "broken.wav")
    assert message.startswith(f"noise file {path}: not a decodable audio file") and message.count(path) == 1
