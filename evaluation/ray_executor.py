"""The Ray executor: a run's row specs as a Ray dataset, mapped by actors that each hold one RowWorker.

Why it is built this way:
- Rows (utterance, condition, seed, with the utterance's audio, or where it lies in the dataset's Parquet or
  Arrow files: see :mod:`evaluation.shards`) become a Ray Data dataset with one block per batch of the local
  executor, and ``map_batches`` runs a callable class on whole blocks. The actor reads audio left in the files,
  loads the model once and decodes each block together, so a row has the same batch-mates on Ray as locally.
- ``preserve_order`` makes the driver receive blocks in the local order, so results.csv is row for row the
  same; the driver (``iter_batches``) only unpickles results and hands them to the runner, which stores them.
- A dead actor costs nothing: Ray Data restarts actors and retries their tasks (``max_restarts`` and
  ``max_task_retries`` of -1, its default for actor pools), and a block reaches the driver once. Rows stored
  before a crash or a cancel are skipped by the resume, as for the local executor.
- A local Ray listens on loopback only: Ray's servers (GCS, raylet, object manager, workers, runtime-env agent)
  bind 127.0.0.1 when the node's address is 127.0.0.1, but ``ray.init`` turns ``_node_ip_address="127.0.0.1"``
  into the machine's address unless Ray believes it runs on one machine only (the switch
  ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER`` reads, set here for the start only). It starts without its dashboard,
  metrics collection, usage stats or the Ray Client server, with a bounded object store.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import pickle
import socket
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import ray

from asr.backends.base import cpu_cores
from evaluation.datasets import Sample
from evaluation.executor_options import ExecutorError, ExecutorOptions
from evaluation.ray_stderr import QuietActorStart
from evaluation.shards import AudioRef
from evaluation.worker import Batch, CancelCheck, Cancelled, RowSpec, RowWorker, WorkerOptions, read_specs

logger = logging.getLogger(__name__)

OBJECT_STORE_BYTES = 512 * 1024**2  # a local Ray's object store: blocks of audio, not a dataset held whole
LOOPBACK = "127.0.0.1"
CONNECT_ERRORS = (ConnectionError, TimeoutError, RuntimeError, ValueError, OSError)
PROBE_TIMEOUT_S = 3.0  # one TCP connect to the cluster's address before ray.init, which retries for minutes


SAMPLE_FIELDS = tuple(f.name for f in dataclasses.fields(Sample))
SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(RowSpec) if f.name != "sample")  # condition, seed, mode...


def spec_frame(batch: Sequence[RowSpec]) -> pd.DataFrame:
    """One batch of row specs as a Ray Data block: a row per spec, a column per field, the audio as float32.

    A sample whose audio is left in the dataset's files carries its reference instead (empty audio): the actor
    reads the audio, so the block holds a few hundred bytes per row.
    """
    columns: dict[str, list] = {name: [getattr(s.sample, name) for s in batch] for name in SAMPLE_FIELDS}
    columns["groups"] = [json.dumps(dict(g)) for g in columns["groups"]]
    columns["audio"] = [np.asarray(() if a is None else a, np.float32) for a in columns["audio"]]
    columns["audio_ref"] = [json.dumps(dataclasses.asdict(r)) if r else "" for r in columns["audio_ref"]]
    for name in SPEC_FIELDS:
        columns[f"spec_{name}"] = [getattr(s, name) for s in batch]
    return pd.DataFrame(columns)


def frame_specs(frame: pd.DataFrame) -> list[RowSpec]:
    specs = []
    for record in frame.to_dict("records"):
        values = {name: _none_for_nan(record[name]) for name in SAMPLE_FIELDS}
        values["groups"] = json.loads(values["groups"])
        values["audio_ref"] = AudioRef(**json.loads(values["audio_ref"])) if values["audio_ref"] else None
        values["audio"] = None if values["audio_ref"] else np.asarray(values["audio"], np.float32)
        extra = {name: record[f"spec_{name}"] for name in SPEC_FIELDS}
        specs.append(RowSpec(Sample(**values), **extra))
    return specs


def _none_for_nan(value: Any) -> Any:
    """A missing value (a speaker-less row) comes back from a block as NaN; the Sample had None."""
    return None if isinstance(value, float) and math.isnan(value) else value


class RayRowWorker:
    """The callable class ``map_batches`` runs: one :class:`RowWorker` (one model) per actor."""

    def __init__(self, options: WorkerOptions, pool: Any = None) -> None:
        if isinstance(pool, ray.ObjectRef):
            pool = ray.get(pool)
        self.worker = RowWorker(options, pool or {})

    def __call__(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        # audio left in the dataset's files is read here, from the files the driver's roots allow (if any)
        specs, skipped = read_specs(frame_specs(frame), self.worker.options.audio_allowed)
        results = [*skipped, *self.worker.run(specs)]
        return {"result": np.array([pickle.dumps(r) for r in results], dtype=object)}


class RayExecutor:
    """Runs the batches on a Ray cluster: a local one it starts (and stops), or the one it is told to join."""

    def __init__(self, options: ExecutorOptions, worker: WorkerOptions, pool: Mapping[str, np.ndarray]) -> None:
        self.options = options
        self._owns_ray, where = _connect(options)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        threads = max(int(options.cpus_per_worker), 1)
        self.workers = options.workers or max(int(cpus // options.cpus_per_worker), 1)
        self.worker_options = dataclasses.replace(worker, threads=threads)
        self.pool_ref = ray.put(dict(pool)) if pool else None
        self.label = f"ray ({where}, {self.workers} worker{'s' if self.workers != 1 else ''})"
        self._iterator: Iterator | None = None
        self._quiet = QuietActorStart.idle()
        _configure_ray_data()

    def results(self, batches: Sequence[Sequence[RowSpec]], cancelled: CancelCheck) -> Iterator[Batch]:
        if not batches:
            return
        dataset = ray.data.from_pandas([spec_frame(b) for b in batches])
        mapped = dataset.map_batches(
            RayRowWorker,
            fn_constructor_kwargs={"options": self.worker_options, "pool": self.pool_ref},
            batch_size=None,  # a whole block: the batch the local executor would decode together
            batch_format="pandas",
            compute=ray.data.ActorPoolStrategy(size=min(self.workers, len(batches))),  # `concurrency=N` before 2.51
            num_cpus=self.options.cpus_per_worker,
        )
        self._quiet = QuietActorStart()  # Ray Data's harmless ERROR line as the actors start: see ray_stderr
        self._iterator = iter(mapped.iter_batches(batch_size=None, batch_format="pandas", prefetch_batches=1))
        while True:
            try:
                frame = next(self._iterator, None)
            except ray.exceptions.RayError as exc:  # a worker's own error (a dead actor is retried, not raised)
                raise ExecutorError(f"a Ray worker failed: {_first_line(exc)}") from exc
            self._quiet.release(actors_started=True)
            if frame is None:
                return
            yield [pickle.loads(b) for b in frame["result"]]  # a batch that arrived is stored, cancel or not
            if cancelled():  # (the batches the actors are still decoding are dropped: Ray Data cannot hand them in)
                raise Cancelled

    def close(self) -> None:
        """Stops the dataset's execution (a cancel or Ctrl-C leaves nothing running), and a Ray it started."""
        close = getattr(self._iterator, "close", None)
        if close is not None:
            close()
        self._iterator = None
        self._quiet.release()
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()


