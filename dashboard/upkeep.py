"""Housekeeping while the dashboard runs: its private Gradio folder and crash leftovers in the store's audio.

Gradio keeps uploads and served outputs in one folder (``/tmp/gradio`` by default, shared by every Gradio app of
the machine, so one app served another's files). The dashboard gives Gradio a folder of its own under the data
folder, empties it at start (nothing in it outlives the sessions that made it) and, with the store's sweep of
audio no case names, every hour. Gradio's own ``delete_cache`` still sweeps the folder every few minutes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from pathlib import Path

from dashboard.config import DashboardConfig
from evaluation.store import Store

logger = logging.getLogger(__name__)

UPKEEP_EVERY_S = 3600.0  # the hourly sweep
TMP_MAX_AGE_S = 3600.0  # files of the private Gradio folder older than this go at the hourly sweep


def use_private_gradio_dir(config: DashboardConfig) -> Path:
    """Point Gradio at ``data_dir/gradio-tmp`` (before the app is built) and empty it."""
    folder = config.gradio_tmp_dir
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    clean_folder(folder, older_than_s=0.0)
    os.environ["GRADIO_TEMP_DIR"] = str(folder)
    return folder


def clean_folder(folder: Path, older_than_s: float) -> int:
    """Remove the entries of ``folder`` not modified for ``older_than_s`` seconds; returns how many went."""
    cutoff = time.time() - older_than_s
    removed = 0
    for entry in list(folder.iterdir()) if folder.is_dir() else []:
        with contextlib.suppress(OSError):
            if older_than_s > 0 and _newest_mtime(entry) >= cutoff:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
    return removed


def _newest_mtime(entry: Path) -> float:
    if entry.is_file() or entry.is_symlink():
        return entry.lstat().st_mtime
    times = [entry.stat().st_mtime] + [p.lstat().st_mtime for p in entry.rglob("*")]
    return max(times)


def sweep_once(config: DashboardConfig, store: Store) -> None:
    files = clean_folder(config.gradio_tmp_dir, TMP_MAX_AGE_S)
    audio = store.sweep_audio()
    if files or audio:
        logger.info("upkeep: %d old upload(s) and %d unreferenced audio file(s) removed", files, audio)


def start(config: DashboardConfig, store: Store, every_s: float = UPKEEP_EVERY_S) -> threading.Event:
    """Run :func:`sweep_once` every ``every_s`` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            try:
                sweep_once(config, store)
            except Exception:  # noqa: BLE001 - housekeeping must never stop the dashboard
                logger.exception("upkeep sweep failed")

    threading.Thread(target=loop, name="asrqa-upkeep", daemon=True).start()
    return stop
