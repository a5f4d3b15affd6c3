"""``python -m benchmarks stream FILE``: what a live user would see, measured faster than real time.

The file streams through :func:`asr.streaming.simulate.simulate` (chunks arriving on a simulated clock, the
scheduler's rounds run for real), so update costs and commit latencies are what a user on this machine would see
live while an hour of audio takes minutes. With ``--sessions N`` the N streams share one model and one worker, as
N testers would. The recipe's grow-and-retranscribe approach runs on the same audio as the baseline
(:mod:`benchmarks.recipe`). Memory is sampled here, around the engine's driver.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asr import logs
from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.backends import DEFAULT_BACKEND, get_backend
from asr.models import default_model
from asr.results import BACKENDS
from asr.streaming.clock import CLOCKS, cost_model_for, fit
from asr.streaming.policy import StreamOptions
from asr.streaming.scheduler import RoundReport, Scheduler
from asr.streaming.simulate import SimulatedStream, simulate
from asr.transcribe import transcribe
from asr.vad import speech_probabilities
from benchmarks.figures import MINUTE, pct, update_figures, wer
from benchmarks.recipe import run_baseline
from evaluation.cli_parser import above_zero, at_least

logger = logging.getLogger(__name__)

LOG_EVERY = 300.0  # simulated seconds between progress lines (and memory samples) on stderr


@dataclass(frozen=True)
class StreamRun:
    """What the simulated live run measured: the engine's observations plus this process's memory."""

    stream: SimulatedStream
    rss_start_mb: float  # before the sessions were created
    rss_end_mb: float  # after the last word was committed, before the sessions were closed
    rss_peak_mb: float  # highest value sampled during the run
    rss_1min_mb: float  # after the first minute of the stream (working memory of the stream has settled)


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class _MemoryProbe:
    """The resident set after every round; its last sample is taken when every word is committed."""

    def __init__(self, audio_seconds: float) -> None:
        self.audio_seconds = audio_seconds
        self.start = self.peak = self.last = rss_mb()
        self.first_minute: float | None = None
        self.next_log = LOG_EVERY

    def __call__(self, clock: float) -> None:
        self.last = rss_mb()
        self.peak = max(self.peak, self.last)
        if self.first_minute is None and clock >= MINUTE:
            self.first_minute = self.last
        if clock >= self.next_log:
            logger.info("benchmarks stream: %.0f of %.0f s streamed, rss %.0f MB", clock, self.audio_seconds, self.peak)
            self.next_log += LOG_EVERY


class _Recorder(Scheduler):
    """An unthreaded scheduler that keeps every round's report (the calibration's data)."""

    def __init__(self, backend) -> None:
        super().__init__(backend, threaded=False)
        self.reports: list[RoundReport] = []

    def run_once(self) -> RoundReport:
        report = super().run_once()
        self.reports.append(report)
        return report


def measure(
    audio: np.ndarray,
    scheduler: Scheduler,
    options: StreamOptions,
    sessions: int,
    chunk: float,
    clock: str,
    cpu_share: float = 1.0,
) -> StreamRun:
    """The engine's simulated live run, with memory sampled around it."""
    probe = _MemoryProbe(audio.size / SAMPLE_RATE)
    kwargs = {"chunk_seconds": chunk, "on_round": probe, "clock": clock, "cpu_share": cpu_share}
    stream = simulate(audio, scheduler, options, sessions=sessions, **kwargs)
    return StreamRun(
        stream=stream,
        rss_start_mb=probe.start,
        rss_end_mb=probe.last,
        rss_peak_mb=probe.peak,
        rss_1min_mb=probe.first_minute if probe.first_minute is not None else probe.last,
    )