SCHEDULER_WAIT_S = 0.5  # Ray Data's scheduling loop wakes this often (its own 0.1 s) while blocks take seconds


def _configure_ray_data() -> None:
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False  # the runner reports progress
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    _slower_scheduler_loop()


def _slower_scheduler_loop() -> None:
    """The driver's cost per second of a run: Ray Data's scheduling loop waits at most 0.1 s for a task.

    Measured on this machine with actors that take 4 s a block: the driver spent 37-42 ms of CPU per second of
    the run with Ray's 0.1 s and 24-26 ms with 0.5 s (about 15 ms of the rest is its consumer polling its output
    queue every 10 ms). A block of rows takes seconds to decode, so waking twice a second delays nothing that
    matters and halves the driver's share. The wait is a module constant of Ray Data's executor (2.60); a Ray
    without it keeps its own.
    """
    from ray.data._internal.execution import streaming_executor_state as state

    if isinstance(getattr(state, "WAIT_FOR_TASK_COMPLETION_TIMEOUT_S", None), float):
        state.WAIT_FOR_TASK_COMPLETION_TIMEOUT_S = SCHEDULER_WAIT_S
    else:
        logger.info("Ray %s: no scheduling-loop wait to set; the driver keeps Ray Data's own", ray.__version__)


def _connect(options: ExecutorOptions) -> tuple[bool, str]:
    """Join the cluster the options name, else start a local Ray; returns (started here, where)."""
    address = options.address
    if ray.is_initialized():
        return False, "connected"
    if address:
        _probe(address)
        try:
            with warnings.catch_warnings():  # Ray Client's advice about ports: the one-line error says it
                warnings.simplefilter("ignore")
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
        except CONNECT_ERRORS as exc:
            raise ExecutorError(f"cannot reach the Ray cluster at {address}: {_first_line(exc)}") from None
        except ImportError as exc:
            raise ExecutorError(f"executor {address}: {_first_line(exc)} (Ray Client needs ray[client])") from None
        return False, address
    start_local_ray(cpu_cores(), OBJECT_STORE_BYTES)
    return True, "local"


