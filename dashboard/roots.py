"""Which server folders the dashboard may read datasets (and noise folders) from.

The Validate page used to open any path the process could read: it told a visitor whether a path existed, read
the columns and text of any CSV/JSON/Parquet and replayed audio from anywhere. Now a path typed on a page must
lie under a configured root: the data folder (but not the upload folder inside it, whose files any visitor
chooses), the built-in sets, and each ``--dataset-root DIR``. Anything else is refused with the same line
whether or not it exists. The command line is not limited: whoever runs it already reads the disk.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from evaluation.sources import REAL, DatasetError, parse_hub

NAMED_SETS = ("builtin", "recorded", "probes")  # datasets named, not located by a path
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")  # org/name as the hub spells it


class PathRefused(DatasetError):
    """A dataset or folder outside the configured roots (the message never says whether it exists)."""


@dataclass(frozen=True)
class DatasetRoots:
    roots: tuple[Path, ...]  # resolved folders datasets may lie under
    excluded: tuple[Path, ...] = ()  # resolved folders inside a root that are still refused (uploads)

    @classmethod
    def of(cls, roots: Iterable[Path | str], excluded: Iterable[Path | str] = ()) -> DatasetRoots:
        return cls(tuple(_resolve(r) for r in roots), tuple(_resolve(x) for x in excluded))

    def allows(self, path: Path | str) -> bool:
        resolved = _resolve(path)  # symlinks and ../ resolved first, so neither escapes a root
        inside = any(resolved.is_relative_to(root) for root in self.roots)
        return inside and not any(resolved.is_relative_to(x) for x in self.excluded)

    def check_dataset(self, spec: str) -> str:
        """``spec`` unchanged when the page may open it, else :class:`PathRefused`."""
        spec = str(spec).strip()
        if spec in NAMED_SETS or spec == REAL or spec.startswith(REAL + ":"):
            return spec
        if spec.startswith("hub:"):
            repo = parse_hub(spec)[0]
            local = Path(repo).expanduser()
            if local.exists() or not HUB_ID.match(repo) or ".." in repo:
                self._check(local, spec, "dataset")
            return spec
        self._check(spec, spec, "dataset")
        return spec

    def check_folder(self, path: str, what: str) -> str:
        self._check(path, path, what)
        return path

    def _check(self, path: Path | str, shown: str, what: str) -> None:
        if not str(path).strip() or not self.allows(path):
            raise PathRefused(
                f"{what} {shown!r} refused: this dashboard reads only its data folder, the built-in sets and "
                "folders named with --dataset-root DIR"
            )


def _resolve(path: Path | str) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError):  # a symlink loop or an unreadable parent: nothing a page may open
        return Path("/nonexistent-refused")
