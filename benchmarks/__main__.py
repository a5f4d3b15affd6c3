"""``python -m benchmarks asr|stream|sweep|live|ray ...``: run one benchmark (``--help`` after the name for its options)."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

COMMANDS = {
    "asr": (
        "benchmarks.asr_main",
        "full context: ours against faster-whisper's own, on a file, a dataset or long files",
    ),
    "stream": ("benchmarks.stream", "live streaming of a file on a simulated clock, against the Gradio recipe"),
    "sweep": ("benchmarks.sweep", "throughput of a whole built-in validation sweep on each backend"),
    "live": ("benchmarks.live_path", "streaming mode over the sweep, against stream on one file; hallucination probes"),
    "ray": ("benchmarks.scaleout", "the Ray executor against the local one, and one Ray node against two"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(f"usage: python -m benchmarks {{{','.join(COMMANDS)}}} ...", file=sys.stderr)
        for name, (_, help_text) in COMMANDS.items():
            print(f"  {name:7} {help_text}", file=sys.stderr)
        print("python -m benchmarks NAME --help lists its options and their defaults", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    return importlib.import_module(COMMANDS[argv[0]][0]).main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
