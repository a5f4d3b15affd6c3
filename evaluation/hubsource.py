"""Datasets read through the ``datasets`` library: ``hub:ID[:CONFIG[:SPLIT]]`` streams and ``save_to_disk`` copies.

A hub id first asks the hub probe that models use (:func:`asr.models.hub_state`), so that with no network an id
``datasets`` has not cached is one line at once and a cached one is read offline; Parquet and Arrow files can
leave their audio in place for the workers (:mod:`evaluation.shards`). :mod:`evaluation.sources` dispatches here.

A row naming its audio by a relative path (no bytes) is read from the working directory, as ``datasets`` reads
it. The sources say so (``base_dir``), so a message names the file looked for, and a cluster's worker, which reads
a row from the files itself, opens the file the driver would (it looked beside the Parquet or Arrow file instead).
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from asr.models import hub_host, hub_state
from evaluation.rowsource import AUDIO_NAMES, DatasetError, Rows, RowSource
from evaluation.shards import ARROW, PARQUET, audio_columns, schema_of, shard_rows

logger = logging.getLogger(__name__)

DEFAULT_SPLITS = ("test", "validation", "train")
SCRIPT_MESSAGE = "Dataset scripts are no longer supported"
OFFLINE_SOURCES = "builtin, builtin-real, probes, recorded, a folder, a manifest or a hub:ID in that cache"
# datasets' two warnings (each hub id read logs them once per load) that offline mode read its cache
CACHE_NOTICES = {
    "datasets.load": "Using the latest cached version of the dataset since",
    "datasets.packaged_modules.cache.cache": "Found the latest cached dataset configuration",
}
_lock = threading.Lock()
_datasets_offline_set_here = False  # True while datasets' offline mode is on because the hub could not be reached


class _CacheNoticeAtDebug(logging.Filter):
    """datasets' notices that it read its cache are DEBUG records while its offline mode is on: that mode is the
    user's (``HF_HUB_OFFLINE=1``) or :func:`_follow_hub`'s, which says so itself, and each read of a hub id told
    it twice over, 4 warnings before the run. Without offline mode they say that the hub did not have the id (a
    deleted or gated dataset read from the cache): they stay warnings then."""

    def filter(self, record: logging.LogRecord) -> bool:
        import datasets

        if not (datasets.config.HF_HUB_OFFLINE and record.getMessage().startswith(CACHE_NOTICES[record.name])):
            return True
        record.levelno, record.levelname = logging.DEBUG, logging.getLevelName(logging.DEBUG)
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


for _name in CACHE_NOTICES:
    logging.getLogger(_name).addFilter(_CacheNoticeAtDebug())


def parse_hub(spec: str) -> tuple[str, str | None, str | None]:
    parts = spec[len("hub:") :].split(":")
    if not parts[0] or len(parts) > 3:
        raise DatasetError(f"dataset {spec!r}: use hub:ID[:CONFIG[:SPLIT]], e.g. hub:edinburghcstr/edacc")
    parts += [""] * (3 - len(parts))
    return parts[0], parts[1] or None, parts[2] or None


def hub_source(spec: str, split: str | None) -> RowSource:
    """``hub:ID[:CONFIG[:SPLIT]]``, streamed: rows are read only as far as the sample limit needs.

    A dataset kept as Parquet files (or a local ``save_to_disk`` copy) can also leave its audio in its files for
    the workers of a cluster (see :mod:`evaluation.shards`); the stream is then opened only if the rows are read
    here (the local executor).
    """
    repo, config, hub_split = parse_hub(spec)
    if not Path(repo).expanduser().exists():
        _follow_hub()
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

    candidates = (*typed, *AUDIO_NAMES)
    source = RowSource(spec, tuple(schema.names), iterate, None, base_dir=Path.cwd(), audio_candidates=candidates)
    return _with_shards(source, files, kind)


def _follow_hub() -> None:
    """datasets' offline mode on while the hub cannot be reached, by the probe models use (asr.models.hub_state).

    With no network and offline mode unset, ``datasets`` retried for about 45 s before its error, and as long
    again before it fell back to a dataset it had cached. ``datasets`` keeps its own copy of ``HF_HUB_OFFLINE``
    (read at import), so it is switched here too, and off again once the hub answers; the user's own offline
    setting (``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE``) is never changed and skips the probe.
    """
    global _datasets_offline_set_here
    import datasets

    user_offline = os.environ.get("HF_DATASETS_OFFLINE", "").upper() in datasets.config.ENV_VARS_TRUE_VALUES
    state = "offline" if user_offline else hub_state()
    if state == "offline":  # the user's setting, which datasets read at import
        return
    with _lock:
        if state == "unreachable":
            if not _datasets_offline_set_here:  # (as for a model: a cached id is read, an uncached one refused)
                logger.info("cannot reach the Hugging Face hub (%s): hub datasets are read from the cache", hub_host())
            datasets.config.HF_HUB_OFFLINE, _datasets_offline_set_here = True, True
        elif _datasets_offline_set_here:
            datasets.config.HF_HUB_OFFLINE, _datasets_offline_set_here = False, False


def _not_cached(spec: str, repo: str) -> DatasetError:
    """A hub dataset that offline mode cannot load: what is cached and why the hub is not asked."""
    import datasets

    cache = datasets.config.HF_DATASETS_CACHE
    if _datasets_offline_set_here:
        why = f"cannot reach the Hugging Face hub ({hub_host()}) and {repo} is not in the datasets cache ({cache})"
    else:
        why = (
            f"{repo} is not in the datasets cache ({cache}) and offline mode (HF_HUB_OFFLINE=1) forbids downloading it"
        )
    return DatasetError(f"dataset {spec}: {why}; available offline: {OFFLINE_SOURCES}")


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
    except ConnectionError as exc:  # offline mode on (see _follow_hub) and the dataset not in the datasets cache
        if datasets.config.HF_HUB_OFFLINE:
            raise _not_cached(spec, repo) from exc
        raise DatasetError(
            f"dataset {spec}: cannot load it from the hub ({str(exc)[:300]}); check the network"
        ) from exc
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

    candidates = tuple(dict.fromkeys([*typed, *AUDIO_NAMES]))
    return RowSource(spec, columns, iterate, None, base_dir=Path.cwd(), audio_candidates=candidates)


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


def saved_source(path: Path, split: str | None) -> RowSource:
    """A folder written by ``save_to_disk`` (a Dataset or a DatasetDict): one split of it."""
    from datasets import load_from_disk

    return arrow_source(_pick_split(load_from_disk(str(path)), split, str(path)), str(path))


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
    columns = tuple(dataset.column_names)
    source = RowSource(name, columns, iterate, len(dataset), base_dir=Path.cwd(), audio_candidates=candidates)
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
    base = str(source.base_dir) if source.base_dir else None  # a worker reads a relative path where the driver would
    deferred = shard_rows(files, kind, audio, base)
    return dataclasses.replace(source, deferred=deferred, deferred_columns=tuple(audio), shard_files=tuple(files))
