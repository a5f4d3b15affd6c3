"""Where a run's rows are computed: in this process (``local``) or on a Ray cluster (``ray``, ``ray://HOST:PORT``).

Both run the same :class:`evaluation.worker.RowWorker` on the same batches of row specs and hand the results back
batch by batch, in order; the runner stores each batch as it arrives. So an executor changes where and how fast
rows are computed, never what they contain.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np

from evaluation.executor_options import LOCAL, RAY, USAGE, ExecutorError, ExecutorOptions  # noqa: F401 - re-exported
from evaluation.worker import Batch, CancelCheck, Cancelled, RowSpec, RowWorker, WorkerOptions, read_specs


class Executor(Protocol):
    label: str  # what the run's settings record, e.g. "local", "ray (local, 2 workers)"

    def results(self, batches: Sequence[Sequence[RowSpec]], cancelled: CancelCheck) -> Iterator[Batch]:
        """Each batch's results, batch by batch in the given order; raises Cancelled when ``cancelled()``, after
        handing back every row already finished (the finished rows of a batch cut short come as a last batch).

        A sample whose audio was left in the dataset's files (``Sample.audio_ref``) is read by the worker
        (:func:`evaluation.worker.read_specs`); one it cannot decode comes back as a :class:`SkippedRow`.
        """
        ...

    def close(self) -> None: ...


class LocalExecutor:
    """The worker in this process, with the process-wide model (shared with the dashboard's other pages)."""

    label = LOCAL

    def __init__(self, options: WorkerOptions, pool: Mapping[str, np.ndarray]) -> None:
        self.worker = RowWorker(options, pool)

    def results(self, batches: Sequence[Sequence[RowSpec]], cancelled: CancelCheck) -> Iterator[Batch]:
        for batch in batches:
            if cancelled():
                raise Cancelled
            specs, skipped = read_specs(batch, self.worker.options.audio_allowed)
            try:
                rows = self.worker.run(specs, cancelled)
            except Cancelled as stop:  # the batch's utterances decoded before the cancel: stored, not redone
                yield [*skipped, *stop.rows]
                raise Cancelled from None
            yield [*skipped, *rows]

    def close(self) -> None:
        return None


def open_executor(options: ExecutorOptions, worker: WorkerOptions, pool: Mapping[str, np.ndarray]) -> Executor:
    """The executor for a run; the local model is loaded, or a Ray cluster reached or started, before it returns."""
    options = options.validate()
    if options.name == LOCAL:
        return LocalExecutor(worker, pool)
    from asr.models import resolve

    resolve(worker.model_name)  # an unknown model fails here, in one line, not inside every actor
    try:
        from evaluation.ray_executor import RayExecutor
    except ImportError as exc:
        if not (exc.name or "").startswith("ray"):
            raise
        raise ExecutorError(f"executor {options.name}: Ray is not installed (pip install ray==2.60.0)") from None
    return RayExecutor(options, worker, pool)


__all__ = ["Batch", "Executor", "ExecutorError", "ExecutorOptions", "LocalExecutor", "open_executor", "USAGE"]
