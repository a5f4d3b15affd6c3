"""Where dataset rows come from: folders, manifests, ``save_to_disk`` folders, hub streams, the store.

Each opener returns a :class:`RowSource`: the dataset's name and columns and a way to iterate its rows (as
plain dicts, audio undecoded). :mod:`evaluation.datasets` maps columns and decodes audio the same way for all.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from evaluation.builtin import BUILTIN_DIR
from evaluation.rowsource import AUDIO_NAMES, DatasetError, Rows, RowSource  # noqa: F401 - re-exported
from evaluation.shards import ARROW, PARQUET, audio_columns, schema_of, shard_rows

if TYPE_CHECKING:
    from evaluation.store import Store

logger = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")
METADATA_NAMES = tuple(f"metadata{s}" for s in MANIFEST_SUFFIXES)
DEFAULT_SPLITS = ("test", "validation", "train")
SCRIPT_MESSAGE = "Dataset scripts are no longer supported"
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
    """Local paths made absolute (``hub:`` copies too), so a stored run reloads from any working folder."""
    source = str(source).strip()
    if source in ("builtin", "recorded", "probes") or source == REAL or source.startswith(REAL + ":"):
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
        raise DatasetError(f"dataset {path}: cannot read the manifest ({exc})") from exc


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
    languages = [w.strip() for w in wanted.split(",") if w.strip()]
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
        from datasets import load_from_disk

        return arrow_source(_pick_split(load_from_disk(str(path)), split, str(path)), str(path))
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


def _pick_split(data, split: str | None, name: str):
    """A split of a DatasetDict (the one asked for, else test, validation, train, else the first)."""
    if not hasattr(data, "keys"):
        return data
    splits = list(data.keys())
    if split:
        if split not in splits:
            raise DatasetError(f"dataset {name}: no split {split!r} (splits: {', '.join(splits)})")
        return data[split]
    return data[next((s for s in DEFAULT_SPLITS if s in splits), splits[0])]


def _audio_columns(features) -> list[str]:
    from datasets import Audio

    return [name for name, feature in (features or {}).items() if isinstance(feature, Audio)]


def arrow_source(dataset, name: str) -> RowSource:
    """A ``datasets.Dataset`` (from ``load_from_disk``): Audio columns read undecoded, or left in its files."""
    from datasets import Audio

    typed = _audio_columns(dataset.features)
    for column in typed:
        dataset = dataset.cast_column(column, Audio(decode=False))

    def iterate(indices: Sequence[int] | None) -> Rows:
        chosen = dataset if indices is None else dataset.select(list(indices))
        numbers = range(len(dataset)) if indices is None else indices
        yield from zip(numbers, chosen, strict=True)

    candidates = tuple(dict.fromkeys([*typed, *AUDIO_NAMES]))
    source = RowSource(name, tuple(dataset.column_names), iterate, len(dataset), audio_candidates=candidates)
    return _with_shards(source, _arrow_files(dataset), ARROW)


def _arrow_files(dataset) -> list[str]:
    """The Arrow files holding a dataset's rows in order; empty when its rows are not simply those files'."""
    files = [f["filename"] for f in dataset.cache_files]
    if not files or getattr(dataset, "_indices", None) is not None:  # a select() or shuffle() over the files
        return []
    return files


def _with_shards(source: RowSource, files: Sequence[str], kind: str) -> RowSource:
    """The source, able to leave its audio in its files for the workers when they hold it as datasets does."""
    if not files:
        return source
    try:
        audio = audio_columns(schema_of(files[0], kind), source.audio_candidates)
    except (OSError, ValueError) as exc:
        logger.info("dataset %s: its files cannot be read in shards (%s); the driver reads them", source.name, exc)
        return source
    if not audio:
        return source
    return dataclasses.replace(source, deferred=shard_rows(files, kind, audio), deferred_columns=tuple(audio))


def parse_hub(spec: str) -> tuple[str, str | None, str | None]:
    parts = spec[len("hub:") :].split(":")
    if not parts[0] or len(parts) > 3:
        raise DatasetError(f"dataset {spec!r}: use hub:ID[:CONFIG[:SPLIT]], e.g. hub:edinburghcstr/edacc")
    parts += [""] * (3 - len(parts))
    return parts[0], parts[1] or None, parts[2] or None


def _open_hub(repo: str, config: str | None, spec: str):
    """``datasets.load_dataset(..., streaming=True)``; a local ``save_to_disk`` copy stands in for offline use."""
    local = Path(repo).expanduser()
    if local.is_dir() and ((local / "dataset_dict.json").exists() or (local / "state.json").exists()):
        from datasets import Dataset, load_from_disk

        data = load_from_disk(str(local))
        if isinstance(data, Dataset):
            return data.to_iterable_dataset()
        return {k: v.to_iterable_dataset() for k, v in data.items()}
    import datasets

    try:
        return datasets.load_dataset(repo, config, streaming=True)
    except RuntimeError as exc:
        if SCRIPT_MESSAGE in str(exc):
            raise DatasetError(
                f"dataset {spec}: it needs a loading script ({str(exc).rsplit(' ', 1)[-1]}), and datasets 4+ "
                "no longer runs loading scripts; use a version of it in Parquet (many hub datasets have one under "
                "refs/convert/parquet) or download its files and pass the folder"
            ) from exc
        raise DatasetError(f"dataset {spec}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - hub, network and config errors all end the load
        raise DatasetError(
            f"dataset {spec}: cannot load it from the hub ({type(exc).__name__}: {str(exc)[:300]}); check the id "
            "and config, the network, HF_TOKEN for gated datasets, and HF_HUB_OFFLINE"
        ) from exc


def hub_source(spec: str, split: str | None) -> RowSource:
    """``hub:ID[:CONFIG[:SPLIT]]``, streamed: rows are read only as far as the sample limit needs.

    A dataset kept as Parquet files (or a local ``save_to_disk`` copy) can also leave its audio in its files for
    the workers of a cluster (see :mod:`evaluation.shards`); the stream is then opened only if the rows are read
    here (the local executor).
    """
    repo, config, hub_split = parse_hub(spec)
    shards = _hub_shards(repo, config, hub_split or split, spec)
    if shards is None:
        return _stream_source(spec, _open_stream(repo, config, hub_split or split, spec))
    files, kind = shards
    try:
        schema = schema_of(files[0], kind)
    except (OSError, ValueError) as exc:  # noqa: BLE001 - the stream says what is wrong, if anything is
        logger.info("dataset %s: cannot read %s (%s); streamed", spec, files[0], exc)
        return _stream_source(spec, _open_stream(repo, config, hub_split or split, spec))
    typed = audio_columns(schema, AUDIO_NAMES)

    def iterate(indices: Sequence[int] | None) -> Rows:
        yield from _stream_source(spec, _open_stream(repo, config, hub_split or split, spec)).rows(indices)

    source = RowSource(spec, tuple(schema.names), iterate, None, audio_candidates=(*typed, *AUDIO_NAMES))
    return _with_shards(source, files, kind)


def _hub_shards(repo: str, config: str | None, split: str | None, spec: str) -> tuple[list[str], str] | None:
    """The files of the split (URLs on the hub, paths for a local copy) when they are Parquet or Arrow files.

    The hub's data files come from ``datasets.load_dataset_builder`` (what ``load_dataset`` itself reads); a
    dataset in another format (audio folders, WebDataset, JSON) is streamed by the driver as before.
    """
    local = Path(repo).expanduser()
    if local.is_dir() and ((local / "dataset_dict.json").exists() or (local / "state.json").exists()):
        from datasets import load_from_disk

        files = _arrow_files(_pick_split(load_from_disk(str(local)), split, spec))
        return (files, ARROW) if files else None
    import datasets

    try:
        builder = datasets.load_dataset_builder(repo, config)
        files = list(_pick_split(dict(builder.config.data_files or {}), split, spec))
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - the stream's own open says what is wrong, in its words
        logger.info("dataset %s: no data files listed (%s: %s); streamed", spec, type(exc).__name__, exc)
        return None
    if not files or not all(str(f).split("?")[0].endswith(".parquet") for f in files):
        return None
    return [str(f) for f in files], PARQUET


def _open_stream(repo: str, config: str | None, split: str | None, spec: str):
    from datasets import Audio

    stream = _pick_split(_open_hub(repo, config, spec), split, spec)
    for column in _audio_columns(stream.features):
        stream = stream.cast_column(column, Audio(decode=False))
    return stream


def _stream_source(spec: str, stream) -> RowSource:
    typed = _audio_columns(stream.features)
    iterator = iter(stream)
    try:
        first = next(iterator, None)
    except Exception as exc:  # noqa: BLE001 - hub, network and decoding errors of the first row all end the load
        raise _stream_error(spec, exc) from exc
    if first is None:
        raise DatasetError(f"dataset {spec}: the split is empty")
    columns = tuple(stream.features.keys()) if stream.features else tuple(first.keys())

    def iterate(indices: Sequence[int] | None) -> Rows:
        yield from enumerate(itertools.chain([first], _guarded(iterator, spec)))

    return RowSource(spec, columns, iterate, None, audio_candidates=tuple(dict.fromkeys([*typed, *AUDIO_NAMES])))


def _guarded(iterator: Iterator, spec: str) -> Iterator:
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 - a broken stream ends the load with a clear message
            raise _stream_error(spec, exc) from exc


def _stream_error(spec: str, exc: Exception) -> DatasetError:
    if "torchcodec" in str(exc):
        return DatasetError(
            f"dataset {spec}: it keeps its audio as separate files, which datasets reads only with torchcodec "
            "(pip install torchcodec); or download it and pass the folder, which is read without it"
        )
    return DatasetError(f"dataset {spec}: reading the stream failed ({type(exc).__name__}: {str(exc)[:300]})")


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