def figures(run: StreamRun, offline_text: str, reference: str | None, sessions: int) -> dict:
    """The JSON object of our approach: every figure the benchmark reports, plus a few that explain them."""
    stream = run.stream
    text = stream.texts[0]
    costs = np.asarray([r.compute_seconds for r in stream.rounds])
    times = np.asarray([r.clock for r in stream.rounds])
    latencies = stream.latencies()
    return {
        "sessions": sessions,
        "audio_seconds": round(stream.audio_seconds, 3),
        "clock": stream.clock,
        "cost_model": stream.cost_model.describe() if stream.cost_model else None,
        "cpu_share": stream.cpu_share,
        "measured_compute_seconds": round(float(costs.sum()), 3),
        "clock_compute_seconds": round(sum(r.cost_seconds for r in stream.rounds), 3),
        **update_figures(costs, times, stream.audio_seconds),
        "commit_latency_p50": pct(latencies, 50),
        "commit_latency_p95": pct(latencies, 95),
        "commit_latency_max": round(float(latencies.max()), 3) if latencies.size else None,
        "final_lag_seconds": round(stream.clock_seconds - stream.audio_seconds, 3),
        "max_lag_seconds": round(stream.max_lag_seconds, 3),
        "windows": sum(r.windows for r in stream.rounds),
        "catchup_windows": sum(stream.catchup_windows),
        "max_buffer_seconds": round(stream.max_buffer_seconds, 3),
        "committed_text": text,
        "sessions_agree": len(set(stream.texts)) == 1,
        "wer_vs_offline": wer(offline_text, text),
        "wer_vs_ref": wer(reference, text) if reference else None,
        "offline_wer_vs_ref": wer(reference, offline_text) if reference else None,
        "rss_start_mb": round(run.rss_start_mb, 1),
        "rss_end_mb": round(run.rss_end_mb, 1),
        "rss_peak_mb": round(run.rss_peak_mb, 1),
        "rss_after_first_min_mb": round(run.rss_1min_mb, 1),
        "recording_mb_on_disk": round(stream.recording_bytes / 2**20, 1),
    }


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks stream", description=__doc__.split("\n")[0])
    p.add_argument("file", help="speech audio to stream (any format load_audio reads)")
    p.add_argument("--chunk", type=above_zero, default=0.5, help="seconds per chunk, as the browser sends (0.5)")
    p.add_argument("--sessions", type=at_least(1), default=1, help="streams of the file at once on one model (1)")
    p.add_argument("--model", default=None, help=f"model name (default {default_model()})")
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS, help=f"engine (default {DEFAULT_BACKEND})")
    p.add_argument("--ref", default=None, help="reference transcript (text file) of FILE, for WER")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--loop", type=at_least(1), default=1, help="repeat the file K times into one long stream (1)")
    p.add_argument("--no-baseline", action="store_true", help="skip the recipe's grow-and-retranscribe baseline")
    p.add_argument("--baseline-max-lag", type=above_zero, default=10.0, help="stop the baseline this far behind (10 s)")
    p.add_argument("--beam-size", type=at_least(1), default=None, help="beam size of the stream's decoding (default 3)")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a StreamOptions field (repeatable; checked together)",
    )
    p.add_argument("--no-prefix", action="store_true", help="do not force committed words as the prefix (A/B)")
    p.add_argument("--no-recording", action="store_true", help="do not keep the recordings (memory check)")
    p.add_argument("--clock", choices=CLOCKS, default="measured", help="advance the clock by measured compute "
                   "(default: this machine as loaded now) or by the calibrated cost model (reproducible)")  # fmt: skip
    p.add_argument("--cpu-share", type=_share, default=1.0, help="share of the CPU the stream's worker gets "
                   "(0 < share <= 1): every round costs 1/share as much clock time, on either clock (1.0)")  # fmt: skip
    p.add_argument("--calibrate", action="store_true", help="fit the modelled clock's coefficients to this run's "
                   "measured rounds and print them (one session, measured clock)")  # fmt: skip
    return p


def _share(value: str) -> float:
    try:
        share = float(value)
    except ValueError:
        share = float("nan")
    if not 0 < share <= 1:
        raise argparse.ArgumentTypeError(f"must be a number > 0 and <= 1, not {value!r}")
    return share


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = parser()
    args = p.parse_args(list(argv))
    if args.calibrate and (args.sessions != 1 or args.clock != "measured" or args.cpu_share != 1.0):
        p.error("--calibrate measures one session on the measured clock with the whole CPU")
    if args.chunk <= 0 or args.sessions < 1 or args.loop < 1:
        p.error("--chunk must be > 0, --sessions and --loop >= 1")
    return args


def stream_options(args: argparse.Namespace, audio_seconds: float) -> StreamOptions:
    """The stream's options: the defaults, the flags, then every ``--set`` applied together and checked once.

    Checked one by one, ``--set trim_seconds=12 --set busy_trim_seconds=10`` failed at the first (12 is below the
    default busy_trim_seconds of 13) although the pair is valid.
    """
    options = StreamOptions(
        max_session_seconds=audio_seconds + 60.0, keep_recording=not args.no_recording, force_prefix=not args.no_prefix
    )
    changes = {}
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in {f.name for f in dataclasses.fields(StreamOptions)} or name == "decode":
            raise ValueError(f"--set: {name!r} is not a StreamOptions field")
        kind = type(getattr(options, name))
        if value.lower() == "none" or kind is type(None):  # an optional field: "none", or a number
            kind = (lambda v: None) if value.lower() == "none" else float  # noqa: E731
        try:
            changes[name] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
        except ValueError:  # it said "could not convert string to float: 'abc'", naming neither flag nor field
            raise ValueError(f"--set {item}: {name} takes {'an integer' if kind is int else 'a number'}") from None
    options = options.replace(**changes)
    if args.beam_size:
        options = options.replace(decode=options.decode.replace(beam_size=args.beam_size))
    return options


