"""Which executor a run names and how it is checked: shared by :mod:`evaluation.executors` and the Ray executor.

Apart from :mod:`evaluation.executors` (which opens the executor a run names, Ray included) so the Ray executor
can take these options without importing the module that imports it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

LOCAL = "local"
RAY = "ray"
USAGE = "local, ray (a local Ray on this machine, or the cluster RAY_ADDRESS names) or ray://HOST:PORT"


class ExecutorError(ValueError):
    """An executor that cannot be used (Ray missing, cluster unreachable), in one line saying what to do."""


@dataclass(frozen=True)
class ExecutorOptions:
    name: str = LOCAL  # local, ray or ray://HOST:PORT
    workers: int | None = None  # Ray: actors (None: one per num_cpus of the cluster's CPUs)
    cpus_per_worker: float = 1.0  # Ray: num_cpus of each actor; the model's threads follow it

    def validate(self) -> ExecutorOptions:
        name = self.name.strip()
        if name not in (LOCAL, RAY) and not (name.startswith("ray://") and len(name) > len("ray://")):
            raise ExecutorError(f"unknown executor {self.name!r}; use {USAGE}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise ExecutorError(f"workers must be a positive integer, not {self.workers!r}")
        if not self.cpus_per_worker > 0:
            raise ExecutorError(f"cpus per worker must be positive, not {self.cpus_per_worker!r}")
        return self

    @property
    def address(self) -> str | None:
        """The cluster to join: ray://HOST:PORT, else RAY_ADDRESS for ``ray``; None starts a local Ray."""
        if self.name.startswith("ray://"):
            return self.name
        if self.name == RAY:
            return os.environ.get("RAY_ADDRESS") or None
        return None
