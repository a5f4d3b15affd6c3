"""What the dashboard is started with: one frozen value that every page reads, and the paths it may serve.

The pages run in one process and share models through ``asr.backends.get_backend`` and data through the store
in ``data_dir``; this object only says where things are and how far a tester may go (upload size, live length).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from dashboard.roots import DatasetRoots
from evaluation.store import AUDIO_DIR, DB_NAME, DEFAULT_DATA_DIR

EXPORT_DIR = "exports"  # data_dir/exports: review exports and validation downloads
RUNS_DIR = "runs"  # data_dir/runs: per-run files the validation page offers for download and playback
GRADIO_TMP_DIR = "gradio-tmp"  # data_dir/gradio-tmp: Gradio's uploads and served outputs (GRADIO_TEMP_DIR)
DEFAULT_LIVE_LIMIT_S = 3600.0  # one hour of live audio per session
DEFAULT_LIVE_SESSIONS = 4  # live streams served at once; a fifth tester waits in the queue
DEFAULT_MAX_UPLOAD_MB = 500.0  # about 45 minutes of 48 kHz stereo WAV, hours of compressed audio


@dataclass(frozen=True)
class DashboardConfig:
    data_dir: Path = DEFAULT_DATA_DIR  # the store (SQLite + audio), exports and run files
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB  # larger uploads are refused by the server
    live_limit_s: float = DEFAULT_LIVE_LIMIT_S  # audio seconds after which a live session stops listening
    live_sessions: int = DEFAULT_LIVE_SESSIONS  # concurrency limit of the live stream event
    stream_every: float = 0.5  # seconds of microphone audio per chunk sent by the browser
    enable_monitoring: bool = False  # Gradio's /monitoring page; off unless asked for
    cache_sweep_s: tuple[int, int] = (300, 1800)  # Gradio cache: sweep every 5 min, drop files older than 30 min
    dataset_roots: tuple[Path, ...] = ()  # --dataset-root: more folders Validate may read datasets from
    host: str = "127.0.0.1"  # --host; on loopback the dashboard answers only requests naming a loopback host

    def __post_init__(self) -> None:
        object.__setattr__(self, "data_dir", Path(self.data_dir).expanduser().resolve())
        object.__setattr__(self, "dataset_roots", tuple(Path(r).expanduser().resolve() for r in self.dataset_roots))

    def validate(self) -> DashboardConfig:
        """Reject values a tester could mistype on the command line, quoting them."""
        if not 0 < self.max_upload_mb < math.inf:  # nan passed "<= 0" (every comparison with it is False)
            raise ValueError(f"--max-upload-mb must be a positive number, not {self.max_upload_mb!r}")
        if not 0 < self.live_limit_s < math.inf:
            raise ValueError(f"--live-limit must be positive seconds, not {self.live_limit_s!r}")
        if self.live_sessions < 1:
            raise ValueError(f"--live-sessions must be at least 1, not {self.live_sessions!r}")
        for root in self.dataset_roots:
            if not root.is_dir():
                raise ValueError(f"--dataset-root {str(root)!r} is not a folder")
        return self

    def replace(self, **changes) -> DashboardConfig:
        return dataclasses.replace(self, **changes).validate()

    @property
    def export_dir(self) -> Path:
        return self.data_dir / EXPORT_DIR

    @property
    def runs_dir(self) -> Path:
        return self.data_dir / RUNS_DIR

    @property
    def gradio_tmp_dir(self) -> Path:
        return self.data_dir / GRADIO_TMP_DIR

    def roots(self) -> DatasetRoots:
        """Where pages may read datasets: the data folder (not its uploads), the built-in sets, --dataset-root."""
        from evaluation.realspeech import real_dir

        builtin = builtin_dir()
        named = [self.data_dir, real_dir(), *([builtin] if builtin else []), *self.dataset_roots]
        return DatasetRoots.of(named, excluded=[self.gradio_tmp_dir])

    def served_paths(self) -> list[str]:
        """Folders whose files the browser may fetch: recorded audio, exports, run files, the built-in set.

        The data folder as a whole is not served, because it holds the SQLite database.
        """
        paths = [self.data_dir / AUDIO_DIR, self.export_dir, self.runs_dir]
        builtin = builtin_dir()
        if builtin is not None:
            paths.append(builtin)
        real = real_speech_dir()
        if real is not None:
            paths.append(real)
        paths += self.dataset_roots  # the operator named them: their audio plays on Validate
        return [str(p.resolve()) for p in paths]

    def blocked_paths(self) -> list[str]:
        """The database and its WAL files, refused even if a served folder were widened by mistake."""
        db = self.data_dir / DB_NAME
        return [str(db), f"{db}-wal", f"{db}-shm"]


def builtin_dir() -> Path | None:
    """The built-in sample set's folder (served so that its clean audio can be played on the Validate page)."""
    from evaluation.builtin import BUILTIN_DIR

    return BUILTIN_DIR.resolve() if BUILTIN_DIR.is_dir() else None


def real_speech_dir() -> Path | None:
    """The real-speech set's folder, when it is built (served for the same reason as the built-in set's)."""
    from evaluation.realspeech import real_dir

    return real_dir().resolve() if (real_dir() / "metadata.csv").is_file() else None