def run(args: argparse.Namespace) -> dict:
    audio = load_audio(args.file)
    if args.loop > 1:
        audio = np.tile(audio, args.loop)
    reference = None
    if args.ref:
        with open(args.ref, encoding="utf-8") as f:
            reference = " ".join([f.read().strip()] * args.loop)
    options = stream_options(args, audio.size / SAMPLE_RATE)  # a bad --set stops before the model loads
    model = args.model or default_model()
    backend = get_backend(model, args.backend)
    # warm-up: the model's working memory for the largest window and batch is allocated before rss_start
    longest = audio[: int(options.max_buffer_seconds * SAMPLE_RATE)]
    backend.transcribe_windows([longest] * args.sessions, options.decode)
    speech_probabilities(longest[:SAMPLE_RATE])  # loads the VAD model
    scheduler = _Recorder(backend)
    result = measure(audio, scheduler, options, args.sessions, args.chunk, args.clock, args.cpu_share)
    rounds = [(r.work, r.compute_seconds) for r in scheduler.reports if r.work]
    modelled = cost_model_for(model, args.backend)
    t0 = time.perf_counter()
    offline = transcribe(audio, backend=backend)
    logger.info("offline transcript in %.1f s", time.perf_counter() - t0)
    out = {"model": model, "backend": args.backend, "chunk_seconds": args.chunk, "loop": args.loop}
    out.update(figures(result, offline.text, reference, args.sessions))
    out["modelled_compute_seconds"] = round(sum(modelled.round(w) for w, _ in rounds), 3)  # same rounds, the model
    if args.calibrate:
        fitted = fit(rounds, f"{model}/{args.backend}, fitted to {len(rounds)} rounds of {args.file}")
        out["calibrated"] = fitted.describe()
        out["calibrated_compute_seconds"] = round(sum(fitted.round(w) for w, _ in rounds), 3)
    out["offline_text"] = offline.text
    out["options"] = dataclasses.asdict(options)
    out["baseline"] = (
        None if args.no_baseline else run_baseline(audio, model, args.chunk, offline, max_lag=args.baseline_max_lag)
    )
    return out


ROWS = (
    ("audio_seconds", "audio streamed (s)"),
    ("sessions", "sessions at once"),
    ("clock", "clock"),
    ("cpu_share", "CPU share"),
    ("measured_compute_seconds", "measured compute (s)"),
    ("modelled_compute_seconds", "modelled compute, same rounds (s)"),
    ("update_p50", "update p50 (s)"),
    ("update_p95_first_min", "update p95, first minute (s)"),
    ("update_p95_last_min", "update p95, last minute (s)"),
    ("update_max", "update max (s)"),
    ("commit_latency_p50", "commit latency p50 (s)"),
    ("commit_latency_p95", "commit latency p95 (s)"),
    ("final_lag_seconds", "final lag (s)"),
    ("max_lag_seconds", "max lag (s)"),
    ("catchup_windows", "windows in catch-up mode"),
    ("wer_vs_offline", "WER vs offline transcript"),
    ("wer_vs_ref", "WER vs reference"),
    ("offline_wer_vs_ref", "offline WER vs reference"),
    ("rss_start_mb", "RSS at start (MB)"),
    ("rss_end_mb", "RSS at end (MB)"),
    ("stopped_at_seconds", "stopped at (s)"),
    ("stop_reason", "stop reason"),
)


def table(out: dict) -> str:
    base = out.get("baseline") or {}
    lines = [f"{'':32} {'ours':>14}  {'recipe (baseline)':<}"]
    for key, label in ROWS:
        ours, theirs = out.get(key, ""), base.get(key, "")
        lines.append(f"{label:32} {_cell(ours):>14}  {_cell(theirs)}")
    lines.append(f"committed text: {out['committed_text'][:300]}{'...' if len(out['committed_text']) > 300 else ''}")
    if out.get("calibrated"):
        lines.append(f"calibrated cost model: {out['calibrated']}")
        lines.append(f"  on this run's rounds: {out['calibrated_compute_seconds']} s modelled")
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None or value == "":
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logs.configure(logging.INFO, "%(message)s")
    for noisy in ("faster_whisper", "httpx", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        out = run(args)
    except (AudioError, OSError, ValueError) as exc:
        print(f"benchmarks stream: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out) if args.json else table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
