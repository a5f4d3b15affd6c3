"""``python -m benchmarks sweep``: throughput of a whole built-in sweep on each backend.

The figure is audio seconds per wall second over the sweep (every utterance x every condition), with noise
mixing, VAD, decoding, scoring and storing included; dataset decoding and model loading are reported apart,
since a long-lived dashboard pays them once. CPU seconds are printed too: on a shared machine wall time
mostly measures the neighbours, and CPU seconds per audio second says what a quiet machine would give.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from asr.backends import BackendError
from asr.models import UnknownModelError
from asr.results import BACKENDS
from benchmarks.scratch import timed_run
from evaluation.cli_parser import at_least
from evaluation.runner import RunError
from evaluation.scoring import rate

DEFAULT_NOISE = "clean,white@10,pink@10,babble@5,reverb@0.5"
TARGET_RTFX = 20.0  # audio seconds per wall second, tiny.en on faster-whisper, 2 CPU cores


@dataclass(frozen=True)
class ConditionFigures:
    """Where the temperature fallback's retries fall. No time per condition: a batch's time is shared out over
    its rows by their audio, and one batch can hold rows of two conditions."""

    condition: str
    rows: int
    rows_retried: int  # rows with at least one window the fallback decoded again
    windows_retried: int


def per_condition(rows) -> tuple[ConditionFigures, ...]:
    """The run's rows (results.csv's columns) summed per noise condition."""
    retried = rows["windows_retried"].fillna(0).astype(int)
    out = []
    for condition in dict.fromkeys(rows["noise"]):
        mine = rows["noise"] == condition
        out.append(
            ConditionFigures(
                condition=str(condition),
                rows=int(mine.sum()),
                rows_retried=int((retried[mine] > 0).sum()),
                windows_retried=int(retried[mine].sum()),
            )
        )
    return tuple(out)


@dataclass(frozen=True)
class BenchResult:
    backend: str
    rows: int  # utterance x condition
    audio_seconds: float
    wall_seconds: float  # the sweep, dataset and model loading excluded
    cpu_seconds: float  # process CPU time over the sweep (all threads)
    compute_seconds: float  # the engine's own model time
    load_seconds: float  # model loading and warm-up
    wer: float
    conditions: tuple[ConditionFigures, ...] = ()  # per noise condition, in the sweep's order

    @property
    def rtfx(self) -> float:
        """Audio seconds per wall second over the sweep."""
        return rate(self.audio_seconds, self.wall_seconds)

    @property
    def cpu_rtfx(self) -> float:
        """Audio seconds per CPU second: a quiet machine with N free cores gives about N times this."""
        return rate(self.audio_seconds, self.cpu_seconds)


def bench_backend(backend: str, model: str, noise: str, limit: int | None, device: str) -> BenchResult:
    from asr.backends import get_backend
    from asr.transcribe import transcribe
    from evaluation.datasets import DatasetOptions, load_dataset
    from evaluation.runner import RunOptions

    started = time.perf_counter()
    engine = get_backend(model, backend, device)
    sample = load_dataset(DatasetOptions("builtin", limit=1)).samples[0]
    transcribe(sample.audio, backend=engine)  # warm-up: first-call allocations are not throughput
    load = time.perf_counter() - started
    options = RunOptions(
        dataset="builtin", noise=tuple(noise.split(",")), model=model, backend=backend, device=device, limit=limit
    )
    run = timed_run(options)
    result = run.result
    return BenchResult(
        backend=backend,
        rows=len(result.rows),
        audio_seconds=result.audio_seconds_done,
        wall_seconds=result.wall_seconds,
        cpu_seconds=run.cpu_seconds,
        compute_seconds=result.summary.overall.compute_seconds,
        load_seconds=load,
        wer=result.summary.overall.wer,
        conditions=per_condition(result.rows),
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks sweep", description=__doc__.split("\n")[0])
    p.add_argument(
        "--backends", default=",".join(BACKENDS), help=f"comma-separated backends (default {','.join(BACKENDS)})"
    )
    p.add_argument("--model", default="whisper-tiny.en", help="model name (default whisper-tiny.en)")
    p.add_argument("--noise", default=DEFAULT_NOISE, help=f"as evaluation run --noise (default {DEFAULT_NOISE})")
    p.add_argument("--limit", type=at_least(1), default=None, help="utterances of the built-in set (default all)")
    p.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto (default): a CUDA GPU if any, else CPU"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    import os

    print(f"built-in sweep: model {args.model}, noise {args.noise}, {os.cpu_count()} CPU cores")
    header = f"{'backend':15} {'rows':>5} {'audio s':>8} {'wall s':>7} {'rtfx':>11} {'CPU s':>7} {'CPU rtfx':>11} {'load s':>7} {'WER':>6}"
    print(header)
    status = 0
    for backend in args.backends.split(","):
        try:
            r = bench_backend(backend.strip(), args.model, args.noise, args.limit, args.device)
        except (BackendError, UnknownModelError, RunError) as exc:  # one backend failing must not hide the other's
            print(f"{backend:15} unavailable: {str(exc).splitlines()[0][:100]}")
            status = 1
            continue
        print(
            f"{r.backend:15} {r.rows:5d} {r.audio_seconds:8.1f} {r.wall_seconds:7.1f} {r.rtfx:11.1f} "
            f"{r.cpu_seconds:7.1f} {r.cpu_rtfx:11.1f} {r.load_seconds:7.1f} {r.wer * 100:5.1f}%",
            flush=True,
        )
        for c in r.conditions:
            print(
                f"  {c.condition:12} {c.rows:4d} rows, {c.rows_retried:3d} with a retried window "
                f"({c.windows_retried} windows)"
            )
        if r.backend == "faster-whisper" and args.model == "whisper-tiny.en":
            verdict = "meets" if r.rtfx >= TARGET_RTFX else "misses"
            print(f"  target rtfx >= {TARGET_RTFX:.0f} (2 cores): {verdict} it on this machine now")
    return status


if __name__ == "__main__":
    sys.exit(main())
