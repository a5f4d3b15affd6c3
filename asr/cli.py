"""``python -m asr``: transcribe files and list models from a terminal (benchmarks: ``python -m benchmarks``).

Exit codes: 0 when every file was transcribed, 1 when any file failed (the others are still transcribed), 2 for
bad arguments or a model that cannot be loaded, 130 for Ctrl-C and 143 for SIGTERM. Errors are one line on stderr that names the file, never a
traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from collections.abc import Sequence

from asr import logs
from asr.results import BACKENDS, DecodeOptions, Transcript
from asr.signals import exit_status, stop_signals

logger = logging.getLogger("asr")
DEVICES = ("auto", "cpu", "cuda")
MODEL_HELP = "registered name (python -m asr models), Hugging Face hub id or local model folder"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with stop_signals():  # SIGTERM (kill, timeout, a CI time limit) as Ctrl-C, exit 143 where Ctrl-C gives 130
            return _main(argv)
    except BrokenPipeError:  # output piped into head: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:  # Ctrl-C before the files (model loading): one line, not a 47-line traceback
        print("interrupted", file=sys.stderr)
        return exit_status(exc)


def _main(argv: list[str]) -> int:
    if argv[:1] == ["bench"]:  # the benchmark's own parser reads the rest (see _bench)
        return _bench(argv[1:])
    args = _parser().parse_args(argv)
    logs.configure(logging.DEBUG if args.debug else logging.WARNING, "%(levelname)s %(message)s")
    if not args.debug:  # _transcribe prints each audio warning once, as "warning: FILE: ..."; the log said it again
        logging.getLogger("asr.audio").setLevel(logging.ERROR)
    if args.command == "models":
        return _models(args)
    if args.command == "languages":
        return _languages()
    if (fmt := _output_format(args)) is None:
        return 2
    args.format = fmt
    return _transcribe(args)


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (exit 2), as every other error here, not usage text."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (--help lists the options)\n")


def _parser() -> argparse.ArgumentParser:
    from asr.models import default_model

    parser = _Parser(prog="python -m asr", description="Offline Whisper transcription for QA.")
    parser.add_argument("--debug", action="store_true", help="log details and show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "bench",
        help="ours against faster-whisper side by side on a file, a dataset or the long files (python -m benchmarks "
        "asr; bench --help lists its options)",
    )
    sub.add_parser(
        "models",
        help="list the models, their backends, and whether their weights are present",
        description="List the registered models (configs/models.yaml), the backends each runs on and whether its "
        "weights are here; --model also takes a Hugging Face hub id or a local model folder.",
    )
    sub.add_parser(
        "languages",
        help="list the language codes --language takes (Whisper's; English-only models take en only)",
        description="List Whisper's language codes, the values --language takes here and in python -m evaluation "
        "run (any case: EN is en). English-only models (*.en, such as the default) decode en only.",
    )
    t = sub.add_parser(
        "transcribe",
        help="transcribe audio files of any length and format",
        description="Transcribe audio files (wav, flac, mp3, ogg/opus, webm, m4a; any length, rate and channels) "
        "one after the other. Exit 0 when every file was transcribed, 1 when any failed (each failure is one "
        "line on stderr; the other files are still transcribed), 2 for a bad argument or model, 130 for Ctrl-C and "
        "143 for SIGTERM (the transcripts printed stand; one line names the files not done).",
    )
    t.add_argument("files", nargs="+", metavar="FILE", help="audio files; - reads one from standard input")
    t.add_argument("--model", default=default_model(), help=f"{MODEL_HELP} (default {default_model()})")
    t.add_argument("--backend", default="faster-whisper", choices=BACKENDS, help="engine (default faster-whisper)")
    t.add_argument("--device", default="auto", choices=DEVICES, help="auto (default): a CUDA GPU if any, else CPU")
    t.add_argument(
        "--format",
        default=None,
        choices=("text", "json", "srt", "vtt"),
        help="text (default); json: one object per file per line, with words and timings; srt or vtt subtitles",
    )
    t.add_argument("--json", action="store_true", help="short for --format json (another --format with it: refused)")
    t.add_argument(
        "--word-timestamps", action="store_true", help="text output: one line per word with its times (json has them)"
    )
    t.add_argument(
        "--beam-size", type=_beams, default=1, metavar="N", help="1 is greedy (default); 5 is Whisper's beam search"
    )
    t.add_argument(
        "--language",
        default=None,
        metavar="CODE",
        help="decode every file in this language (en, fr, ... in any case: FR is fr; python -m asr languages lists them; "
        "English-only models take en only); default: detect",
    )
    t.add_argument("--no-progress", action="store_true", help="no progress bar on stderr (shown for files over 1 min)")
    return parser


def _output_format(args: argparse.Namespace) -> str | None:
    """The output format, or None when ``--json`` and another ``--format`` were both given (said in one line):
    whichever came last won, unsaid, so ``--json --format srt`` printed subtitles to a script reading JSON."""
    if args.json and args.format not in (None, "json"):
        print(
            f"error: --json and --format {args.format} contradict each other: give one (--json is --format json)",
            file=sys.stderr,
        )
        return None
    return "json" if args.json else args.format or "text"


def _beams(text: str) -> int:
    """--beam-size's type: 0 said "beam_size must be an integer >= 1" (the option's field, not the flag)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, not {text!r}")
    return int(text)


