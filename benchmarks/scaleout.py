"""``python -m benchmarks ray``: the Ray executor against the local one, and one Ray node against two.

Every measurement runs in a fresh process, one after the other in this command, so the figures are side by side
on the same (shared) machine; compare their ratios, not their absolute speeds. For each run it prints:
- end to end: rows and audio seconds per wall second from the run's start (Ray: actor start-up and model loading
  per actor included; local: the model is loaded before, as a long-lived dashboard has it);
- first result: seconds until the first batch is stored (Ray: start-up, one model per actor, one batch);
- driver CPU per row (Ray runs): the driver process's CPU time over the run divided by the rows, against the
  decode time per row; below 2 % means the driver is not what limits more nodes.
Equal runs are checked by digest of results.csv (without compute_seconds) and summary.json's groups, with the
rows the temperature fallback decoded again counted. ``--parquet`` first copies the rows to a hub-layout
Parquet dataset, so that the Ray runs' workers read each row's audio from its shards, as for a hub dataset.
The scaling part starts a cluster on this machine with ``ray start --head --num-cpus 1`` and adds a second node
with ``ray start --address ... --num-cpus 1``; each node process is started here with ``--block`` and stopped by
its own process id.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from benchmarks.scratch import timed_run
from evaluation.cli_parser import at_least
from evaluation.spreadsheet import read_csv

DEFAULT_NOISE = "clean,white@10,pink@10,babble@5,reverb@0.5"  # the built-in sweep of `benchmarks sweep`
TARGET_RATIO = 0.9
TARGET_DRIVER_SHARE = 0.02
NODE_START_TIMEOUT_S = 120
NODE_OBJECT_STORE = 400 * 1024**2  # bytes per node: the machine is shared
TIMING = ["compute_seconds"]  # the only column two equal runs may differ in: a wall-clock share of a batch
AUTH = {"RAY_AUTH_MODE": "token"}  # nodes and drivers share ~/.ray/auth_token (Ray's token authentication)


@dataclass(frozen=True)
class Measured:
    executor: str
    rows: int
    audio_seconds: float
    wall_seconds: float  # run_validation's own wall time (dataset loading excluded)
    first_result_seconds: float  # from the run's start to its first stored batch
    first_rows: int  # rows in the first stored batch
    last_result_seconds: float
    driver_cpu_seconds: float  # this process's CPU time from the first stored batch to the last (local: decoding too)
    compute_seconds: float  # the rows' decode time (the engine's own, summed)
    hypotheses: str  # every hypothesis, joined: equal runs give the same text
    results_digest: str  # sha256 of results.csv without compute_seconds: equal runs give the same digest
    groups_digest: str  # sha256 of summary.json's groups without compute_seconds
    fallback_rows: int  # rows with a window the temperature fallback decoded again
    driver_peak_rss_mb: float  # this process's peak resident memory (Ray: the driver only)

    @property
    def rtfx(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds else float("nan")

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.wall_seconds if self.wall_seconds else float("nan")

    @property
    def driver_cpu_per_row(self) -> float:
        """Driver CPU per row in the steady part of the run (start-up, a one-off cost, left out)."""
        rows = self.rows - self.first_rows
        return self.driver_cpu_seconds / rows if rows > 0 else float("nan")

    @property
    def decode_per_row(self) -> float:
        return self.compute_seconds / self.rows if self.rows else float("nan")

    @property
    def driver_share(self) -> float:
        return self.driver_cpu_per_row / self.decode_per_row if self.compute_seconds else float("nan")


def measure(spec: dict) -> Measured:
    """One run in this process (called in a fresh child process by :func:`run_child`)."""
    from evaluation.runner import RunOptions

    arrivals: list[tuple[float, int, float]] = []  # (seconds since the start, rows done, process CPU seconds)
    options = RunOptions(
        dataset=spec["dataset"],
        split=spec["split"],
        noise=tuple(spec["noise"].split(",")),
        limit=spec["limit"],
        executor=spec["executor"],
        workers=spec["workers"],
        chunk_size=spec["chunk"],
    )
    started = [0.0]

    def progress(done: int, total: int, message: str) -> None:
        now = time.perf_counter()
        if not started[0]:
            started[0] = now
        else:
            arrivals.append((now - started[0], done, time.process_time()))

    run = timed_run(options, progress=progress)
    result, label = run.result, run.executor
    first_t, first_rows, first_cpu = arrivals[0] if arrivals else (0.0, 0, 0.0)
    return Measured(
        executor=label,
        rows=len(result.rows),
        audio_seconds=result.audio_seconds_done,
        wall_seconds=result.wall_seconds,
        first_result_seconds=first_t,
        first_rows=first_rows,
        last_result_seconds=arrivals[-1][0] if arrivals else 0.0,
        driver_cpu_seconds=arrivals[-1][2] - first_cpu if arrivals else 0.0,
        compute_seconds=float(result.rows["compute_seconds"].sum()),
        hypotheses="\n".join(result.rows["hypothesis"].astype(str)),
        **_digests(result),
        fallback_rows=int((result.rows.get("windows_retried", pd.Series(dtype=int)).fillna(0) > 0).sum()),
        driver_peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )


def _digests(result) -> dict[str, str]:
    """What the run writes (results.csv, summary.json), hashed without the wall-clock column."""
    from evaluation.report import write_outputs

    with tempfile.TemporaryDirectory() as out:
        paths = write_outputs(Path(out), result.rows, result.summary, result.settings, "run", None, result.skipped)
        rows = read_csv(paths["results.csv"]).drop(columns=TIMING).to_csv(index=False)
        groups = json.loads(paths["summary.json"].read_text())["groups"]
    groups = [{k: v for k, v in g.items() if k not in TIMING} for g in groups]
    return {
        "results_digest": hashlib.sha256(rows.encode()).hexdigest(),
        "groups_digest": hashlib.sha256(json.dumps(groups, sort_keys=True).encode()).hexdigest(),
    }


def run_child(executor: str, args: argparse.Namespace, env: dict[str, str] | None = None, **overrides) -> Measured:
    spec = {"executor": executor, "noise": args.noise, "limit": args.limit, "workers": None, "chunk": args.chunk}
    spec |= {"dataset": args.dataset, "split": args.split}
    spec.update(overrides)
    command = [sys.executable, "-m", "benchmarks.scaleout", "--child", json.dumps(spec)]
    done = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=args.timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"{executor} run failed: {done.stderr.strip().splitlines()[-1:]}")
    return Measured(**json.loads(done.stdout.strip().splitlines()[-1]))


def _row(name: str, m: Measured, driver: bool) -> str:
    steady = math.isfinite(m.driver_share)  # every row in the first batch (--limit up to --chunk): no steady part
    share = f"{m.driver_share * 100:6.2f}%" if driver and steady else "      -"
    per_row = f"{m.driver_cpu_per_row * 1000:8.2f}" if steady else f"{'-':>8}"
    return (
        f"{name:24} {m.rows:5d} {m.audio_seconds:8.1f} {m.wall_seconds:7.1f} {m.rtfx:6.2f}x "
        f"{m.first_result_seconds:6.1f} {m.rows_per_second:7.3f} {m.decode_per_row:8.3f} {per_row} {share}"
    )


def _driver_text(m: Measured) -> str:
    if not math.isfinite(m.driver_share):  # it printed "nan%"
        return "driver CPU per row n/a (every row came in the first batch: give --limit above --chunk)"
    return f"driver CPU per row {m.driver_share * 100:.2f}% of decode time per row (target < {TARGET_DRIVER_SHARE * 100:.0f}%)"


HEADER = (
    f"{'run':24} {'rows':>5} {'audio s':>8} {'wall s':>7} {'rtfx':>7} {'1st s':>6} {'rows/s':>7} "
    f"{'decode/row':>8} {'drv ms/row':>8} {'drv/dec':>7}"
)


def _report_differences(what: str, a: Measured, b: Measured) -> None:
    pairs = list(zip(a.hypotheses.split("\n"), b.hypotheses.split("\n"), strict=True))
    differ = [(x, y) for x, y in pairs if x != y]
    same_csv, same_groups = a.results_digest == b.results_digest, a.groups_digest == b.groups_digest
    print(
        f"{what}: {len(pairs) - len(differ)} of {len(pairs)} hypotheses identical ({a.fallback_rows} and "
        f"{b.fallback_rows} rows hit the fallback); results.csv {'identical' if same_csv else 'DIFFERENT'}, "
        f"summary.json groups {'identical' if same_groups else 'DIFFERENT'}"
    )
    for x, y in differ[:5]:
        print(f"  {x[:70]!r} vs {y[:70]!r}")


def side_by_side(args: argparse.Namespace) -> list[tuple[str, Measured, bool]]:
    local = run_child("local", args)
    ray_run = run_child("ray", args, env={"RAY_ADDRESS": ""})
    _report_differences("the Ray run", local, ray_run)
    return [("local", local, False), ("ray (local Ray, 2 actors)", ray_run, True)]


def parquet_copy(args: argparse.Namespace, folder: Path, shards: int = 4) -> str:
    """The chosen rows as a hub-layout Parquet dataset (audio as float WAV bytes inside), for ``hub:FOLDER``.

    The Ray runs' workers then read each row's audio from these shards (the driver reads ids and references);
    the local run streams them through ``datasets`` as it would a hub dataset.
    """
    import io

    import datasets
    import soundfile

    from asr.audio import SAMPLE_RATE
    from evaluation.datasets import DatasetOptions, load_dataset

    data = load_dataset(DatasetOptions(args.dataset, limit=args.limit, split=args.split))

    def wav(audio) -> bytes:
        buffer = io.BytesIO()
        soundfile.write(buffer, audio, SAMPLE_RATE, format="WAV", subtype="FLOAT")  # lossless: the same samples
        return buffer.getvalue()

    columns = {
        "id": [s.id for s in data.samples],
        "audio": [{"bytes": wav(s.audio), "path": f"{s.id}.wav"} for s in data.samples],
        "text": [s.text for s in data.samples],
        **{g: [s.groups[g] for s in data.samples] for g in data.group_columns},
    }
    table = datasets.Dataset.from_dict(columns).cast_column("audio", datasets.Audio(decode=False))
    (folder / "data").mkdir(parents=True)
    for i in range(shards):
        part = table.shard(shards, i, contiguous=True)
        part.to_parquet(str(folder / "data" / f"test-{i:05d}-of-{shards:05d}.parquet"))
    return f"hub:{folder}"


class Node:
    """One ``ray start --block`` process (a head or a worker node), stopped by its own process id."""

    def __init__(self, command: list[str], log: Path) -> None:
        self.log = log
        env = {**os.environ, **AUTH}
        self.proc = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # --block stops the node's own processes on SIGTERM
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _wait_for_cpus(address: str, cpus: int) -> None:
    check = (
        "import ray,sys,time\n"
        f"ray.init(address='{address}', logging_level='ERROR')\n"
        f"deadline = time.time() + {NODE_START_TIMEOUT_S}\n"
        f"while ray.cluster_resources().get('CPU', 0) < {cpus} and time.time() < deadline: time.sleep(1)\n"
        f"sys.exit(0 if ray.cluster_resources().get('CPU', 0) >= {cpus} else 1)\n"
    )
    env = {**os.environ, **AUTH}
    subprocess.run([sys.executable, "-c", check], check=True, timeout=NODE_START_TIMEOUT_S + 60, env=env)


def scaling(args: argparse.Namespace, logs: Path) -> list[tuple[str, Measured, bool]]:
    port = str(args.port)
    address = f"127.0.0.1:{port}"
    common = ["--num-cpus", "1", "--object-store-memory", str(NODE_OBJECT_STORE), "--block", "--disable-usage-stats"]
    head = Node(
        [_ray_cli(), "start", "--head", "--port", port, "--include-dashboard", "false", *common], logs / "head.log"
    )
    nodes = [head]
    try:
        _wait_for_cpus(address, 1)
        env = {"RAY_ADDRESS": address, **AUTH}
        small = {"limit": args.scaling_limit, "noise": args.scaling_noise, "chunk": args.scaling_chunk}
        one = run_child("ray", args, env=env, workers=1, **small)
        nodes.append(Node([_ray_cli(), "start", "--address", address, *common], logs / "worker.log"))
        _wait_for_cpus(address, 2)
        two = run_child("ray", args, env=env, workers=2, **small)
    finally:
        for node in reversed(nodes):
            node.stop()
    _report_differences("the two-node run", one, two)
    return [("cluster, 1 node x 1 CPU", one, True), ("cluster, 2 nodes x 1 CPU", two, True)]


def _after_first(m: Measured) -> float:
    """Rows per second once the first batch is stored (start-up and the first batch left out)."""
    span = m.wall_seconds - m.first_result_seconds
    return (m.rows - m.first_rows) / span if span > 0 else float("nan")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks ray", description=__doc__.split("\n")[0])
    p.add_argument("--noise", default=DEFAULT_NOISE, help=f"as evaluation run --noise (default {DEFAULT_NOISE})")
    p.add_argument("--dataset", default="builtin", help="as evaluation run --dataset (default builtin)")
    p.add_argument("--split", default=None, help="as evaluation run --split")
    p.add_argument(
        "--parquet",
        action="store_true",
        help="copy the rows to a hub-layout Parquet dataset first: the Ray workers read the audio from its shards",
    )
    p.add_argument("--limit", type=at_least(1), default=None, help="utterances of the dataset (default all)")
    p.add_argument("--chunk", type=at_least(1), default=16, help="rows per batch (the runner's chunk_size; default 16)")
    p.add_argument(
        "--scaling-limit", type=at_least(1), default=63, help="utterances for the one vs two node runs (default 63)"
    )
    p.add_argument("--scaling-noise", default="clean,white@10", help="noise of those runs (default clean,white@10)")
    p.add_argument(
        "--scaling-chunk", type=at_least(1), default=8, help="rows per batch in the one vs two node runs (default 8)"
    )
    p.add_argument(
        "--port",
        type=at_least(1, 65535),
        default=6389,
        help="the scaling cluster's head port on 127.0.0.1 (default 6389)",
    )
    p.add_argument(
        "--skip",
        choices=("side-by-side", "scaling"),
        action="append",
        default=[],
        help="leave out the Ray-against-local runs or the one-against-two-node runs (repeatable)",
    )
    p.add_argument("--timeout", type=at_least(1), default=3600, help="seconds for each run (default 3600)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.child:
        print(json.dumps(asdict(measure(json.loads(args.child)))))
        return 0
    with tempfile.TemporaryDirectory() as scratch:
        if args.parquet:
            args.dataset, args.split, args.limit = parquet_copy(args, Path(scratch) / "hub"), None, None
        _measure_all(args)
    return 0


def _measure_all(args: argparse.Namespace) -> None:
    load = os.getloadavg()[0]
    print(f"{args.dataset} ({args.noise}), tiny.en, {os.cpu_count()} CPU cores, load average {load:.1f} at start")
    print("each run in a fresh process, one after the other: compare ratios (the machine is shared)")
    print(HEADER)
    rows: list[tuple[str, Measured, bool]] = []
    if "side-by-side" not in args.skip:
        for name, m, driver in side_by_side(args):
            print(_row(name, m, driver), flush=True)
            rows.append((name, m, driver))
        local, ray_run = rows[0][1], rows[1][1]
        print(
            f"ray / local throughput {ray_run.rtfx / local.rtfx:.2f}x (target >= {TARGET_RATIO}x); {_driver_text(ray_run)}; "
            f"peak RSS local {local.driver_peak_rss_mb:.0f} MB, Ray driver {ray_run.driver_peak_rss_mb:.0f} MB"
        )
    if "scaling" not in args.skip:
        with tempfile.TemporaryDirectory() as logs:
            for name, m, driver in scaling(args, Path(logs)):
                print(_row(name, m, driver), flush=True)
                rows.append((name, m, driver))
        one, two = rows[-2][1], rows[-1][1]
        print(
            f"two nodes / one node: throughput {two.rtfx / one.rtfx:.2f}x end to end, "
            f"{_after_first(two) / _after_first(one):.2f}x after the first result"
        )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    sys.exit(main())
