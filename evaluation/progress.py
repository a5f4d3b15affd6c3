"""Progress of a validation run as rows arrive: rows done, speed (rtfx) and the time left.

Kept apart from the runner so the one place that turns row results into a progress line is easy to find; the
dashboard's progress bar and the command line's (``TerminalBar``) both read what ``RunProgress.add`` reports.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from evaluation.worker import RowResult

Progress = Callable[[int, int, str], None]  # (items done, items in all, what is happening)


class RunProgress:
    """Rows done, speed (rtfx: audio seconds per wall second of this call) and ETA, reported as rows arrive."""

    def __init__(self, total: int, resumed: int, report: Progress | None) -> None:
        self.total, self.done, self.resumed = total, resumed, resumed
        self.report = report or (lambda done, total, message: None)
        self.audio_seconds = 0.0
        self.started = time.perf_counter()

    def start(self, message: str) -> None:
        self.started = time.perf_counter()
        self.report(self.done, self.total, message)

    @property
    def wall_seconds(self) -> float:
        return time.perf_counter() - self.started

    def add(self, results: Sequence[RowResult], skipped: int = 0) -> None:
        self.done += len(results) + skipped
        self.audio_seconds += sum(r.audio_seconds for r in results)
        wall = self.wall_seconds
        rtfx = self.audio_seconds / wall if wall > 0 else 0.0
        new = self.done - self.resumed
        eta = wall / new * (self.total - self.done) if new else 0.0
        if self.done >= self.total:  # the last line stays on screen: "ETA 0:00" after the last row said nothing
            self.report(self.done, self.total, f"done in {_clock(wall)} · {rtfx:.1f}x rtfx")
            return
        last = results[-1] if results else None
        where = f"{last.condition}: {last.sample_id} · " if last else ""
        self.report(self.done, self.total, f"{where}{rtfx:.1f}x rtfx · ETA {_clock(eta)}")


def start_text(run_id: str, pending: int, stored: int, where: str) -> str:
    """The first progress line: which run, where, and what is left of it. It read "run ID: 6 of 6 to transcribe"
    after the bar's own "0/6", the total said twice, and a resumed run's stored rows were left to subtraction."""
    head = f"run {run_id} on {where}: "
    if not pending:
        return f"{head}nothing to transcribe, all {stored} already stored"
    return f"{head}{pending} to transcribe" + (f", {stored} already stored" if stored else "")


def _clock(seconds: float) -> str:
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class TerminalBar:
    """The command line's tqdm bar on stderr, driven by the runner's progress(done, total, message)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.bar = enabled, None

    def __call__(self, done: int, total: int, message: str) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm

            # the message carries rtfx and ETA (tqdm's own "[00:01<00:02, 3.7utt/s" said them a second time); tqdm
            # fits the line to the terminal (the message was cut to its last 40 characters: "ranscribe on local")
            bar_format = "{l_bar}{bar}| {n_fmt}/{total_fmt}{postfix}"
            self.bar = tqdm(
                total=total, initial=done, postfix=message, file=sys.stderr, dynamic_ncols=True, bar_format=bar_format
            )
        self.bar.n = done
        self.bar.set_postfix_str(message, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
