"""Hardening without a browser: dataset roots, the delete confirmation, crash leftovers in the store, upkeep."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time

import pytest

from dashboard import confirm
from dashboard.config import DashboardConfig
from dashboard.roots import DatasetRoots, PathRefused
from dashboard.upkeep import clean_folder, use_private_gradio_dir
from evaluation.store import Store


@pytest.fixture
def roots(tmp_path) -> DatasetRoots:
    (tmp_path / "root" / "set").mkdir(parents=True)
    (tmp_path / "root" / "uploads").mkdir()
    (tmp_path / "outside").mkdir()
    (tmp_path / "root" / "out").symlink_to(tmp_path / "outside")
    return DatasetRoots.of([tmp_path / "root"], excluded=[tmp_path / "root" / "uploads"])


def test_roots_allow_named_sets_hub_ids_and_paths_inside(roots, tmp_path):
    for spec in ("builtin", "recorded", "probes", "builtin-real", "builtin-real:fr,it", "hub:org/name:cfg:test"):
        assert roots.check_dataset(spec) == spec
    inside = str(tmp_path / "root" / "set")
    assert roots.check_dataset(inside) == inside and roots.check_dataset(f"hub:{inside}") == f"hub:{inside}"


@pytest.mark.parametrize(
    "spec",
    [
        "/etc",
        "/etc/passwd",
        "/no/such/dir",
        "hub:/etc",
        "hub:../../etc",
        "root/../outside",
        "",
        "{root}/out",
        "{root}/set/../../outside",
        "{root}/uploads/evil.csv",
    ],
)
def test_roots_refuse_everything_else_with_one_line_that_says_nothing_of_existence(roots, tmp_path, spec):
    spec = spec.replace("{root}", str(tmp_path / "root"))
    with pytest.raises(PathRefused) as refused:
        roots.check_dataset(spec)
    message = str(refused.value)
    assert "refused" in message and "--dataset-root" in message and "\n" not in message
    assert "exist" not in message and "not found" not in message


def test_config_roots_are_the_data_folder_builtin_sets_and_dataset_roots(tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    config = DashboardConfig(data_dir=tmp_path / "data", dataset_roots=(extra,)).validate()
    roots = config.roots()
    assert roots.allows(tmp_path / "data" / "exports" / "cases-1") and roots.allows(extra / "x.csv")
    assert not roots.allows(config.gradio_tmp_dir / "upload.csv") and not roots.allows(tmp_path)
    with pytest.raises(ValueError, match="--dataset-root"):
        DashboardConfig(data_dir=tmp_path, dataset_roots=(tmp_path / "missing",)).validate()


def test_a_confirmation_is_for_one_action_one_target_and_a_short_time():
    issued = confirm.issue("delete-case", "abc", now=100.0)
    assert confirm.accepts(issued, "delete-case", "abc", now=101.0)
    assert not confirm.accepts(None, "delete-case", "abc", now=101.0)  # the step was skipped
    assert not confirm.accepts(issued, "delete-case", "other", now=101.0)
    assert not confirm.accepts(issued, "delete-run", "abc", now=101.0)
    assert not confirm.accepts(issued, "delete-case", "abc", now=100.0 + confirm.CONFIRM_TTL_S + 1)
    assert issued.token != confirm.issue("delete-case", "abc").token


_CRASH = """
import os, sys
from evaluation.store import Store
store = Store(sys.argv[1])
case = store.stage_case("test_case", sys.argv[2], transcript="t", reference="r")  # the file, not yet its row
print(case.audio_path, flush=True)
os.kill(os.getpid(), 9)
"""


def test_orphan_audio_is_swept_after_a_crash(tmp_path, speech_wav):
    data = tmp_path / "data"
    kept = Store(data).add_case("test_case", str(speech_wav), transcript="t", reference="r")
    crashed = subprocess.run(
        [sys.executable, "-c", _CRASH, str(data), str(speech_wav)], capture_output=True, text=True, timeout=120
    )
    assert crashed.returncode == -9
    orphan = data / "audio" / os.path.basename(crashed.stdout.strip())
    half_written = data / "audio" / ".0123456789abcdef.tmp.wav"
    half_written.write_bytes(b"RIFF")
    fresh = data / "audio" / "fresh.wav"  # a save in progress right now: too new to be a leftover
    fresh.write_bytes(b"RIFF")
    hour_ago = time.time() - 3600
    for path in (orphan, half_written, data / "audio" / f"{kept.id}.wav"):
        os.utime(path, (hour_ago, hour_ago))
    assert orphan.exists()
    Store(data)  # the store's start-up sweep (the dashboard also runs it hourly)
    assert not orphan.exists() and not half_written.exists()  # was: never removed / only after an hour
    assert fresh.exists() and (data / "audio" / f"{kept.id}.wav").exists()
    assert [c.id for c in Store(data).list_cases()] == [kept.id]


def test_private_gradio_folder_emptied_at_start_and_old_files_swept(tmp_path, monkeypatch):
    monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    config = DashboardConfig(data_dir=tmp_path / "data")
    (config.gradio_tmp_dir / "abc").mkdir(parents=True)
    (config.gradio_tmp_dir / "abc" / "upload.wav").write_bytes(b"x")
    folder = use_private_gradio_dir(config)
    assert folder == config.gradio_tmp_dir and list(folder.iterdir()) == []
    assert os.environ["GRADIO_TEMP_DIR"] == str(folder) and folder.stat().st_mode & 0o777 == 0o700
    old, new = folder / "old", folder / "new"
    old.mkdir()
    (old / "a.wav").write_bytes(b"x")
    new.write_bytes(b"x")
    hour_ago = time.time() - 7200
    os.utime(old / "a.wav", (hour_ago, hour_ago))
    os.utime(old, (hour_ago, hour_ago))
    assert clean_folder(folder, older_than_s=3600) == 1
    assert not old.exists() and new.exists()


def test_a_command_line_run_over_another_folder_is_not_replayed_on_the_page(tmp_path):
    from types import SimpleNamespace

    from dashboard.validate_form import check_run_paths

    config = DashboardConfig(data_dir=tmp_path / "data")
    check_run_paths(config.roots(), SimpleNamespace(dataset="builtin", noise=("clean", "white@10")))
    for dataset, noise in (("/srv/private-set", ("clean",)), ("builtin", ("white@10+file:/srv/noises@5",))):
        with pytest.raises(PathRefused):
            check_run_paths(config.roots(), SimpleNamespace(dataset=dataset, noise=noise))


def test_a_dataset_under_a_root_reads_no_audio_file_outside_the_roots(tmp_path, speech_wav, fw_backend):
    """The dataset folder was checked, not its rows: a metadata.csv under a root naming ../../, an absolute path,
    a symlink out or a URL had that audio read, scored and played back on the page (Validate's clean playback)."""
    from dashboard.validate_form import run_options
    from evaluation.datasets import DatasetOptions, load_dataset
    from evaluation.replay import utterance_audio
    from evaluation.runner import run_validation

    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "set").mkdir(parents=True)
    outside.mkdir()
    (root / "set" / "inside.wav").write_bytes(speech_wav.read_bytes())
    (outside / "secret.wav").write_bytes(speech_wav.read_bytes())
    (root / "set" / "link.wav").symlink_to(outside / "secret.wav")
    names = ["inside.wav", "../../outside/secret.wav", str(outside / "secret.wav"), "link.wav"]
    names += [str(outside / "none.wav"), "http://127.0.0.1:9/x.wav"]
    (root / "set" / "metadata.csv").write_text("file_name,text\n" + "".join(f"{n},The birch canoe.\n" for n in names))
    config = DashboardConfig(data_dir=tmp_path / "data", dataset_roots=(root,)).validate()
    allowed = config.roots().allows

    data = load_dataset(DatasetOptions(str(root / "set"), audio_allowed=allowed))
    assert [s.id for s in data.samples] == ["inside"]
    reasons = [s.reason for s in data.skipped]
    assert [s.row for s in data.skipped] == [1, 2, 3, 4, 5] and len({r.split(" refused")[1] for r in reasons}) == 1
    assert reasons[3] == (
        f"audio file {outside / 'none.wav'} refused: this dashboard reads only its data folder, the built-in sets "
        "and folders named with --dataset-root DIR"
    )  # the same words whether the file is there or not
    (root / "set" / "metadata.csv").write_text(
        "file_name,text\n" + "".join(f"{n},The birch canoe.\n" for n in names[:4])
    )
    assert len(load_dataset(DatasetOptions(str(root / "set"))).samples) == 4  # the command line reads any file

    form = ["folder", str(root / "set"), "", None, [], None, ["clean"], "10", "0.6", "", ["none"], 0, 0, 0]
    (options,) = run_options(
        tuple(form + ["whisper-tiny.en", "faster-whisper", [], "local", "offline", 0]), config.roots()
    )
    store = Store(config.data_dir)
    result = run_validation(options, store)  # the page's run: the rows outside are skipped, not scored
    assert list(result.rows["id"]) == ["inside"] and len(result.skipped) == 3
    cli = run_validation(dataclasses.replace(options, audio_allowed=None, run_id="cli"), store)
    assert len(cli.rows) == 4
    with pytest.raises(KeyError):  # a command-line run under a root replays on the page only what lies inside
        utterance_audio(store, "cli", "link", "clean", audio_allowed=allowed)
    assert utterance_audio(store, "cli", "inside", "clean", audio_allowed=allowed).clean.size
