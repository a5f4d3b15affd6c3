"""One validation run in a throwaway store, as the sweep, live-path and scale-out benchmarks all measure it.

Why one place: the three benchmarks compare runs with each other; each timing the run its own way (CPU read
before or after the store opens, the executor label read or not) would make their figures disagree.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TimedRun:
    result: Any  # the evaluation.runner.RunResult
    cpu_seconds: float  # this process's CPU time over the run (all threads)
    executor: str  # the executor the run recorded in its summary (local, ray, ...)


def timed_run(options, progress: Callable[[int, int, str], None] | None = None) -> TimedRun:
    """Run ``options`` through ``run_validation`` in a temporary store that is deleted afterwards."""
    from evaluation.runner import run_validation
    from evaluation.store import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(tmp)
        cpu = time.process_time()
        result = run_validation(options, store, progress=progress)
        cpu = time.process_time() - cpu
        executor = str(store.runs.get_run(result.run_id).summary.get("executor", options.executor))
    return TimedRun(result, cpu, executor)
