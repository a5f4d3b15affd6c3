"""Where dataset rows come from: folders, manifests, the store; ``save_to_disk`` folders and hub streams are
read in :mod:`evaluation.hubsource`.

Each opener returns a :class:`RowSource`: the dataset's name and columns and a way to iterate its rows (as
plain dicts, audio undecoded). :mod:`evaluation.datasets` maps columns and decodes audio the same way for all.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evaluation.builtin import BUILTIN_DIR
from evaluation.hubsource import hub_source, parse_hub, saved_source  # noqa: F401 - parse_hub re-exported
from evaluation.rowsource import AUDIO_NAMES, DatasetError, Rows, RowSource  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from evaluation.store import Store

logger = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
METADATA_NAMES = tuple(f"metadata{s}" for s in MANIFEST_SUFFIXES)
REAL = "builtin-real"  # the real-speech set (evaluation.realspeech), optionally ":LANG[,LANG]"


def open_source(source: str, *, split: str | None = None, store: Store | None = None) -> RowSource:
    source = str(source).strip()
    if source == "builtin":
        return manifest_source(BUILTIN_DIR / "metadata.csv", "builtin", split)
    if source == REAL or source.startswith(REAL + ":"):
        return real_source(source, split)
    if source == "probes":
        from evaluation.probes import probes_source

        return probes_source()
    if source == "recorded":
        if store is None:
            raise DatasetError("dataset recorded: the recorded test cases need the store (--data-dir)")
        return recorded_source(store)
    if source.startswith("hub:"):
        return hub_source(source, split)
    path = Path(source).expanduser()
    if path.is_dir():
        return folder_source(path, split)
    if path.is_file():
        if path.suffix.lower() not in MANIFEST_SUFFIXES:
            raise DatasetError(f"dataset {source}: a manifest must be {', '.join(MANIFEST_SUFFIXES)}")
        return manifest_source(path, source, split)
    raise DatasetError(
        f"dataset {source!r} not found: use builtin, builtin-real[:LANG], probes, recorded, a folder, a manifest "
        "file or hub:ID[:CONFIG[:SPLIT]]"
    )


def canonical_source(source: str) -> str:
    """Local paths made absolute (``hub:`` copies too), so a stored run reloads from any working folder; the
    real-speech set's languages as the Validate page writes them (``builtin-real:FR, It`` is ``builtin-real:fr,it``:
    stored as typed, the same run resumed as ``builtin-real:fr`` was refused as another dataset)."""
    source = str(source).strip()
    if source.startswith(REAL + ":"):
        return REAL + ":" + source.removeprefix(REAL + ":").replace(" ", "").lower()
    if source in ("builtin", "recorded", "probes") or source == REAL:
        return source
    if source.startswith("hub:"):
        try:
            repo, config, split = parse_hub(source)
        except DatasetError:
            return source
        local = Path(repo).expanduser()
        if not local.exists():
            return source
        tail = f":{config or ''}:{split}" if split else (f":{config}" if config else "")
        return f"hub:{local.resolve()}{tail}"
    path = Path(source).expanduser()
    return str(path.resolve()) if path.exists() else source


def _read_table(path: Path):
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix in (".csv", ".tsv"):
        _check_csv_text(path, "\t" if suffix == ".tsv" else ",")
    try:
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
        if suffix == ".parquet":
            return pd.read_parquet(path)
        try:
            return pd.read_json(path, lines=True, dtype=False)
        except ValueError:
            return pd.DataFrame(json.loads(path.read_text(encoding="utf-8")))
    except Exception as exc:  # noqa: BLE001 - pandas raises many types for a broken file
        reason = " ".join(str(exc).split())  # pandas' tokenizer errors end in a newline
        raise DatasetError(f"dataset {path}: cannot read the manifest ({reason})") from exc


def _check_csv_text(path: Path, sep: str) -> None:
    """Refuse text that is not UTF-8, and a row with more fields than the header: a reference with an unquoted
    comma. pandas took such a row's first fields as a row index (a TypeError later) or, in every row, shifted the
    columns: the file names became the references, silently."""
    import csv
    import io

    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # it said "'utf-8' codec can't decode byte 0xe9 in position 25: ..."
        raise DatasetError(
            f"dataset {path}: not UTF-8 text (byte {exc.start + 1}); save the manifest as UTF-8 (CSV UTF-8 in a "
            "spreadsheet's Save as)"
        ) from None
    try:
        with io.StringIO(text, newline="") as f:
            reader = csv.reader(f, delimiter=sep)
            header = next(reader, [])
            for fields in reader:
                if len(fields) > len(header):
                    what = 'a comma ("a, b")' if sep == "," else "a tab"
                    raise DatasetError(
                        f"dataset {path}: line {reader.line_num} has {len(fields)} fields but the header has "
                        f"{len(header)} ({', '.join(header)}); quote a value that holds {what}"
                    )
    except csv.Error:  # pandas reads it and says what is wrong
        return


def manifest_source(path: Path, name: str, split: str | None = None) -> RowSource:
    """A CSV/TSV/JSONL/Parquet manifest (NeMo's ``audio_filepath`` too); audio paths relative to its folder.
    ``split`` keeps the rows of its ``split`` column with that value."""
    frame = _read_table(path)
    return frame_source(_split_rows(frame, split, name) if split else frame, name, path.parent)


def _split_rows(frame, split: str, name: str):
    """The rows of one split. A folder or manifest used to ignore ``--split`` unseen and score every row."""
    if "split" not in frame.columns:
        raise DatasetError(
            f"dataset {name}: no split column, so no split {split!r} (columns: {', '.join(map(str, frame.columns))})"
        )
    splits = sorted(set(frame["split"].dropna().astype(str)))
    if split not in splits:
        raise DatasetError(f"dataset {name}: no split {split!r} (splits: {', '.join(splits)})")
    return frame[frame["split"].astype(str) == split]


def frame_source(frame, name: str, base_dir: Path) -> RowSource:
    """Rows of a pandas frame (row numbers from its index); audio paths relative to ``base_dir``."""

    def iterate(indices: Sequence[int] | None) -> Rows:
        chosen = frame if indices is None else frame.iloc[list(indices)]
        for index, row in zip(chosen.index, chosen.to_dict("records"), strict=True):
            yield int(index), row

    return RowSource(name, tuple(map(str, frame.columns)), iterate, len(frame), base_dir=base_dir)


def real_source(spec: str, split: str | None) -> RowSource:
    """``builtin-real`` (every language) or ``builtin-real:en`` / ``builtin-real:fr,it``; ``split`` dev or heldout.

    Grouped by language unless group columns are named. The set is built at set-up, not committed, so a missing
    set is an error that says how to build it.
    """
    from evaluation.realspeech import LANGUAGES, real_dir

    metadata = real_dir() / "metadata.csv"
    if not metadata.is_file():
        raise DatasetError(
            f"dataset {spec}: the real-speech set is not built ({metadata} is missing); run scripts/setup.sh "
            "or python -m evaluation make-real"
        )
    _, _, wanted = spec.partition(":")
    languages = [w.strip().lower() for w in wanted.split(",") if w.strip()]  # builtin-real:EN is en
    unknown = sorted(set(languages) - set(LANGUAGES))
    if unknown:
        raise DatasetError(f"dataset {spec}: no language {', '.join(unknown)} (languages: {', '.join(LANGUAGES)})")
    frame = _read_table(metadata)
    if languages:
        frame = frame[frame["language"].isin(languages)]
    if split:
        frame = _split_rows(frame, split, spec)
    source = frame_source(frame, spec, metadata.parent)
    return dataclasses.replace(source, default_groups=("language",))


def folder_source(path: Path, split: str | None) -> RowSource:
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        return saved_source(path, split)
    for meta in METADATA_NAMES:
        if (path / meta).exists():
            return manifest_source(path / meta, str(path), split)
    from evaluation.noise import AUDIO_SUFFIXES

    audio = sum(1 for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if audio:  # audio alone is no WER dataset: it was refused as if the folder held nothing known
        raise DatasetError(
            f"dataset {path}: it has {audio} audio file(s) but no metadata.csv with file_name and text columns "
            "(the reference for each file); see README, Validation"
        )
    raise DatasetError(
        f"dataset {path}: the folder has neither {' nor '.join(METADATA_NAMES[:2])} (audiofolder) nor a dataset "
        "saved with save_to_disk"
    )


def recorded_source(store: Store) -> RowSource:
    """Test cases saved from the dashboard, and flags that carry a corrected transcript."""
    cases = [c for c in store.list_cases() if c.kind == "test_case" or c.reference.strip()]
    if not cases:
        raise DatasetError(f"dataset recorded: no test cases or corrected flags in {store.data_dir}; save some first")
    label_keys = sorted({k for c in cases for k in c.labels})
    rows = [
        {
            "id": c.id,
            "audio": c.audio_path,
            "text": c.reference,
            "hypothesis": c.transcript,
            "kind": c.kind,
            "status": c.status,
            "model": c.model,
            **{k: c.labels.get(k, "") for k in label_keys if k not in ("id", "audio", "text")},
        }
        for c in cases
    ]
    columns = tuple(dict.fromkeys(k for r in rows for k in r))

    def iterate(indices: Sequence[int] | None) -> Rows:
        for i in range(len(rows)) if indices is None else indices:
            yield i, rows[i]

    return RowSource("recorded", columns, iterate, len(rows))
