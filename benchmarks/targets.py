"""What ``python -m benchmarks asr`` measures: an audio file, a dataset selection, or the real-speech long files.

A dataset is anything ``python -m evaluation run --dataset`` takes (``builtin-real:en``, a folder with
``metadata.csv``, a manifest); ``--min-words`` keeps utterances with at least that many reference words and
``--per-language N`` takes N of them per language, spread evenly, so the same selection comes out every time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from asr.audio import load_audio
from benchmarks.sidebyside import Target, Utterance
from evaluation.datasets import REFERENCE_LANGUAGE, DatasetOptions, load_dataset
from evaluation.sources import open_source

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".webm")


class TargetError(ValueError):
    """A target that cannot be benchmarked, with what to do."""


def file_target(path: Path, reference: str | None, language: str | None) -> Target:
    """One recording; the reference is ``--ref`` (text or a file), else ``NAME.txt`` beside it."""
    if reference is None and path.with_suffix(".txt").is_file():
        reference = path.with_suffix(".txt").read_text(encoding="utf-8")
    elif reference is not None and Path(reference).expanduser().is_file():
        reference = Path(reference).expanduser().read_text(encoding="utf-8")
    if not reference or not reference.strip():
        raise TargetError(f"{path}: no reference; pass --ref TEXT_OR_FILE or put {path.stem}.txt beside it")
    return Target(path.name, (Utterance(path.stem, load_audio(path), " ".join(reference.split()), language),))


def dataset_target(
    spec: str,
    split: str | None,
    min_words: int,
    per_language: int | None,
    limit: int | None,
    ids: Sequence[str] = (),
) -> Target:
    columns = open_source(spec, split=split).columns  # the language column, when there is one, is a group
    groups = (REFERENCE_LANGUAGE,) if REFERENCE_LANGUAGE in columns else ()
    data = load_dataset(DatasetOptions(spec, split=split, group_columns=groups))
    chosen = [s for s in data.samples if len(s.text.split()) >= min_words and (not ids or s.id in ids)]
    missing = sorted(set(ids) - {s.id for s in chosen})
    if missing:
        raise TargetError(f"dataset {spec}: no utterance {', '.join(missing)} (with {min_words}+ words)")
    if per_language:
        chosen = _spread_per_language(chosen, per_language)
    if limit:
        chosen = [chosen[int(i)] for i in np.unique(np.linspace(0, len(chosen) - 1, min(limit, len(chosen))).round())]
    if not chosen:
        raise TargetError(f"dataset {spec}: no utterance of {min_words}+ words")
    notes = [
        f"split {split}" if split else "",
        f"{min_words}+ words" if min_words else "",
        f"{per_language} per language" if per_language else "",
        f"limit {limit}" if limit else "",
        f"ids {', '.join(ids)}" if ids else "",
    ]
    utterances = tuple(Utterance(s.id, s.audio, s.text, s.groups.get(REFERENCE_LANGUAGE)) for s in chosen)
    return Target(spec, utterances, ", ".join(n for n in notes if n))


def _spread_per_language(samples: Sequence, n: int) -> list:
    """``n`` utterances of each language (the ``language`` column), evenly spaced in dataset order."""
    by_language: dict[str, list] = {}
    for s in samples:
        by_language.setdefault(s.groups.get(REFERENCE_LANGUAGE, ""), []).append(s)
    chosen = []
    for group in by_language.values():
        picks = np.unique(np.linspace(0, len(group) - 1, min(n, len(group))).round().astype(int))
        chosen += [group[i] for i in picks]
    return chosen


def long_targets(names: Sequence[str] | None = None) -> list[Target]:
    """The real-speech set's long files (``long/NAME.wav`` + ``NAME.txt``); by default the two dev ones.

    The held-out files are run only when named, so a plain ``--long`` never shows figures nobody may tune on.
    """
    from evaluation.realspeech import DEV_LONG_FILES, LONG_FILES, real_dir

    folder = real_dir() / "long"
    if not (folder / "metadata.csv").is_file():
        raise TargetError(f"the real-speech long files are not built ({folder}); run python -m evaluation make-real")
    targets = []
    for name in names or DEV_LONG_FILES:
        if not (folder / f"{name}.wav").is_file():
            raise TargetError(f"{folder / name}.wav is missing; rebuild with python -m evaluation make-real --force")
        target = file_target(folder / f"{name}.wav", None, "en")
        targets.append(Target(name, target.utterances, LONG_FILES[name][0]))
    return targets