def _bench(argv: list[str]) -> int:
    """``python -m asr bench TARGET ...`` is ``python -m benchmarks asr TARGET ...``: the side-by-side accuracy and
    speed tables on a file, a dataset folder or the long files. Run as its own process, since the engine never
    imports the benchmarks (they import it). Its usage and errors say ``asr bench``, the command typed: they said
    ``benchmarks asr``, a command the user had not run."""
    launch = "import sys; from benchmarks.asr_main import main; sys.exit(main(prog='python -m asr bench'))"
    return subprocess.run([sys.executable, "-c", launch, *argv], check=False).returncode


def _models(args: argparse.Namespace) -> int:
    from asr.models import default_model, list_models

    default = default_model()
    print(f"{'name':<18} {'backends':<29} {'weights':<9} description")
    for m in list_models():
        mark = "*" if m.name == default else " "
        present = "present" if m.present else "missing"
        print(f"{m.name + mark:<18} {', '.join(m.backends):<29} {present:<9} {m.description}")
        if not m.present:
            print(f"{'':<58} install: {m.install}")
    print("* default. Any Hugging Face hub id (org/name) or local model folder also works as --model.")
    return 0


def _languages() -> int:
    """Whisper's codes, ten a line: a refused ``--language`` says to run this (it named five and "...")."""
    from asr.results import WHISPER_LANGUAGES

    for start in range(0, len(WHISPER_LANGUAGES), 10):
        print(" ".join(WHISPER_LANGUAGES[start : start + 10]))
    print(f"{len(WHISPER_LANGUAGES)} codes; English-only models (*.en) decode en only; --language EN is en.")
    return 0


