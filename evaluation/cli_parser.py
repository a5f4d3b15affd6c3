"""The options of ``python -m evaluation`` and their help: what ``--help`` says, apart from what the commands do
(``evaluation/cli.py``), so the help can say enough without crowding the commands."""

from __future__ import annotations

import argparse
import math

from asr.backends import DEFAULT_BACKEND
from asr.models import default_model
from asr.results import BACKENDS
from evaluation.executors import USAGE as EXECUTORS
from evaluation.noise import FULL_USAGE
from evaluation.scoring import BY_LANGUAGE, NORMALIZER_SETTINGS
from evaluation.store import DEFAULT_DATA_DIR
from evaluation.streaming import MAX_SESSIONS, MODES

DESCRIPTION = (
    "python -m evaluation: run a validation, compare runs, list runs, rebuild the built-in set (sweep benchmark: "
    "python -m benchmarks sweep). COMMAND --help says more."
)
DATA_DIR_HELP = f"the store: runs, recorded test cases (default {DEFAULT_DATA_DIR})"


MARKED = "; a CSV text cell that starts with =, +, - or @ gets a ' before it, as text in a spreadsheet"
LANGUAGE_HELP = (
    "decode every utterance in this language, any case: FR is fr (python -m asr languages; English-only models: en); "
    "default: detect"
)


def at_least(low: int, high: int | None = None):
    """An integer option's type that says which option is wrong: RunOptions' own check named the field
    ("min_words must be an integer >= 0", "stream sessions must be ..."), not the flag the user typed."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            wanted = f">= {low}" if high is None else f"from {low} to {high}"
            raise argparse.ArgumentTypeError(f"must be an integer {wanted}, not {text!r}")
        return value

    return parse


def above_zero(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a number above 0, not {text!r}")
    return value


class UsageError(Exception):
    """Bad command-line input: exit 2 with this one-line message."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (exit 2) instead of usage text."""

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (--help lists the options)")


def _run_parser(sub) -> None:
    p = sub.add_parser(
        "run",
        help="transcribe a dataset under noise conditions and tabulate WER",
        description="Transcribe a dataset under noise conditions, score each utterance and tabulate WER per group x "
        "noise; writes results.csv and summary.* into --out. Exit 0 when every --max-wer holds, 1 when one is "
        "exceeded, 2 for a bad argument or an unusable dataset (one line on stderr), 130 when cancelled: Ctrl-C "
        "stops after the model call in progress, keeping every utterance decoded (a second Ctrl-C stops at once); "
        "--run-id resumes it. SIGTERM (kill, timeout, a CI job's time limit) cancels the same way, exit 143.",
    )
    p.add_argument(
        "--dataset",
        default="builtin",
        help="builtin, builtin-real[:LANG[,LANG]] (real speech; --split dev or heldout), probes (non-speech: "
        "hallucinations), recorded, a folder or manifest, or hub:ID[:CONFIG[:SPLIT]] (default builtin)",
    )
    p.add_argument("--noise", default="clean", help=f"comma-separated conditions (default clean): {FULL_USAGE}")
    p.add_argument(
        "--model",
        default="",
        help=f"registered name (python -m asr models), hub id or folder (default {default_model()})",
    )
    p.add_argument("--backend", default=DEFAULT_BACKEND, choices=BACKENDS, help=f"engine (default {DEFAULT_BACKEND})")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto (default): a GPU if any")
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="utterances taken, spread evenly over the set (the first N of a hub dataset; default all)",
    )
    p.add_argument(
        "--min-words",
        type=at_least(0),
        default=0,
        help="only utterances with this many reference words or more (default 0: all)",
    )
    p.add_argument("--out", default=None, help="folder for results.csv and summary.* (default out/RUN_ID)" + MARKED)
    p.add_argument(
        "--max-wer",
        action="append",
        default=[],
        metavar="[COL=VALUE:]LIMIT",
        help="exit 1 when the pooled WER (0.35 or 35%%) of the run, or of the rows whose COL is VALUE, is above "
        "LIMIT; with --mode both it gates the offline rows unless COL is mode (mode=streaming:0.3); repeatable",
    )
    _column_options(p)
    p.add_argument(
        "--normalizer",
        default=BY_LANGUAGE,
        choices=NORMALIZER_SETTINGS,
        help="by-language (default): Whisper's English normalizer for English rows, its basic one otherwise",
    )
    p.add_argument(
        "--language",
        default=None,
        metavar="CODE",
        help=LANGUAGE_HELP,
    )
    _store_options(p)
    _scale_options(p)


def _store_options(p: argparse.ArgumentParser) -> None:
    """Which run, in which store, and what the terminal shows."""
    p.add_argument(
        "--run-id",
        default=None,
        metavar="ID",
        help="resume this run, skipping its stored rows, or name a new one (default: a new id, date-time-random)",
    )
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), metavar="DIR", help=DATA_DIR_HELP)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--debug", action="store_true", help="log details (each skipped row as it is read, the engine at DEBUG)"
    )


