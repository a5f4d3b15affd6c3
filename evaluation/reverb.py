"""Synthetic reverberation: an exponentially decaying impulse response, its measured RT60, and the convolution.

Pure signal processing, kept apart from :mod:`evaluation.noise` (which mixes the conditions): the reverb condition
and the tests that check its RT60 both use it.
"""

from __future__ import annotations

import math

import numpy as np

from asr.audio import SAMPLE_RATE


def synthetic_rir(rng: np.random.Generator, rt60: float) -> np.ndarray:
    """Exponentially decaying Gaussian noise (60 dB down at ``rt60``) after a unit direct path."""
    n = max(int(1.2 * rt60 * SAMPLE_RATE), 2)
    t = np.arange(n) / SAMPLE_RATE
    rir = rng.standard_normal(n) * np.exp(-3 * math.log(10) * t / rt60)
    rir[0] = 0.0
    rir /= math.sqrt(np.sum(rir**2))
    rir[0] = 1.0  # direct-to-reverberant ratio of 0 dB
    return rir


def measure_rt60(rir: np.ndarray) -> float:
    """Schroeder backward integration, T20 line fit from -5 to -25 dB, extrapolated to 60 dB."""
    energy = np.cumsum(rir[::-1] ** 2)[::-1]
    edc = 10 * np.log10(energy / energy[0] + 1e-300)
    t = np.arange(rir.size) / SAMPLE_RATE
    band = (edc <= -5) & (edc >= -25)
    if band.sum() < 2:
        return math.nan
    slope = np.polyfit(t[band], edc[band], 1)[0]
    return float(-60 / slope) if slope < 0 else math.nan


def convolve(audio: np.ndarray, rir: np.ndarray) -> np.ndarray:
    n = audio.size + rir.size - 1
    size = 1 << (n - 1).bit_length()
    out = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(rir, size), size)
    return out[: audio.size]
