"""Export saved test cases and flags as a dataset that the validation runner loads back.

Two layouts: a Hugging Face ``datasets`` folder (``save_to_disk``, ``Audio`` feature) and an audiofolder
(``metadata.csv`` + WAV files). Both carry ``text`` (the reference, or the correction of a flag), the model's
``hypothesis`` and one column per label key, so ``--group-column accent`` works on them at once.

The ``Audio`` column is built from the WAV bytes and cast with ``cast_column``: ``datasets`` 4+ would
otherwise need ``torchcodec`` just to encode a path, and this keeps export working without it.
"""

from __future__ import annotations

import csv
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from asr.audio import SAMPLE_RATE
from evaluation.cases import is_reserved, reserved_label_error
from evaluation.store import Case

logger = logging.getLogger(__name__)

FORMATS = ("datasets", "csv")


def unused_folder(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3``, ... : the first that neither exists nor has a ``.zip`` beside it (the
    page zips each export), so a second export named alike (the same second) gets its own folder."""
    out_dir, n = base, 1
    while out_dir.exists() or out_dir.with_name(out_dir.name + ".zip").exists():
        n += 1
        out_dir = base.with_name(f"{base.name}-{n}")
    return out_dir


def _label_keys(cases: Sequence[Case]) -> list[str]:
    """Every label key, in first-seen order. A label named as a column (``RESERVED_LABELS``, refused when labelling
    since; a case saved before may have one) was dropped, or replaced the column when the export was loaded back:
    such an export is refused, naming the case."""
    keys: list[str] = []
    for case in cases:
        for key in case.labels:
            if is_reserved(key):
                raise ValueError(f"case {case.id}: {reserved_label_error(key)} on Review, then export again")
            if key not in keys:
                keys.append(key)
    return keys


def _rows(cases: Sequence[Case]) -> list[dict[str, object]]:
    keys = _label_keys(cases)
    rows = []
    for c in cases:
        row: dict[str, object] = {
            "id": c.id,
            "kind": c.kind,
            "text": c.reference,
            "hypothesis": c.transcript,
            "reason": c.reason,
            "status": c.status,
            "model": c.model,
            "backend": c.backend,
            "notes": c.notes,
            "duration": c.duration,
        }
        row.update({k: c.labels.get(k, "") for k in keys})
        rows.append(row)
    return rows


def export_cases(cases: Sequence[Case], out_dir: str | os.PathLike, fmt: str = "datasets") -> Path:
    """Write ``cases`` into ``out_dir`` (created; must be empty or absent) and return it."""
    if fmt not in FORMATS:
        raise ValueError(f"export format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    if not cases:
        raise ValueError("nothing to export: no test cases or flags match")
    rows = _rows(cases)  # refuses a label named as a column before anything is written
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise ValueError(f"export folder {out_dir} is not empty; choose a new folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        _export_csv(cases, rows, out_dir)
    else:
        _export_datasets(cases, rows, out_dir)
    logger.info("exported %d case(s) to %s (%s)", len(cases), out_dir, fmt)
    return out_dir


def _export_csv(cases: Sequence[Case], rows: list[dict[str, object]], out_dir: Path) -> None:
    audio_dir = out_dir / "audio"
    audio_dir.mkdir()
    for case, row in zip(cases, rows, strict=True):
        name = f"{case.id}.wav"
        shutil.copy2(case.audio_path, audio_dir / name)
        row["file_name"] = f"audio/{name}"
    columns = ["file_name"] + [c for c in rows[0] if c != "file_name"]
    with open(out_dir / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def _export_datasets(cases: Sequence[Case], rows: list[dict[str, object]], out_dir: Path) -> None:
    from datasets import Audio, Dataset

    columns: dict[str, list[object]] = {"audio": []}
    for case in cases:
        columns["audio"].append({"bytes": Path(case.audio_path).read_bytes(), "path": f"{case.id}.wav"})
    for key in rows[0]:
        columns[key] = [row[key] for row in rows]
    dataset = Dataset.from_dict(columns).cast_column("audio", Audio(sampling_rate=SAMPLE_RATE))
    dataset.save_to_disk(str(out_dir))
