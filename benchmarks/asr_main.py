"""``python -m benchmarks asr TARGET``: ours against faster-whisper side by side, on a file, a dataset or long files.

    python -m benchmarks asr builtin-real:en --split dev --min-words 6 --repeat 3
    python -m benchmarks asr builtin-real:es,fr,it,ru --model whisper-base --min-words 6 --per-language 15
    python -m benchmarks asr --long en-dev-joined --repeat 3
    python -m benchmarks asr talk.wav --ref talk.txt
    python -m benchmarks asr --isolated talk.wav --ref talk.txt   # one child process per approach, with memory

Prints one table per target (see :mod:`benchmarks.sidebyside`), then each approach's WER difference to
``--baseline`` (the library's greedy) per language and overall with a 95% paired bootstrap interval; ``--json``
prints the figures, the differences and every hypothesis instead. Exit 2 with one line on a bad target, 1 when an approach failed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from asr import logs, omp_wait_setting
from benchmarks.approaches import APPROACHES, DEFAULT_APPROACHES, LONG_APPROACHES, Models
from benchmarks.sidebyside import BASELINE, report_json, run_target, table
from benchmarks.targets import AUDIO_SUFFIXES, TargetError, dataset_target, file_target, long_targets
from evaluation.cli_parser import at_least
from evaluation.realspeech import LONG_FILES

PROG = "python -m benchmarks asr"  # python -m asr bench runs this with its own name (usage and errors say it)
WHAT = __doc__.split("\n")[0].split(": ", 1)[1]  # the docstring's first line without its own command


LANGUAGE_HELP = (
    "force this language on every approach, any case: FR is fr (python -m asr languages lists them; English-only "
    "models: en); default: detect"
)


def parser(prog: str = PROG) -> argparse.ArgumentParser:
    from asr.models import default_model

    p = argparse.ArgumentParser(prog=prog, description=f"{prog} TARGET: {WHAT}")
    p.add_argument("target", nargs="?", help="an audio file, or a dataset (builtin-real:en, a folder, a manifest)")
    p.add_argument(
        "--long",
        nargs="*",
        choices=tuple(LONG_FILES),
        default=None,
        metavar="NAME",
        help=f"the real-speech long files ({', '.join(LONG_FILES)}; default the dev ones): one table each",
    )
    p.add_argument("--ref", help="a file's reference: the text, or a text file (default: NAME.txt beside it)")
    p.add_argument(
        "--model", default=default_model(), help=f"registered name, hub id or local folder (default {default_model()})"
    )
    p.add_argument("--language", default=None, metavar="CODE", help=LANGUAGE_HELP)
    p.add_argument("--split", default=None, help="dataset split (builtin-real: dev or heldout)")
    p.add_argument(
        "--min-words",
        type=at_least(0),
        default=0,
        help="only utterances with at least this many words (default 0: all)",
    )
    p.add_argument("--per-language", type=at_least(1), default=None, help="this many utterances per language")
    p.add_argument("--ids", nargs="+", default=(), metavar="ID", help="only these utterances (e.g. en/vm-login)")
    p.add_argument("--limit", type=at_least(1), default=None, help="at most this many utterances, spread evenly")
    p.add_argument(
        "--approaches",
        nargs="+",
        choices=tuple(APPROACHES),
        default=None,
        metavar="NAME",
        help=f"which to run, of {', '.join(APPROACHES)} (default: {' '.join(DEFAULT_APPROACHES)}; with --long, "
        f"{' '.join(LONG_APPROACHES)})",
    )
    p.add_argument(
        "--baseline",
        default=BASELINE,
        choices=tuple(APPROACHES),
        metavar="NAME",
        help=f"the approach every other one's WER difference (with its 95%% CI) is taken against (default {BASELINE})",
    )
    p.add_argument(
        "--repeat", type=at_least(1), default=1, help="timed runs per approach: median time, texts compared (default 1)"
    )
    p.add_argument(
        "--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto (default): a CUDA GPU if any, else CPU"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    p.add_argument(  # read by main before this parser: listed here so that --help names it
        "--isolated",
        action="store_true",
        help="one child process per approach, with peak memory: --isolated FILE --ref REF (--isolated --help lists "
        "its own options)",
    )
    return p


def _targets(args: argparse.Namespace) -> list:
    if args.long is not None:
        return long_targets(args.long)
    if not args.target:
        raise TargetError("give a file or dataset, or --long")
    path = Path(args.target).expanduser()
    if path.suffix.lower() in AUDIO_SUFFIXES:  # a missing talk.wav was "dataset 'talk.wav' not found: use builtin, ..."
        if not path.is_file():
            raise TargetError(f"{args.target}: no such file")
        return [file_target(path, args.ref, args.language)]
    return [dataset_target(args.target, args.split, args.min_words, args.per_language, args.limit, args.ids)]


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """``prog`` is the command as the user typed it (``python -m asr bench`` passes its own), for usage and errors."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--isolated" in argv:  # the per-process measurement: peak memory, and the transformers pipeline recipe
        from benchmarks.full_context import main as isolated

        return isolated([a for a in argv if a != "--isolated"], prog=f"{prog} --isolated")
    args = parser(prog).parse_args(argv)
    logs.configure(logging.ERROR, "%(message)s")
    logging.getLogger("benchmarks.sidebyside").setLevel(logging.ERROR if args.json else logging.INFO)
    from asr.audio import AudioError
    from asr.backends import BackendError, check_language
    from asr.models import UnknownModelError
    from asr.results import DecodeOptions
    from evaluation.datasets import DatasetError

    try:
        args.language = DecodeOptions(language=args.language).validate().language  # "EN" is en; "xx" refused here
        targets = _targets(args)
        models = Models(args.model, args.device, args.language)
        # a model that cannot load stops here, with one line; so does --language fr on tiny.en (it ran in English)
        check_language(models.backend("faster-whisper"), args.model, args.language)
    except (TargetError, DatasetError, AudioError, UnknownModelError, BackendError, OSError, ValueError) as exc:
        print(f"{prog.removeprefix('python -m ')}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 2
    approaches = args.approaches or (LONG_APPROACHES if args.long is not None else DEFAULT_APPROACHES)
    reports, failed = [], False
    for target in targets:
        if not args.json:
            print(f"running {len(approaches)} approaches on {target.name} ...", file=sys.stderr, flush=True)
        results = run_target(target, approaches, models, args.repeat)
        failed |= any(r.error for r in results)
        if args.json:
            reports.append(report_json(target, results, args.baseline))
        else:
            reports.append(table(target, results, models, args.repeat, args.baseline))
    if args.json:
        head = {"model": args.model, "cpu_count": os.cpu_count(), "omp_wait": omp_wait_setting(), "repeat": args.repeat}
        print(json.dumps({**head, "targets": reports}))
    else:
        wait = omp_wait_setting() or "OpenMP default wait"
        print(f"{os.cpu_count()} CPU(s), {wait}; load average {os.getloadavg()[0]:.1f} at the end\n")
        print("\n\n".join(reports))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
