"""The Ray executor against the local one, on a local Ray this module starts and stops (real model, real store).

One small sweep (6 utterances x clean and white@10, batches of 4) is run locally once; every Ray run must give
the same rows: the same sweep, a sweep whose actor is killed mid-run, and a sweep cancelled then resumed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import psutil
import pytest
import ray

from evaluation.ray_executor import start_local_ray
from evaluation.report import write_outputs
from evaluation.runner import RunOptions, run_validation
from evaluation.spreadsheet import read_csv
from evaluation.store import Store

SWEEP = RunOptions(noise=("clean", "white@10"), limit=6, seed=3, chunk_size=4)
TIMING = ["compute_seconds"]  # the only columns that may differ: wall-clock shares of a batch
RAY_START_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray for this module as the executor starts one (loopback, no dashboard), 2 CPUs; stopped at the end."""
    done = threading.Event()
    watchdog = threading.Timer(RAY_START_TIMEOUT_S, lambda: done.is_set() or os.kill(os.getpid(), signal.SIGINT))
    watchdog.start()
    try:
        start_local_ray(num_cpus=2, object_store_bytes=256 * 1024**2)  # the executor's own local start
    finally:
        done.set()
        watchdog.cancel()
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, fw_backend):
    root = tmp_path_factory.mktemp("local")
    result = run_validation(SWEEP, Store(root / "data"))
    write_outputs(root / "out", result.rows, result.summary, result.settings, result.run_id, None, result.skipped)
    return result, root / "out"


def _on_ray(**changes) -> RunOptions:
    return dataclasses.replace(SWEEP, executor="ray", workers=2, **changes)


def _same_rows(ray_rows: pd.DataFrame, local_rows: pd.DataFrame) -> None:
    assert ray_rows["id"].tolist() == local_rows["id"].tolist()
    pd.testing.assert_frame_equal(ray_rows.drop(columns=TIMING), local_rows.drop(columns=TIMING))


def _groups(out) -> list[dict]:
    groups = json.loads((out / "summary.json").read_text())["groups"]
    return [{k: v for k, v in g.items() if k != "compute_seconds"} for g in groups]


def test_ray_sweep_equals_the_local_sweep(ray_cluster, local_run, tmp_path):
    local, local_out = local_run
    messages: list[str] = []
    result = run_validation(_on_ray(), Store(tmp_path / "data"), progress=lambda d, t, m: messages.append(m))
    out = tmp_path / "out"
    write_outputs(out, result.rows, result.summary, result.settings, result.run_id, None, result.skipped)
    assert result.status == "finished" and result.settings.executor == "ray"
    _same_rows(result.rows, local.rows)
    ray_csv = read_csv(out / "results.csv").drop(columns=TIMING)
    assert ray_csv.equals(read_csv(local_out / "results.csv").drop(columns=TIMING))
    assert _groups(out) == _groups(local_out)
    assert json.loads((out / "summary.json").read_text())["settings"]["executor"] == "ray"
    assert result.executor == "ray (connected, 2 workers)"  # what the Validate page shows (Ray started here)
    assert messages[0].endswith("on ray (connected, 2 workers): 12 to transcribe")
    assert len(messages) == 4 and all(" rtfx · ETA " in m for m in messages[1:-1])  # a line per batch of 4
    assert messages[-1].startswith("done in ")


def _listening(processes: list[psutil.Process]) -> list[tuple[str, str, int]]:
    found = []
    for proc in processes:
        try:
            found += [(proc.name(), c.laddr.ip, c.laddr.port) for c in proc.net_connections("inet") if not c.raddr]
        except psutil.NoSuchProcess:
            continue
    return found


def test_the_local_ray_listens_on_loopback_only(ray_cluster):
    """Every Ray process this test started (GCS, raylet, agents, workers) listens on 127.0.0.1 and nowhere else."""
    assert ray.get(ray.remote(lambda: ray.util.get_node_ip_address()).remote()) == "127.0.0.1"
    sockets = _listening(psutil.Process().children(recursive=True) + [psutil.Process()])
    names = {name for name, _, _ in sockets}
    assert {"gcs_server", "raylet"} <= names, sockets  # the servers are there to be checked
    outside = [s for s in sockets if s[1] not in ("127.0.0.1", "::ffff:127.0.0.1", "::1")]
    assert not outside, f"listening beyond loopback: {outside}"


