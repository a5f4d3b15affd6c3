"""``python -m benchmarks asr --isolated FILE``: throughput, WER and memory of our two paths against the libraries' own.

Four approaches transcribe the same audio:

- ``ours-fw``: :func:`asr.transcribe.transcribe` on the faster-whisper backend (our default full-context path);
- ``ours-tf``: the same on the transformers backend;
- ``library``: faster-whisper's own ``BatchedInferencePipeline(model).transcribe(...)`` on a ``WhisperModel``
  loaded exactly as our backend loads it (the library's ceiling: same beam size, batch 8, word timestamps);
- ``pipeline``: the plain transformers pipeline as the Gradio recipe calls it (audio divided by its peak, a
  ``{"sampling_rate", "raw"}`` dict), with ``chunk_length_s=30`` because it cannot go past 30 s otherwise.

Why one child process per approach: peak memory is then the approach's own (the resident-set peak of the
child during warm-up and the timed runs, minus its resident set once the model is loaded; the kernel's peak
counter is reset after loading, with 10 ms sampling as the fallback), and no approach inherits another's
caches. Model loading is excluded from the timings, each approach is warmed up once, and the median of
``--repeat`` runs is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from asr import omp_wait_setting
from evaluation.cli_parser import at_least

APPROACHES = ("ours-fw", "ours-tf", "library", "pipeline")
LABELS = {
    "ours-fw": "ours, faster-whisper",
    "ours-tf": "ours, transformers",
    "library": "faster-whisper BatchedInferencePipeline",
    "pipeline": "transformers pipeline (recipe, chunk 30 s)",
}
WARMUP_SECONDS = 30.0  # the warm-up decodes at most this much of the file


@dataclass(frozen=True)
class BenchConfig:
    file: str
    model: str
    beam_size: int  # 1 is greedy, the default
    batch_size: int  # windows per model call, for every approach that batches
    repeat: int  # timed runs; the median is reported
    device: str


@dataclass(frozen=True)
class ApproachResult:
    approach: str
    text: str
    compute_seconds: float  # median over the timed runs
    runs: tuple[float, ...]  # every timed run, seconds
    rtfx: float  # audio seconds per compute second
    rss_delta_mb: float  # peak resident set during the runs minus the resident set after loading
    peak_rss_mb: float  # the child's peak resident set during the runs (model included)
    wer: float | None  # against --ref, scored as validation scores (evaluation.scoring)
    error: str | None = None  # why the approach could not run


def main(argv: Sequence[str] | None = None, prog: str = "python -m benchmarks asr --isolated") -> int:
    args = _parser(prog).parse_args(list(argv) if argv is not None else None)
    if args.worker:
        return _worker(args)
    from asr.audio import SAMPLE_RATE, AudioError, load_audio, naming_file
    from asr.models import UnknownModelError, resolve

    try:
        duration = load_audio(args.file).size / SAMPLE_RATE
        resolve(args.model)
    except (AudioError, UnknownModelError, OSError) as exc:
        print(f"{prog.removeprefix('python -m ')}: {naming_file(args.file, exc)}", file=sys.stderr)
        return 2
    config = BenchConfig(args.file, args.model, args.beam_size, args.batch_size, max(args.repeat, 1), args.device)
    reference = _reference(args.ref)
    results = []
    for approach in args.only or APPROACHES:
        if not args.json:
            print(f"running {LABELS[approach]} ...", file=sys.stderr, flush=True)
        results.append(_run_child(approach, config, duration, reference))
    report = _report(config, duration, reference, results)
    print(json.dumps(report) if args.json else _table(report))
    return 0 if all(r.error is None for r in results) else 1


def _parser(prog: str = "python -m benchmarks asr --isolated") -> argparse.ArgumentParser:
    from asr.models import default_model

    what = __doc__.split("\n\n")[0].split(": ", 1)[1]  # the docstring's first line without its own command
    p = argparse.ArgumentParser(prog=prog, description=f"{prog} FILE: {what}")
    p.add_argument("file", metavar="FILE", help="speech audio (any format load_audio reads)")
    p.add_argument("--ref", help="reference transcript: a text file, or the text itself")
    p.add_argument(
        "--model", default=default_model(), help=f"registered name, hub id or local folder (default {default_model()})"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--repeat", type=at_least(1), default=1, help="timed runs per approach (median reported; default 1)")
    p.add_argument("--beam-size", type=at_least(1), default=1, help="1 is greedy (default)")
    p.add_argument("--batch-size", type=at_least(1), default=8, help="windows per model call (default 8)")
    p.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto (default): a CUDA GPU if any, else CPU"
    )
    p.add_argument("--only", nargs="+", choices=APPROACHES, help="run only these approaches (default all)")
    p.add_argument("--worker", choices=APPROACHES, help=argparse.SUPPRESS)  # internal: one approach, JSON out
    return p


def _reference(ref: str | None) -> str | None:
    if ref is None:
        return None
    path = Path(ref).expanduser()
    return path.read_text(encoding="utf-8") if path.is_file() else ref


def _run_child(approach: str, config: BenchConfig, duration: float, reference: str | None) -> ApproachResult:
    cmd = [sys.executable, "-m", "benchmarks.full_context", config.file, "--worker", approach, "--model", config.model]
    cmd += ["--repeat", str(config.repeat), "--beam-size", str(config.beam_size)]
    cmd += ["--batch-size", str(config.batch_size), "--device", config.device]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [_root(), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return ApproachResult(approach, "", 0.0, (), 0.0, 0.0, 0.0, None, error=tail)
    data = json.loads(lines[-1])
    runs = tuple(data["runs"])
    median = statistics.median(runs)
    return ApproachResult(
        approach=approach,
        text=data["text"],
        compute_seconds=median,
        runs=runs,
        rtfx=duration / median if median > 0 else float("inf"),
        rss_delta_mb=data["rss_delta_mb"],
        peak_rss_mb=data["peak_rss_mb"],
        wer=_wer(reference, data["text"]) if reference is not None else None,
    )


def _wer(reference: str, hypothesis: str) -> float | None:
    from benchmarks.figures import wer  # here, not at the top: the timed child processes never score

    return wer(reference, hypothesis)


def _root() -> str:
    return str(Path(__file__).resolve().parent.parent)


# --- the child process: load, warm up, time, measure memory ------------------------------------------------


def _worker(args: argparse.Namespace) -> int:
    import logging

    from asr import logs
    from asr.audio import SAMPLE_RATE, load_audio

    logs.configure(logging.ERROR, logging.BASIC_FORMAT)
    audio = load_audio(args.file)
    run = _loaders()[args.worker](args)  # loading is not timed
    run(audio[: int(WARMUP_SECONDS * SAMPLE_RATE)])
    memory = _PeakMemory()
    runs, text = [], ""
    with memory:
        for _ in range(max(args.repeat, 1)):
            started = time.perf_counter()
            text = run(audio)
            runs.append(time.perf_counter() - started)
    print(json.dumps({"text": text, "runs": runs, **memory.result()}))
    return 0


def _loaders() -> dict[str, Callable[[argparse.Namespace], Callable]]:
    return {
        "ours-fw": _ours("faster-whisper"),
        "ours-tf": _ours("transformers"),
        "library": _library,
        "pipeline": _pipeline,
    }


def _ours(backend_name: str) -> Callable[[argparse.Namespace], Callable]:
    def load(args: argparse.Namespace) -> Callable:
        from asr.backends import load_backend
        from asr.results import DecodeOptions
        from asr.transcribe import transcribe

        backend = load_backend(args.model, backend_name, args.device)
        options = DecodeOptions(beam_size=args.beam_size, batch_size=args.batch_size, word_timestamps=True)
        return lambda audio: transcribe(audio, backend=backend, options=options).text

    return load


def _library(args: argparse.Namespace) -> Callable:
    from faster_whisper import BatchedInferencePipeline

    from asr.backends.faster_whisper import FasterWhisperBackend
    from asr.models import resolve

    model = FasterWhisperBackend(resolve(args.model), device=args.device).whisper_model  # as ours loads it
    pipe = BatchedInferencePipeline(model)

    def run(audio) -> str:
        segments, _ = pipe.transcribe(
            audio, beam_size=args.beam_size, batch_size=args.batch_size, word_timestamps=True, temperature=0.0
        )
        return " ".join(s.text.strip() for s in segments).strip()

    return run


def _pipeline(args: argparse.Namespace) -> Callable:
    """The Gradio recipe: ``transcriber({"sampling_rate": sr, "raw": y})["text"]`` after ``y /= max|y|``."""
    import numpy as np

    from asr.audio import SAMPLE_RATE
    from benchmarks.recipe import recipe_pipeline

    transcriber = recipe_pipeline(args.model, args.device)

    def run(audio) -> str:
        y = audio.astype(np.float32)
        peak = float(np.max(np.abs(y))) if y.size else 0.0
        y = y / peak if peak > 0 else y  # the recipe divides unconditionally (NaN on silence); we do not
        return transcriber({"sampling_rate": SAMPLE_RATE, "raw": y}, chunk_length_s=30)["text"].strip()

    return run


class _PeakMemory:
    """Peak resident set while the block runs, relative to the resident set when it starts."""

    def __init__(self) -> None:
        import psutil

        self._process = psutil.Process()
        self._baseline = self._peak = 0
        self._kernel_peak = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> _PeakMemory:
        self._baseline = self._peak = self._process.memory_info().rss
        try:  # writing 5 resets the kernel's peak-RSS counter (VmHWM) for this process
            Path("/proc/self/clear_refs").write_text("5")
            self._kernel_peak = _vm_hwm() is not None
        except OSError:
            self._kernel_peak = False
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        if self._kernel_peak:
            self._peak = max(self._peak, _vm_hwm() or 0)

    def _sample(self) -> None:
        while not self._stop.wait(0.01):
            self._peak = max(self._peak, self._process.memory_info().rss)

    def result(self) -> dict:
        mb = 1024 * 1024
        return {
            "rss_delta_mb": max(self._peak - self._baseline, 0) / mb,
            "peak_rss_mb": self._peak / mb,
            "memory_method": "VmHWM reset after loading" if self._kernel_peak else "10 ms RSS sampling",
        }


def _vm_hwm() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


# --- the report ---------------------------------------------------------------------------------------------


def _report(config: BenchConfig, duration: float, reference: str | None, results: list[ApproachResult]) -> dict:
    by_name = {r.approach: r for r in results}

    def ratio(ours: str, theirs: str) -> float | None:
        a, b = by_name.get(ours), by_name.get(theirs)
        if not a or not b or a.error or b.error or not b.rtfx:
            return None
        return a.rtfx / b.rtfx

    def wer_gap(ours: str, theirs: str) -> float | None:
        a, b = by_name.get(ours), by_name.get(theirs)
        if not a or not b or a.wer is None or b.wer is None:
            return None
        return a.wer - b.wer

    import torch

    return {
        "file": config.file,
        "duration": duration,
        "config": asdict(config),
        "reference": reference is not None,
        "cpu_count": os.cpu_count(),
        "omp_wait": omp_wait_setting(),
        "cuda": bool(torch.cuda.is_available()),
        "approaches": {r.approach: asdict(r) for r in results},
        "ratios": {
            "ours_fw_vs_library": ratio("ours-fw", "library"),
            "ours_tf_vs_pipeline": ratio("ours-tf", "pipeline"),
            "wer_ours_fw_minus_library": wer_gap("ours-fw", "library"),
            "wer_ours_tf_minus_pipeline": wer_gap("ours-tf", "pipeline"),
        },
    }


def _table(report: dict) -> str:
    cfg = report["config"]
    lines = [
        f"{report['file']}: {report['duration']:.1f} s of audio, model {cfg['model']}, beam {cfg['beam_size']}, "
        f"batch {cfg['batch_size']}, {cfg['repeat']} timed run(s) after one warm-up, {report['cpu_count']} CPU(s)"
        + (", CUDA" if report["cuda"] else ""),
        "",
        f"| {'approach':43} | rtfx              | compute s | WER   | peak RSS delta MB |",
        f"|{'-' * 45}|-------------------|-----------|-------|-------------------|",
    ]
    for name, r in report["approaches"].items():
        if r["error"]:
            lines.append(f"| {LABELS[name]:43} | failed: {r['error']}")
            continue
        wer = f"{r['wer']:.3f}" if r["wer"] is not None else "  -  "
        lines.append(
            f"| {LABELS[name]:43} | {r['rtfx']:17.1f} | {r['compute_seconds']:9.2f} | {wer} "
            f"| {r['rss_delta_mb']:17.0f} |"
        )
    ratios = report["ratios"]

    def fmt(value: float | None, spec: str) -> str:
        return format(value, spec) if value is not None else "n/a"

    lines += [
        "",
        f"ours-fw / library throughput: {fmt(ratios['ours_fw_vs_library'], '.2f')}x (target >= 0.9), "
        f"WER difference {fmt(ratios['wer_ours_fw_minus_library'], '+.3f')} (target <= +0.02)",
        f"ours-tf / plain pipeline throughput: {fmt(ratios['ours_tf_vs_pipeline'], '.2f')}x (target >= 1.0), "
        f"WER difference {fmt(ratios['wer_ours_tf_minus_pipeline'], '+.3f')}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