def _column_options(p: argparse.ArgumentParser) -> None:
    """Which columns of the dataset are what, which split, and the noise seed."""
    p.add_argument("--text-column", default=None, metavar="COL", help="the reference (default: text, sentence, ...)")
    p.add_argument(
        "--group-column",
        action="extend",
        nargs="+",
        default=[],
        metavar="COL",
        help="tabulate WER by these columns (default: accent, accents, l1 or variety, or language on builtin-real)",
    )
    p.add_argument(
        "--speaker-column",
        default=None,
        metavar="COL",
        help="who spoke each row, for the intervals (default: speaker, speaker_id, client_id)",
    )
    p.add_argument(
        "--split",
        default=None,
        help="a hub or save_to_disk split; in a folder or manifest, the rows whose split column holds it",
    )
    p.add_argument(
        "--seed", type=at_least(0), default=0, help="seed of the noise mixing (default 0: the same rows each run)"
    )


def _scale_options(p: argparse.ArgumentParser) -> None:
    """Where the rows run (local or Ray) and the streaming mode's options."""
    p.add_argument(
        "--executor",
        default="local",
        metavar="local|ray|ray://HOST:PORT",
        help=f"where rows run (default local): {EXECUTORS}",
    )
    p.add_argument(
        "--workers", type=at_least(1), default=None, help="Ray actors, one model each (default: one per CPU)"
    )
    p.add_argument(
        "--cpus-per-worker", type=above_zero, default=None, help="Ray num_cpus per actor (= model threads; default 1)"
    )
    p.add_argument(
        "--mode",
        default="offline",
        choices=MODES,
        help="offline (full context; default), streaming (the live engine on a simulated clock) or both side by side",
    )
    p.add_argument(
        "--stream-seconds",
        type=above_zero,
        default=None,
        help="streaming: join consecutive utterances into streams at least this long, with 0.7 s pauses (default: "
        "each utterance its own stream)",
    )
    p.add_argument(
        "--stream-sessions",
        type=at_least(1, MAX_SESSIONS),
        default=None,
        help=f"streaming: streams at once on one worker (1 to {MAX_SESSIONS}; default 1)",
    )
    p.add_argument(
        "--stream-clock",
        default=None,
        choices=("modelled", "measured"),
        help="streaming: modelled (default) advances the simulated clock by the calibrated cost model (the same "
        "rows every run), measured by measured compute (this machine as loaded now)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m evaluation", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _run_parser(sub)
    c = sub.add_parser(
        "compare",
        help="per-group WER deltas of RUN_B against RUN_A",
        description="Per-group WER deltas of RUN_B against RUN_A with 95% bootstrap intervals; REGRESSION marks a "
        "group whose whole interval lies above zero. Runs with different --noise lists are compared on the conditions "
        "both took. Exit 0, or 1 with --fail-on-regression when a group regressed.",
    )
    c.add_argument("run_a", metavar="RUN_A", help="the baseline run's id (python -m evaluation runs lists them)")
    c.add_argument("run_b", metavar="RUN_B", help="the run compared against it")
    c.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), metavar="DIR", help=DATA_DIR_HELP)
    c.add_argument("--out", default=None, help="also write compare.csv and compare.md here" + MARKED)
    c.add_argument("--fail-on-regression", action="store_true", help="exit 1 when a group regressed")
    r = sub.add_parser(
        "runs",
        help="list stored runs",
        description="List the stored runs, newest first: id, status, overall WER, model / backend, dataset, noise. "
        "A run that did not finish (cancelled, or killed) shows the WER of its stored rows and how many they are.",
    )
    r.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), metavar="DIR", help=DATA_DIR_HELP)
    m = sub.add_parser(
        "make-builtin",
        help="rebuild the built-in sample set with espeak-ng",
        description="Speak the built-in set's Harvard sentences with seven espeak-ng accent voices (63 FLAC files, "
        "metadata.csv and README.md); a rebuild gives byte-identical files.",
    )
    m.add_argument("--out", default=None, help="folder to write it into (default evaluation/builtin, the repository's)")
    real = sub.add_parser(
        "make-real",
        help="build the real-speech set from Debian's Asterisk prompts (setup does)",
        description="Copy Debian's Asterisk voice prompts with their transcripts into the real-speech set "
        "(builtin-real), with its long files; quick when it is up to date, byte-identical when rebuilt.",
    )
    real.add_argument("--out", default=None, help="folder to write it into (default $ASRQA_CACHE/builtin-real)")
    real.add_argument("--sounds", default=None, help="the voices' folder (default /usr/share/asterisk/sounds)")
    real.add_argument(
        "--texts", default=None, help="where the text packages are unpacked (default $ASRQA_CACHE/debian)"
    )
    real.add_argument("--force", action="store_true", help="rebuild even when the set is up to date")
    return parser