def _actor_processes() -> list[psutil.Process]:
    """This test's Ray actors (descendants of this process running the map worker)."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            if "MapWorker" in " ".join(proc.cmdline()):
                found.append(proc)
        except psutil.NoSuchProcess:
            continue
    return found


def test_a_killed_actor_costs_nothing(ray_cluster, local_run, tmp_path):
    local, _ = local_run
    killed: list[tuple[int, float]] = []  # (pid, start time): a pid alone may be reused by a restarted worker

    def progress(done: int, total: int, message: str) -> None:
        if done and not killed:  # the first batch is stored; the other actor is decoding the second
            actors = _actor_processes()
            assert actors, "no Ray actor process found"
            victim = actors[-1]
            killed.append((victim.pid, victim.create_time()))
            victim.send_signal(signal.SIGKILL)

    store = Store(tmp_path / "data")
    result = run_validation(_on_ray(), store, progress=progress)
    assert killed and result.status == "finished"
    pid, started = killed[0]
    deadline = time.monotonic() + 10  # SIGKILL ends a process in disk wait only once the wait ends (seen under load)
    while not _gone(pid, started) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _gone(pid, started), "the killed actor's process is still running 10 s after the run"
    assert len(store.runs.run_results(result.run_id)) == len(local.rows)  # none lost, none twice
    _same_rows(result.rows, local.rows)


def _gone(pid: int, started: float) -> bool:
    """Whether the process that had this pid and start time has ended (a zombie counts as ended)."""
    try:
        process = psutil.Process(pid)
        return process.create_time() != started or process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_cancelled_ray_run_resumes_to_the_same_rows(ray_cluster, local_run, tmp_path):
    local, _ = local_run
    store = Store(tmp_path / "data")
    options = _on_ray(run_id="resume-me")
    cancel = threading.Event()
    first = run_validation(options, store, progress=lambda d, t, m: d and cancel.set(), cancel=cancel)
    assert first.status == "cancelled" and 0 < len(first.rows) < len(local.rows)
    assert store.runs.get_run("resume-me").status == "cancelled"
    second = run_validation(options, store)
    assert second.status == "finished" and second.resumed_rows == len(first.rows)
    _same_rows(second.rows, local.rows)


def _real_speech_parquet(real_set, folder, rows: int = 5):
    """Real-speech prompts as a hub-layout dataset: two Parquet shards, audio bytes inside, one row not audio."""
    import datasets

    meta = pd.read_csv(real_set / "metadata.csv")
    meta = meta[(meta["language"] == "en") & (meta["split"] == "dev")].head(rows)
    audio = [{"bytes": (real_set / f).read_bytes(), "path": f} for f in meta["file_name"]]
    audio[2] = {"bytes": b"not audio at all", "path": "broken.wav"}  # skipped, by the driver or by a worker
    data = datasets.Dataset.from_dict({"audio": audio, "text": list(meta["text"]), "accent": list(meta["accent"])})
    data = data.cast_column("audio", datasets.Audio(decode=False))  # the hub's Audio feature, bytes inside
    (folder / "data").mkdir(parents=True)
    for i in range(2):
        data.shard(2, i, contiguous=True).to_parquet(str(folder / "data" / f"test-0000{i}-of-00002.parquet"))
    return f"hub:{folder}"


def test_ray_workers_read_the_hub_shards_the_driver_plans(ray_cluster, real_set, fw_backend, tmp_path, monkeypatch):
    """A hub-layout Parquet dataset: locally the driver decodes every row; on Ray only the actors read audio."""
    import evaluation.datasets as datasets_module

    dataset = _real_speech_parquet(real_set, tmp_path / "hub")
    options = RunOptions(dataset=dataset, noise=("clean",), seed=3, chunk_size=2)
    decoded: list[int] = []
    real_load = datasets_module.load_audio
    monkeypatch.setattr(datasets_module, "load_audio", lambda *a, **k: decoded.append(1) or real_load(*a, **k))
    local = run_validation(options, Store(tmp_path / "local"))
    assert len(decoded) == 5 and len(local.rows) == 4  # the driver decoded every row, one of them not audio
    decoded.clear()
    ray_run = run_validation(dataclasses.replace(options, executor="ray", workers=2), Store(tmp_path / "ray"))
    assert decoded == [], "the driver decoded audio on Ray"
    _same_rows(ray_run.rows, local.rows)
    assert ray_run.skipped == local.skipped and len(local.skipped) == 1 and "row 2, column 'audio'" in local.skipped[0]


def test_arrow_and_parquet_rows_planned_without_audio_read_back_the_same(real_set, tmp_path):
    """save_to_disk (Arrow) and Parquet shards: rows planned with no audio, read by rows later, equal the driver's."""
    import datasets
    import numpy as np

    from evaluation.datasets import DatasetOptions, load_dataset, read_audio

    hub = _real_speech_parquet(real_set, tmp_path / "hub")
    datasets.load_dataset(str(tmp_path / "hub"), split="test").save_to_disk(str(tmp_path / "disk"))
    for source in (hub, str(tmp_path / "disk")):
        eager = load_dataset(DatasetOptions(source))
        planned = load_dataset(DatasetOptions(source), defer_audio=True)
        assert planned.deferred and all(s.audio is None for s in planned.samples)
        read, skipped = read_audio(planned.samples)
        assert [s.id for s in read] == [s.id for s in eager.samples] and [s.row for s in skipped] == [2]
        assert all(np.array_equal(a.audio, b.audio) and a.text == b.text for a, b in zip(read, eager.samples))


