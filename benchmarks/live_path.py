"""``python -m benchmarks live {sweep,match,probes}``: figures for the live path, channels and probes.

- ``sweep``: the built-in sweep (every utterance x the sweep's conditions) through ``evaluation run`` offline
  and then in streaming mode, one after the other in one process: rtfx (audio seconds per wall second) of each,
  and audio per CPU second, since on a shared machine wall time mostly measures the neighbours.
- ``match``: one file through streaming mode (a one-row dataset) and through the simulated clock of
  ``python -m benchmarks stream``, on the modelled and the measured clock, alternately ``--repeat`` times:
  committed WER and commit latencies of each (the modelled ones must be identical run to run, and equal with
  the same end-of-stream rule).
- ``probes``: the hallucination probes on both paths with the default model and VAD: words per probe.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from benchmarks.scratch import timed_run
from evaluation.cli_parser import at_least
from evaluation.scoring import rows_wer

SWEEP_NOISE = "clean,white@10,pink@10,babble@5,reverb@0.5"
TARGET_RTFX = 8.0  # streaming mode over the built-in sweep, 2 cores
MATCH_ROWS = tuple(
    f"{path}, {clock}{stop}"
    for clock in ("modelled", "measured")
    for path, stop in (("evaluation", ""), ("benchmarks stream", ""), ("benchmarks stream", ", stop"))
)  # evaluation's streaming mode ends each stream with its last chunk ("stop"); benchmarks stream, when idle after it


def _run(options, label: str) -> dict:
    run = timed_run(options)
    result, cpu = run.result, run.cpu_seconds
    audio = result.audio_seconds_done
    return {
        "path": label,
        "rows": len(result.rows),
        "audio_s": audio,
        "wall_s": result.wall_seconds,
        "rtfx": audio / result.wall_seconds,
        "audio_per_cpu_s": audio / cpu if cpu else float("nan"),
        "wer": rows_wer(result.rows),  # pooled over every row (both paths' rows, for --mode both)
        "result": result,
    }


def sweep(args: argparse.Namespace) -> int:
    from evaluation.runner import RunOptions

    base = RunOptions(dataset="builtin", noise=tuple(args.noise.split(",")), model=args.model, limit=args.limit)
    _run(dataclasses.replace(base, noise=("clean",), limit=1, mode="both"), "warm-up")
    streaming = dataclasses.replace(base, mode="streaming", stream_clock=args.clock)
    rows = [
        _run(base, "offline"),
        _run(streaming, "streaming"),
        _run(dataclasses.replace(streaming, mode="both"), "both"),
    ]
    print(f"built-in sweep: model {args.model}, noise {args.noise}, limit {args.limit or 'all'}, clock {args.clock}")
    print(f"{'path':10} {'rows':>5} {'audio s':>8} {'wall s':>7} {'rtfx':>6} {'audio/CPU s':>11} {'WER':>6}")
    for r in rows:
        print(
            f"{r['path']:10} {r['rows']:5d} {r['audio_s']:8.1f} {r['wall_s']:7.1f} {r['rtfx']:6.1f} "
            f"{r['audio_per_cpu_s']:11.1f} {r['wer'] * 100:5.1f}%"
        )
    extra = rows[2]["wall_s"] - rows[0]["wall_s"]  # what --mode both adds to an offline run: the streaming path
    print(
        f"streaming path alone (both minus offline): {rows[1]['audio_s'] / extra:.1f}x real time" if extra > 0 else ""
    )
    s = rows[1]["result"].summary.streaming
    from evaluation.stream_tables import format_streaming

    print(format_streaming(s, ["noise"]).to_string(index=False))
    verdict = "meets" if rows[1]["rtfx"] >= TARGET_RTFX else "misses"
    print(f"streaming target >= {TARGET_RTFX:.0f}x real time on 2 cores: {verdict} it on this machine now")
    return 0


def _one_row_dataset(folder: Path, audio: Path, text: str) -> Path:
    manifest = folder / "one.csv"
    with manifest.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["audio", "text"])
        writer.writerow([str(audio.resolve()), text])
    return manifest


def _stream_bench(audio: np.ndarray, backend, reference: str, clock: str, stop_with_last_chunk: bool) -> dict:
    """The measurement of ``python -m benchmarks stream``: its simulated clock, one session, default options."""
    from asr.audio import SAMPLE_RATE
    from asr.streaming.policy import StreamOptions
    from asr.streaming.simulate import simulate
    from evaluation.scoring import score

    options = StreamOptions(max_session_seconds=audio.size / SAMPLE_RATE + 60.0, keep_recording=False)
    run = simulate(
        audio, backend, options, sessions=1, chunk_seconds=0.5, clock=clock, stop_with_last_chunk=stop_with_last_chunk
    )
    latencies = run.latencies()
    return {
        "wer": score(reference, run.texts[0]).wer,
        "p50": float(np.percentile(latencies, 50)),
        "p95": float(np.percentile(latencies, 95)),
        "text": run.texts[0],
    }


def real_excerpt(folder: Path, seconds: float = 60.0, every: int = 9) -> tuple[Path, Path]:
    """About a minute of real speech: every ``every``-th English dev prompt of 6+ words of the real-speech set,
    joined with 0.7 s pauses until ``seconds`` of speech (the file ``match`` measures by default)."""
    import soundfile as sf

    from asr.audio import SAMPLE_RATE, load_audio
    from evaluation.realspeech import real_dir

    root = real_dir()
    with (root / "metadata.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["language"] == "en" and r["split"] == "dev" and int(r["words"]) >= 6]
    parts, texts, total = [], [], 0.0
    for row in rows[::every]:
        audio = load_audio(root / row["file_name"])
        parts += [audio, np.zeros(int(0.7 * SAMPLE_RATE), np.float32)]
        texts.append(row["text"])
        total += audio.size / SAMPLE_RATE
        if total >= seconds:
            break
    sf.write(folder / "real-excerpt.wav", np.concatenate(parts), SAMPLE_RATE)
    (folder / "real-excerpt.txt").write_text(" ".join(texts), encoding="utf-8")
    return folder / "real-excerpt.wav", folder / "real-excerpt.txt"


def match(args: argparse.Namespace) -> int:
    from asr.audio import load_audio
    from asr.backends import get_backend
    from evaluation.runner import RunOptions

    if args.file is None:
        args.file, args.ref = real_excerpt(Path(tempfile.mkdtemp(prefix="live-path-")))
    reference = Path(args.ref).read_text(encoding="utf-8").strip()
    audio = load_audio(args.file)
    backend = get_backend(args.model, "faster-whisper")
    runs: dict[str, list[dict]] = {name: [] for name in MATCH_ROWS}
    with tempfile.TemporaryDirectory() as tmp:
        dataset = _one_row_dataset(Path(tmp), Path(args.file), reference)
        for _ in range(args.repeat):  # alternating, so a change of load hits every measurement alike
            for clock in ("modelled", "measured"):
                options = RunOptions(dataset=str(dataset), model=args.model, mode="streaming", stream_clock=clock)
                row = _run(options, "streaming")["result"].rows.iloc[0]
                runs[f"evaluation, {clock}"].append(
                    {"wer": row["wer"], "p50": row["commit_latency_p50_s"], "p95": row["commit_latency_p95_s"],
                     "text": row["hypothesis"]}
                )  # fmt: skip
                runs[f"benchmarks stream, {clock}"].append(_stream_bench(audio, backend, reference, clock, False))
                runs[f"benchmarks stream, {clock}, stop"].append(_stream_bench(audio, backend, reference, clock, True))
    print(f"{args.file}: {audio.size / 16000:.1f} s, model {args.model}, {args.repeat} alternating runs (mean ± sd)")
    print(f"{'':34} {'committed WER %':>16} {'latency p50 (s)':>16} {'latency p95 (s)':>16} {'texts':>6}")
    for name, rows in runs.items():
        cells = [_mean_sd([r[k] for r in rows], 100 if k == "wer" else 1) for k in ("wer", "p50", "p95")]
        print(f"{name:34} {cells[0]:>16} {cells[1]:>16} {cells[2]:>16} {len({r['text'] for r in rows}):>6}")
    same = all(
        a["text"] == b["text"] and all(abs(a[k] - b[k]) < 1e-3 for k in ("wer", "p50", "p95"))  # latencies: 4 decimals
        for a, b in zip(runs["evaluation, modelled"], runs["benchmarks stream, modelled, stop"], strict=True)
    )
    print(
        f"evaluation and benchmarks stream with stop_with_last_chunk on the modelled clock: {'identical' if same else 'DIFFER'}"
    )
    return 0


def _mean_sd(values: Sequence[float], scale: float) -> str:
    values = [v * scale for v in values]
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {sd:.2f}"


def probes(args: argparse.Namespace) -> int:
    from evaluation.runner import RunOptions

    result = _run(RunOptions(dataset="probes", model=args.model, mode="both"), "probes")["result"]
    rows = result.rows
    print(f"hallucination probes: model {args.model or 'default'}, default VAD, both paths")
    table = rows.pivot_table(index="probe", columns="mode", values="invented_words", aggfunc="sum", sort=False)
    seconds = rows[rows["mode"] == "offline"].groupby("probe", sort=False)["audio_seconds"].sum()
    table["seconds"] = seconds.round(0)
    print(table.to_string())
    worded = rows[rows["invented_words"] > 0]
    if worded.empty:
        print("no probe clip produced a word on either path")
    for row in worded.itertuples(index=False):
        print(f"  {row.id} [{row.mode}]: {row.invented_text}")
    return 0


SWEEP_TEXT = (
    "The built-in sweep through evaluation run offline, then --mode streaming, then --mode both, in one process: "
    "rows, wall seconds, rtfx, audio per CPU second and WER of each path, and streaming mode's per-condition table."
)
MATCH_TEXT = (
    "One file through streaming mode (a one-row dataset) and through benchmarks stream's clock, with and without "
    "stopping at the last chunk, on the modelled and the measured clock, alternately --repeat times: committed WER "
    "and commit latencies of the six paths, and whether the modelled ones are identical."
)
PROBES_TEXT = "The hallucination probes through both paths with the default VAD: the words each probe produced."


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m benchmarks live", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sweep", help="offline and streaming rtfx over the built-in sweep", description=SWEEP_TEXT)
    s.add_argument("--noise", default=SWEEP_NOISE, help=f"as evaluation run --noise (default {SWEEP_NOISE})")
    s.add_argument("--limit", type=at_least(1), default=None, help="utterances of the built-in set (default all)")
    s.add_argument(
        "--clock",
        choices=("modelled", "measured"),
        default="modelled",
        help="streaming mode's clock (default modelled)",
    )
    m = sub.add_parser("match", help="streaming mode against `benchmarks stream` on one file", description=MATCH_TEXT)
    m.add_argument("file", nargs="?", default=None, help="speech audio (default: a real-speech excerpt, 60 s)")
    m.add_argument("--ref", default=None, help="reference transcript of FILE (text file)")
    m.add_argument("--repeat", type=at_least(1), default=3, help="alternating runs of the six paths (default 3)")
    p = sub.add_parser("probes", help="words invented on the probes, both paths", description=PROBES_TEXT)
    for q in (s, m, p):
        q.add_argument("--model", default="whisper-tiny.en", help="model name (default whisper-tiny.en)")
    return top


def main(argv: Sequence[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    if args.command == "match" and args.file is not None and args.ref is None:
        top.error("match: --ref REF is needed with a FILE")  # exit 2, as every other bad argument
    from asr.audio import AudioError
    from evaluation.cli import USER_ERRORS

    try:
        return {"sweep": sweep, "match": match, "probes": probes}[args.command](args)
    except (*USER_ERRORS, AudioError, OSError) as exc:  # a bad --model, --noise or file: one line, as evaluation's
        print(f"benchmarks live {args.command}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