def _probe(address: str) -> None:
    """Fail at once where nothing listens at a ``HOST:PORT`` or ``ray://HOST:PORT`` address: ``ray.init`` kept
    retrying a closed port (``RAY_ADDRESS=127.0.0.1:1``, a cluster stopped with ``ray stop``) for over 13 minutes,
    printing a Ray warning every few seconds, and Ray Client for half a minute. Other forms (``auto``) are Ray's."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or _first_line(exc)
        raise ExecutorError(
            f"cannot reach the Ray cluster at {address}: nothing answers on {host}:{port} ({why})"
        ) from None


def start_local_ray(num_cpus: int, object_store_bytes: int) -> None:
    """A Ray on this machine for one run: loopback only, no dashboard, no metrics, no usage stats."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # read at start, by the driver and the node processes
    with _single_machine():
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            object_store_memory=object_store_bytes,
            _node_ip_address=LOOPBACK,
            _system_config={"enable_metrics_collection": False},
            logging_level=logging.ERROR,  # not the token-authentication notice on every start
            log_to_driver=False,
        )
    node_ip = ray.util.get_node_ip_address()
    if node_ip != LOOPBACK:
        logger.warning("the local Ray listens on %s, not on loopback only (Ray %s)", node_ip, ray.__version__)


@contextmanager
def _single_machine() -> Iterator[None]:
    """Ray's own one-machine mode for the start: it then keeps 127.0.0.1 as the node's address.

    ``ray._private.ray_constants.ENABLE_RAY_CLUSTER`` is what ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` sets at
    import; set here rather than through the environment because Ray may already be imported, and only for the
    start, so a later ``ray.init(address=...)`` in this process still finds the address other nodes reach.
    """
    from ray._private import ray_constants

    if not hasattr(ray_constants, "ENABLE_RAY_CLUSTER"):  # a Ray after 2.60 that moved it: start, and warn after
        yield
        return
    before = ray_constants.ENABLE_RAY_CLUSTER
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = before


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


__all__ = ["RayExecutor", "RayRowWorker", "frame_specs", "spec_frame", "start_local_ray"]