def _cli(args: list[str], env: dict[str, str] | None = None, code: str = "") -> subprocess.CompletedProcess:
    script = f"import sys\n{code}\nfrom evaluation.cli import main\nsys.exit(main(sys.argv[1:]))"
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, **(env or {})},
    )


def test_unreachable_cluster_and_missing_ray_exit_2_with_one_line(tmp_path):
    args = ["run", "--limit", "2", "--quiet", "--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "o")]
    quick = {"RAY_CLIENT_INITIAL_CONNECTION_TIMEOUT_S": "1", "RAY_CLIENT_MAX_CONNECTION_TIMEOUT_S": "2"}
    started = time.perf_counter()
    done = _cli([*args, "--executor", "ray://127.0.0.1:1"], env=quick)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "cannot reach the Ray cluster at ray://127.0.0.1:1" in done.stderr
    assert time.perf_counter() - started < 120
    started = time.perf_counter()  # a cluster address nothing listens on: ray.init retried it for over 13 minutes
    stopped = _cli([*args, "--executor", "ray"], env={"RAY_ADDRESS": "127.0.0.1:1"})
    assert stopped.returncode == 2 and stopped.stderr.strip() == (
        "error: cannot reach the Ray cluster at 127.0.0.1:1: nothing answers on 127.0.0.1:1 (Connection refused)"
    )
    assert time.perf_counter() - started < 60
    missing = _cli([*args, "--executor", "ray"], code="sys.modules['ray'] = None  # as if Ray were not installed")
    assert missing.returncode == 2 and missing.stderr.strip() == (
        "error: executor ray: Ray is not installed (pip install ray==2.60.0)"
    )
    assert not (tmp_path / "o").exists() and Store(tmp_path / "d").runs.list_runs() == []


def _path_only_parquet(real_set, root, outside) -> tuple[str, list[str]]:
    """A hub-layout Parquet dataset under ``root`` whose rows 1-3 name audio files instead of holding bytes: one
    outside the root, one inside it, one a symlink in the dataset's folder pointing out; rows 0 and 4 hold bytes."""
    import datasets

    meta = pd.read_csv(real_set / "metadata.csv")
    meta = meta[(meta["language"] == "en") & (meta["split"] == "dev")].head(5)
    files = [real_set / f for f in meta["file_name"]]
    folder = root / "hub"
    (folder / "data").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.wav").write_bytes(files[1].read_bytes())
    (folder / "inside.wav").write_bytes(files[2].read_bytes())
    (folder / "link.wav").symlink_to(outside / "secret.wav")
    named = [str(outside / "secret.wav"), str(folder / "inside.wav"), str(folder / "link.wav")]
    audio = [{"bytes": files[0].read_bytes(), "path": files[0].name}]
    audio += [{"bytes": None, "path": p} for p in named] + [{"bytes": files[4].read_bytes(), "path": files[4].name}]
    data = datasets.Dataset.from_dict({"audio": audio, "text": list(meta["text"]), "accent": list(meta["accent"])})
    data.cast_column("audio", datasets.Audio(decode=False)).to_parquet(str(folder / "data" / "test-00000.parquet"))
    return f"hub:{folder}", named


def test_ray_workers_read_no_audio_file_outside_the_roots(ray_cluster, real_set, fw_backend, tmp_path):
    """The page's roots on Ray: a worker read the file a Parquet row named, wherever it lay (the driver refused it).

    Rows naming a file outside the roots (an absolute path, a symlink out) are skipped unread with the roots' line
    by the actors as by the local run; the row naming a file inside is read and scored on both."""
    from dashboard.roots import DatasetRoots

    root = tmp_path / "root"
    dataset, named = _path_only_parquet(real_set, root, tmp_path / "outside")
    options = RunOptions(dataset=dataset, noise=("clean",), seed=3, chunk_size=2)
    assert len(run_validation(options, Store(tmp_path / "cli")).rows) == 5  # the command line reads any file
    page = dataclasses.replace(options, audio_allowed=DatasetRoots.of([root]).allows)
    local = run_validation(page, Store(tmp_path / "local"))
    ray_run = run_validation(dataclasses.replace(page, executor="ray", workers=2), Store(tmp_path / "ray"))
    assert list(local.rows["row"]) == [0, 2, 4]
    _same_rows(ray_run.rows, local.rows)
    line = "refused: this dashboard reads only its data folder, the built-in sets and folders named with --dataset-root"
    assert ray_run.skipped == local.skipped and len(local.skipped) == 2
    for skipped, (row, path) in zip(local.skipped, [(1, named[0]), (3, named[2])], strict=True):
        assert f"row {row}, column 'audio': audio file {path} {line}" in skipped


def test_a_shard_file_outside_the_roots_is_never_opened(real_set, tmp_path):
    """A Parquet file in a dataset's folder under a root may be a symlink out of it: the driver refuses the
    dataset (either executor), and a worker handed such a row skips it unopened."""
    from dashboard.roots import DatasetRoots
    from evaluation.datasets import DatasetError, DatasetOptions, load_dataset, read_audio

    _real_speech_parquet(real_set, tmp_path / "outside")
    shard = next((tmp_path / "outside" / "data").glob("*-00000-*.parquet"))
    (tmp_path / "root" / "hub" / "data").mkdir(parents=True)
    (tmp_path / "root" / "hub" / "data" / shard.name).symlink_to(shard)
    dataset, allowed = f"hub:{tmp_path / 'root' / 'hub'}", DatasetRoots.of([tmp_path / "root"]).allows
    for defer in (False, True):
        with pytest.raises(DatasetError, match=f"file {tmp_path / 'root' / 'hub' / 'data' / shard.name} refused"):
            load_dataset(DatasetOptions(dataset, audio_allowed=allowed), defer_audio=defer)
    planned = load_dataset(DatasetOptions(dataset), defer_audio=True)  # the command line: read
    assert planned.samples
    ready, skipped = read_audio(planned.samples, allowed)
    assert ready == [] and len(skipped) == len(planned.samples)
    assert all(s.reason.startswith(f"file {tmp_path / 'root' / 'hub' / 'data' / shard.name} refused") for s in skipped)


RAY_RECORD = (  # Ray 2.60's line, as it printed on every Ray run (the actor's id changes)
    "[2026-12-04 18:04:56,064 E 12617 12617] core_worker.cc:2465: Actor with class name: "
    "'MapWorker(MapBatches(RayRowWorker))' and ID: 'a4622bc8e40552882d65a64501000000' has constructor arguments in "
    "the object store and max_restarts > 0. If the arguments in the object store go out of scope or are lost, the "
    "actor restart will fail. See https://github.com/ray-project/ray/issues/53727 for more details.\n"
)


def test_the_stderr_filter_drops_rays_record_and_nothing_else():
    """The filter process: Ray Data's record goes, wherever it begins (on main it followed the bar's unfinished
    line); every other byte comes out as written: the same words for another actor's class, another error of the
    core worker, a progress bar's partial line, a partial line that may begin a record."""
    from evaluation.ray_stderr import DROPPED, filter_command

    other = RAY_RECORD.replace("MapWorker(MapBatches(RayRowWorker))", "ScoringActor")
    real_error = "[2026-12-04 18:04:56,070 E 12617 12617] core_worker.cc:2480: Failed to register actor. Error\n"
    given = f" 40%|####      | 4/12\r{RAY_RECORD}text before{RAY_RECORD}\n{other}{real_error}{RAY_RECORD}[unfinished"
    done = subprocess.run(filter_command(), input=given.encode(), capture_output=True, timeout=30)
    assert done.returncode == DROPPED, done.stderr
    assert done.stdout.decode() == f" 40%|####      | 4/12\rtext before\n{other}{real_error}[unfinished"
    clean = subprocess.run(filter_command(), input=b"nothing of Ray's\n", capture_output=True, timeout=30)
    assert clean.returncode == 0 and clean.stdout == b"nothing of Ray's\n"


def test_a_ray_run_prints_no_core_worker_error_line(tmp_path):
    """``evaluation run --executor ray``: Ray Data's harmless 'constructor arguments in the object store' ERROR line
    reached the terminal on every run; it stays in the driver's own Ray log, which shows Ray did print it."""
    import glob

    args = ["run", "--limit", "2", "--noise", "clean", "--executor", "ray", "--workers", "1", "--quiet"]
    script = "import sys\nfrom evaluation.cli import main\nsys.exit(main(sys.argv[1:]))"
    process = subprocess.Popen(
        [sys.executable, "-c", script, *args, "--data-dir", str(tmp_path / "d"), "--out", str(tmp_path / "o")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = process.communicate(timeout=240)
    assert process.returncode == 0, stderr
    assert "(finished)" in stdout and (tmp_path / "o").is_dir()
    assert "constructor arguments in the object store" not in stderr and "core_worker" not in stderr, stderr
    logs = glob.glob(f"/tmp/ray/session_*/logs/python-core-driver-*_{process.pid}.log")
    assert logs and "constructor arguments in the object store" in open(logs[0], encoding="utf-8").read()


def test_a_relative_audio_path_in_the_shards_is_read_as_the_driver_reads_it(
    ray_cluster, real_set, fw_backend, tmp_path, monkeypatch
):
    """Parquet rows naming their audio by a relative path (no bytes; written by pyarrow, not datasets, which embeds
    the bytes): the driver reads such a path from the working directory, as datasets does, and a Ray worker read it
    beside the Parquet file, so Ray scored a row the local run skipped as missing. Both read the same file now."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    meta = pd.read_csv(real_set / "metadata.csv")
    meta = meta[(meta["language"] == "en") & (meta["split"] == "dev")].head(3)
    files = [real_set / f for f in meta["file_name"]]
    (tmp_path / "hub" / "data").mkdir(parents=True)
    (tmp_path / "cwd").mkdir()
    (tmp_path / "hub" / "data" / "beside.wav").write_bytes(files[1].read_bytes())  # only beside the shard
    (tmp_path / "cwd" / "here.wav").write_bytes(files[2].read_bytes())  # only in the working directory
    audio = [{"bytes": files[0].read_bytes(), "path": files[0].name}, {"bytes": None, "path": "beside.wav"}]
    audio.append({"bytes": None, "path": "here.wav"})
    kind = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"audio": pa.array(audio, kind), "text": list(meta["text"]), "accent": list(meta["accent"])})
    pq.write_table(table, tmp_path / "hub" / "data" / "test-00000.parquet")
    monkeypatch.chdir(tmp_path / "cwd")
    options = RunOptions(dataset=f"hub:{tmp_path / 'hub'}", noise=("clean",), seed=3, chunk_size=2)
    local = run_validation(options, Store(tmp_path / "local"))
    ray_run = run_validation(dataclasses.replace(options, executor="ray", workers=1), Store(tmp_path / "ray"))
    assert list(local.rows["row"]) == [0, 2]
    _same_rows(ray_run.rows, local.rows)
    assert ray_run.skipped == local.skipped and len(local.skipped) == 1
    assert f"row 1, column 'audio': missing audio file {tmp_path / 'cwd' / 'beside.wav'}" in local.skipped[0]
