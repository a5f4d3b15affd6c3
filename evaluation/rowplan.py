"""Which rows a validation run still owes, and in what batches they go to the executor.

Kept apart from the runner's orchestration so the order is one small pure function of the dataset, the conditions
and what is stored: a resumed run owes exactly the rows not stored yet, in the order a fresh run would take them,
and streaming rows joined into one stream always travel together (a stream split over two batches would be two
streams with other texts).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from evaluation.datasets import LoadedDataset
from evaluation.noise import NoiseCondition
from evaluation.streaming import StreamModeOptions, plan_streams
from evaluation.worker import RowSpec


def pending_rows(
    data: LoadedDataset,
    conditions: Sequence[NoiseCondition],
    done: set[tuple[str, str]],
    seed: int,
    modes: Sequence[str] = ("offline",),
) -> list[RowSpec]:
    """Every (utterance, condition, mode) not stored yet: condition by condition, mode by mode, in dataset order."""
    specs = [RowSpec(s, c.spec, seed, m) for c in conditions for m in modes for s in data.samples]
    return [spec for spec in specs if spec.key not in done]


def batch_rows(
    specs: Sequence[RowSpec], size: int, stream: StreamModeOptions | None = None
) -> list[tuple[RowSpec, ...]]:
    """Batches of ``size`` rows; streaming rows joined into streams come as whole streams, ``sessions`` at a time."""
    batches: list[tuple[RowSpec, ...]] = []
    for mode, group in itertools.groupby(specs, key=lambda s: s.mode):
        part = list(group)
        if mode == "streaming" and stream is not None and stream.stream_seconds is not None:
            seconds, keys = [s.sample.seconds for s in part], [s.condition for s in part]
            plan = plan_streams(seconds, keys, stream.stream_seconds)
            for first in range(0, len(plan), stream.sessions):
                batches.append(tuple(part[i] for rows in plan[first : first + stream.sessions] for i in rows))
        else:
            batches += [tuple(part[i : i + size]) for i in range(0, len(part), size)]
    return batches