def _transcribe(args: argparse.Namespace) -> int:
    from asr.audio import AudioError, collect_warnings, naming_file
    from asr.backends import BackendError, check_language, get_backend
    from asr.models import UnknownModelError, resolve
    from asr.transcribe import transcribe

    try:
        options = DecodeOptions(beam_size=args.beam_size, language=args.language).validate()
        resolve(args.model)  # a model that cannot be had is exit 2 whatever the files, as before
        if _none_usable(args.files):  # said before the model loads, not after
            return 1
        backend = get_backend(args.model, args.backend, args.device)
        check_language(backend, args.model, options.language)  # it was ignored: English, unsaid
    except (UnknownModelError, BackendError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for done, path in enumerate(args.files):
        try:
            with _progress_bar(path, args.no_progress) as progress, collect_warnings() as warnings:
                source = _stdin_audio() if path == "-" else path  # "-": audio piped in (it was "no such file")
                result = transcribe(source, backend=backend, options=options, progress=progress)
        except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM: the transcripts printed so far stand; say which were not
            print(
                f"interrupted: {path} and the {len(args.files) - done - 1} file(s) after it not transcribed",
                file=sys.stderr,
            )
            return exit_status(exc)
        except (AudioError, OSError) as exc:
            failed += 1
            name = "standard input" if path == "-" else path  # the engine calls bytes "uploaded audio"
            print(f"error: {naming_file(name, str(exc).replace('uploaded audio', name))}", file=sys.stderr)
            continue
        except Exception as exc:  # noqa: BLE001 - one file's failure must not stop the others
            if args.debug:
                raise
            failed += 1
            print(f"error: {path}: transcription failed: {exc}", file=sys.stderr)
            continue
        for warning in warnings:  # e.g. loud float audio scaled back into range: transcribed, but say so
            print(f"warning: {warning}", file=sys.stderr)
        _emit(path, result, args, many=len(args.files) > 1, warnings=warnings)
    return 1 if failed else 0


def _none_usable(paths: Sequence[str]) -> bool:
    """Whether no path can give audio ("-" can), each one then said in its line here, before any model loads. Where
    one can, each bad path is said at its turn, in the order given, as transcription reaches it."""
    from asr.audio import AudioError, check_file, naming_file

    problems = []
    for path in paths:
        try:
            if path != "-":
                check_file(path)
            return False
        except (AudioError, OSError) as exc:
            problems.append(f"error: {naming_file(path, exc)}")
    print("\n".join(problems), file=sys.stderr)
    return True


def _stdin_audio() -> bytes:
    """The audio piped in for the file ``-``; nothing piped is the one-line error every empty file gets."""
    from asr.audio import AudioError

    data = sys.stdin.buffer.read()
    if not data:
        raise AudioError("nothing on standard input (pipe a file in: python -m asr transcribe - < talk.wav)")
    return data


class _progress_bar:
    """A tqdm bar on stderr, shown only for audio longer than a minute (short files finish before it matters)."""

    def __init__(self, path: str, disabled: bool) -> None:
        self.path, self.disabled, self.bar = path, disabled or not sys.stderr.isatty(), None

    def __enter__(self):
        return self

    def __call__(self, done: float, total: float) -> None:
        if self.disabled or total < 60:
            return
        if self.bar is None:
            from tqdm import tqdm

            # the first call comes after the first batch: counted as done before the bar began, not as 200 s of
            # audio in 0.00 s ("13502211.51s/s")
            self.bar = tqdm(
                total=round(total),
                initial=round(done),
                unit="s",
                desc=_short_name(self.path),
                file=sys.stderr,
                leave=False,
            )
        self.bar.n = round(done)
        self.bar.refresh()

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def _short_name(path: str, width: int = 30) -> str:
    """The file's name for the bar, its end kept when long: the path's last 30 characters began mid-folder
    ("-real/long/en-dev-joined.wav")."""
    name = os.path.basename(str(path)) or str(path)
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def _emit(path: str, result: Transcript, args: argparse.Namespace, many: bool, warnings: Sequence[str] = ()) -> None:
    """Print one file's result and flush it: piped into a file or another tool, each transcript arrives when its
    file is done (block-buffered, a batch's first transcripts waited for kilobytes of later ones)."""
    _print_result(path, result, args, many, warnings)
    sys.stdout.flush()


def _print_result(path: str, result: Transcript, args: argparse.Namespace, many: bool, warnings: Sequence[str]) -> None:
    if args.format == "json":
        print(json.dumps({"file": str(path), **result.to_dict(), "warnings": list(warnings)}, ensure_ascii=False))
        return
    if many:  # subtitles too: their cues restart at 1 per file, and ran on from one file into the next unmarked
        print(f"# {path}")
    if args.format in ("srt", "vtt"):
        print(to_subtitles(result, args.format))
    else:
        if args.word_timestamps:
            for w in result.words:
                print(f"[{w.start:8.2f} -> {w.end:8.2f}] {w.word.strip()}  ({w.probability:.2f})")
        else:
            print(result.text)


def to_subtitles(result: Transcript, fmt: str) -> str:
    """SubRip or WebVTT cues, one per segment."""
    sep = "," if fmt == "srt" else "."
    lines = [] if fmt == "srt" else ["WEBVTT", ""]
    for i, seg in enumerate(result.segments, start=1):
        if fmt == "srt":
            lines.append(str(i))
        lines.append(f"{_stamp(seg.start, sep)} --> {_stamp(seg.end, sep)}")
        lines += [seg.text, ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def _stamp(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"
