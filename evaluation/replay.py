"""One stored utterance again: its clean and noisy audio, and its word alignment (the dashboard's detail view).

Noisy audio is not stored: it is rebuilt from the run's settings (dataset, seed, condition), which the mixer
turns into the same samples every time. Datasets are cached per run settings so that clicking through rows of
one run decodes the dataset once.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.datasets import DatasetOptions, LoadedDataset, Sample, load_dataset
from evaluation.noise import Mixer, Provenance, parse_condition
from evaluation.scoring import AlignedSpan, align, normalizer_for
from evaluation.store import RunSettings, Store
from evaluation.worker import scoring_language

logger = logging.getLogger(__name__)

_cache: dict[tuple, tuple[LoadedDataset, Mixer]] = {}
_lock = threading.Lock()
CACHE_SIZE = 2  # datasets kept decoded (a run being browsed and the one it is compared with)


@dataclass(frozen=True)
class UtteranceAudio:
    sample: Sample = field(repr=False)
    clean: np.ndarray = field(repr=False)  # mono float32 at 16 kHz, as the dataset has it
    noisy: np.ndarray = field(repr=False)  # what the model heard
    provenance: Provenance


def _dataset(
    settings: RunSettings, store: Store, allowed: Callable[[Path], bool] | None = None
) -> tuple[LoadedDataset, Mixer]:
    key = (
        allowed,
        settings.dataset,
        settings.limit,
        settings.min_words,
        settings.text_column,
        settings.group_columns,
        settings.speaker_column,
        settings.split,
        settings.seed,
    )
    with _lock:
        if key in _cache:
            return _cache[key]
    options = DatasetOptions(
        source=settings.dataset,
        text_column=settings.text_column,
        group_columns=settings.group_columns,
        speaker_column=settings.speaker_column,
        limit=settings.limit,
        min_words=settings.min_words,
        split=settings.split,
        audio_allowed=allowed,
    )
    data = load_dataset(options, store)
    mixer = Mixer(settings.seed, {s.id: s.audio for s in data.samples})
    with _lock:
        while len(_cache) >= CACHE_SIZE:
            _cache.pop(next(iter(_cache)))
        _cache[key] = (data, mixer)
    return data, mixer


def utterance_audio(
    store: Store, run_id: str, item_id: str, noise: str, audio_allowed: Callable[[Path], bool] | None = None
) -> UtteranceAudio:
    """The clean and noisy audio of one row of a run; KeyError when the dataset no longer holds it (or its audio
    lies outside ``audio_allowed``, the dashboard's roots: see ``DatasetOptions``)."""
    settings = store.runs.get_run(run_id).settings
    data, mixer = _dataset(settings, store, audio_allowed)
    sample = next((s for s in data.samples if s.id == item_id), None)
    if sample is None:
        raise KeyError(f"utterance {item_id!r} is no longer in dataset {settings.dataset!r}")
    mixed = mixer.mix(sample.id, sample.audio, parse_condition(noise))
    return UtteranceAudio(sample, sample.audio, mixed.audio, mixed.provenance)


def check_regenerated(stored: Mapping[str, Any], audio: UtteranceAudio) -> bool:
    """Whether a rebuilt mix matches what the run recorded (its measured SNR), i.e. the data did not change."""
    old, new = stored.get("snr_db_measured"), audio.provenance.snr_db_measured
    if old is None or new is None or (isinstance(old, float) and math.isnan(old)):
        return True
    return abs(float(old) - float(new)) < 1e-3


def row_alignment(row: Mapping[str, Any], normalizer: str) -> tuple[AlignedSpan, ...]:
    """The word alignment of a stored row (reference vs hypothesis) under the run's normalizer setting."""
    detected = row.get("detected_language")
    language = scoring_language(row, str(detected) if isinstance(detected, str) and detected else None)
    return align(
        str(row.get("reference") or ""), str(row.get("hypothesis") or ""), normalizer_for(language, normalizer)
    )
