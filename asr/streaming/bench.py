"""``python -m asr stream-bench FILE``: what a live user would see, measured faster than real time.

The file is cut into chunks that "arrive" on a simulated clock, as a browser sends them. The scheduler's rounds
run for real; the clock advances by each round's measured compute, and jumps to the next chunk's arrival when
the worker is idle. So update costs and commit latencies (the clock when a word became final, minus the time its
audio ended) are what a user on this machine would see live, while an hour of audio takes minutes. With
``--sessions N`` the N streams share one model and one worker, as N testers would. The recipe's
grow-and-retranscribe approach runs on the same audio as the baseline (:mod:`asr.streaming.baseline`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import sys
import time
from array import array
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from asr.audio import SAMPLE_RATE, AudioError, load_audio
from asr.backends import DEFAULT_BACKEND, get_backend
from asr.models import default_model
from asr.streaming.baseline import run_baseline
from asr.streaming.policy import StreamOptions
from asr.streaming.scheduler import Scheduler
from asr.streaming.session import StreamingSession
from asr.transcribe import transcribe
from asr.vad import speech_probabilities

logger = logging.getLogger(__name__)

MINUTE = 60.0


@dataclass(frozen=True)
class StreamRun:
    """What the simulated live run measured."""

    audio_seconds: float  # length of the stream (per session)
    clock_seconds: float  # simulated wall time at the end (audio length plus the final lag)
    update_costs: np.ndarray  # compute seconds of each worker round that decoded something
    update_times: np.ndarray  # simulated clock at the start of each of those rounds
    latencies: np.ndarray  # commit latency of every committed word of every session
    texts: tuple[str, ...]  # each session's committed text
    rss_start_mb: float  # before the sessions were created
    rss_end_mb: float  # after the last word was committed, before the sessions were closed
    rss_peak_mb: float  # highest value sampled during the run
    rss_1min_mb: float  # after the first minute of the stream (working memory of the stream has settled)
    recording_mb: float  # size of all recordings kept (on disk, int16)
    max_window_seconds: float  # longest buffer any session held


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def simulate(audio: np.ndarray, scheduler: Scheduler, options: StreamOptions, sessions: int, chunk: float) -> StreamRun:
    """Feed ``audio`` to ``sessions`` streams in ``chunk``-second pieces against the simulated clock."""
    step = max(int(round(chunk * SAMPLE_RATE)), 1)
    n_chunks = math.ceil(audio.size / step)
    rss_start = rss_mb()
    streams = [StreamingSession(options=options, scheduler=scheduler) for _ in range(sessions)]
    costs, times, latencies = array("d"), array("d"), array("d")
    seen = [0] * sessions
    clock, fed, peak, max_window, next_log = 0.0, 0, rss_start, 0.0, MINUTE
    rss_1min = None

    def collect(now: float) -> None:
        for i, s in enumerate(streams):
            words = s.update().committed_words
            latencies.extend(now - w.end for w in words[seen[i] :])
            seen[i] = len(words)

    while True:
        while fed < n_chunks and min((fed + 1) * step, audio.size) / SAMPLE_RATE <= clock + 1e-9:
            piece = audio[fed * step : (fed + 1) * step]
            for s in streams:
                s.feed(piece)
            fed += 1
        report = scheduler.run_once()
        max_window = max([max_window] + [s.buffer_seconds for s in streams])
        if report.windows:
            times.append(clock)
            costs.append(report.compute_seconds)
            clock += report.compute_seconds
            collect(clock)
        elif fed < n_chunks:
            clock = min((fed + 1) * step, audio.size) / SAMPLE_RATE
        else:
            break
        if clock >= next_log:
            peak = max(peak, rss_mb())
            rss_1min = peak if rss_1min is None else rss_1min
            logger.info("stream-bench: %.0f of %.0f s streamed, rss %.0f MB", clock, audio.size / SAMPLE_RATE, peak)
            next_log += 300.0
    for s in streams:
        s.end()
    while not all(s.done for s in streams):
        report = scheduler.run_once()
        clock += report.compute_seconds
        if report.windows:
            times.append(clock - report.compute_seconds)
            costs.append(report.compute_seconds)
        collect(clock)
    for s in streams:
        s.finish()  # raises the error of a failed session
    rss_end = rss_mb()
    recording_mb = sum(s.recording_bytes for s in streams) / 2**20
    texts = tuple(s.update().committed for s in streams)
    for s in streams:
        s.close()
    return StreamRun(
        audio_seconds=audio.size / SAMPLE_RATE,
        clock_seconds=clock,
        update_costs=np.asarray(costs),
        update_times=np.asarray(times),
        latencies=np.asarray(latencies),
        texts=texts,
        rss_start_mb=rss_start,
        rss_end_mb=rss_end,
        rss_peak_mb=max(peak, rss_end),
        rss_1min_mb=rss_1min if rss_1min is not None else rss_end,
        recording_mb=recording_mb,
        max_window_seconds=max_window,
    )


def _pct(values: np.ndarray, q: float) -> float | None:
    return round(float(np.percentile(values, q)), 3) if values.size else None


def update_figures(costs: np.ndarray, times: np.ndarray, audio_seconds: float) -> dict:
    """update_p50/p95 of the first and the last minute, and the max, in compute seconds per update."""
    last_from = max(audio_seconds - MINUTE, 0.0)
    return {
        "update_p50": _pct(costs, 50),
        "update_p95_first_min": _pct(costs[times < MINUTE], 95),
        "update_p95_last_min": _pct(costs[times >= last_from], 95),
        "update_max": round(float(costs.max()), 3) if costs.size else None,
        "updates": int(costs.size),
    }


def wer(reference: str, hypothesis: str) -> float | None:
    """The validation WER (:func:`evaluation.scoring.score`), rounded; None when the reference has no words."""
    from evaluation.scoring import score

    result = score(reference, hypothesis)
    return None if math.isnan(result.wer) else round(result.wer, 4)


def figures(run: StreamRun, offline_text: str, reference: str | None, sessions: int) -> dict:
    """The JSON object of our approach: every figure the issue asks for, plus a few that explain them."""
    text = run.texts[0]
    return {
        "sessions": sessions,
        "audio_seconds": round(run.audio_seconds, 3),
        **update_figures(run.update_costs, run.update_times, run.audio_seconds),
        "commit_latency_p50": _pct(run.latencies, 50),
        "commit_latency_p95": _pct(run.latencies, 95),
        "commit_latency_max": round(float(run.latencies.max()), 3) if run.latencies.size else None,
        "final_lag_seconds": round(run.clock_seconds - run.audio_seconds, 3),
        "max_buffer_seconds": round(run.max_window_seconds, 3),
        "committed_text": text,
        "sessions_agree": len(set(run.texts)) == 1,
        "wer_vs_offline": wer(offline_text, text),
        "wer_vs_ref": wer(reference, text) if reference else None,
        "offline_wer_vs_ref": wer(reference, offline_text) if reference else None,
        "rss_start_mb": round(run.rss_start_mb, 1),
        "rss_end_mb": round(run.rss_end_mb, 1),
        "rss_peak_mb": round(run.rss_peak_mb, 1),
        "rss_after_first_min_mb": round(run.rss_1min_mb, 1),
        "recording_mb_on_disk": round(run.recording_mb, 1),
    }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m asr stream-bench", description=__doc__.split("\n")[0])
    p.add_argument("file", help="speech audio to stream (any format load_audio reads)")
    p.add_argument("--chunk", type=float, default=0.5, help="seconds per chunk, as the browser sends (0.5)")
    p.add_argument("--sessions", type=int, default=1, help="streams of the file at once on one model (1)")
    p.add_argument("--model", default=None, help="model name (default: the registry's default)")
    p.add_argument("--backend", default=DEFAULT_BACKEND, help="faster-whisper (default) or transformers")
    p.add_argument("--ref", default=None, help="reference transcript (text file) of FILE, for WER")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.add_argument("--loop", type=int, default=1, help="repeat the file K times into one long stream (1)")
    p.add_argument("--no-baseline", action="store_true", help="skip the recipe's grow-and-retranscribe baseline")
    p.add_argument("--baseline-max-lag", type=float, default=10.0, help="stop the baseline this far behind (10 s)")
    p.add_argument("--beam-size", type=int, default=None, help="beam size of the stream's decoding (default 3)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="override a StreamOptions field")
    p.add_argument("--no-prefix", action="store_true", help="do not force committed words as the prefix (A/B)")
    p.add_argument("--no-recording", action="store_true", help="do not keep the recordings (memory check)")
    args = p.parse_args(list(argv))
    if args.chunk <= 0 or args.sessions < 1 or args.loop < 1:
        p.error("--chunk must be > 0, --sessions and --loop >= 1")
    return args


def run(args: argparse.Namespace) -> dict:
    audio = load_audio(args.file)
    if args.loop > 1:
        audio = np.tile(audio, args.loop)
    reference = None
    if args.ref:
        with open(args.ref, encoding="utf-8") as f:
            reference = " ".join([f.read().strip()] * args.loop)
    model = args.model or default_model()
    backend = get_backend(model, args.backend)
    options = StreamOptions(
        max_session_seconds=audio.size / SAMPLE_RATE + 60.0,
        keep_recording=not args.no_recording,
        force_prefix=not args.no_prefix,
    )
    for item in args.set:
        name, _, value = item.partition("=")
        if name not in {f.name for f in dataclasses.fields(StreamOptions)} or name == "decode":
            raise ValueError(f"--set: {name!r} is not a StreamOptions field")
        kind = type(getattr(options, name))
        options = options.replace(**{name: value.lower() in ("1", "true", "yes") if kind is bool else kind(value)})
    if args.beam_size:
        options = options.replace(decode=options.decode.replace(beam_size=args.beam_size))
    # warm-up: the model's working memory for the largest window and batch is allocated before rss_start
    longest = audio[: int(options.max_buffer_seconds * SAMPLE_RATE)]
    backend.transcribe_windows([longest] * args.sessions, options.decode)
    speech_probabilities(longest[:SAMPLE_RATE])  # loads the VAD model
    result = simulate(audio, Scheduler(backend, threaded=False), options, args.sessions, args.chunk)
    t0 = time.perf_counter()
    offline = transcribe(audio, backend=backend)
    logger.info("offline transcript in %.1f s", time.perf_counter() - t0)
    out = {"model": model, "backend": args.backend, "chunk_seconds": args.chunk, "loop": args.loop}
    out.update(figures(result, offline.text, reference, args.sessions))
    out["offline_text"] = offline.text
    out["options"] = dataclasses.asdict(options)
    out["baseline"] = (
        None
        if args.no_baseline
        else run_baseline(audio, model, args.chunk, offline, max_lag=args.baseline_max_lag, backend_name=args.backend)
    )
    return out


ROWS = (
    ("audio_seconds", "audio streamed (s)"),
    ("sessions", "sessions at once"),
    ("update_p50", "update p50 (s)"),
    ("update_p95_first_min", "update p95, first minute (s)"),
    ("update_p95_last_min", "update p95, last minute (s)"),
    ("update_max", "update max (s)"),
    ("commit_latency_p50", "commit latency p50 (s)"),
    ("commit_latency_p95", "commit latency p95 (s)"),
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
    return "\n".join(lines)


def _cell(value) -> str:
    if value is None or value == "":
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    for noisy in ("faster_whisper", "httpx", "transformers"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        out = run(args)
    except (AudioError, OSError, ValueError) as exc:
        print(f"stream-bench: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out) if args.json else table(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
