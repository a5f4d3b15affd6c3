"""``python -m evaluation``: run a validation, compare runs, list runs, rebuild the built-in set (sweep
benchmark: ``python -m benchmarks sweep``).

Exit codes of ``run``: 0 when every ``--max-wer`` threshold holds, 1 when one is exceeded (a CI gate for model
changes), 2 on bad arguments or an unusable dataset, with a one-line message, 130 when cancelled by Ctrl-C and 143
by SIGTERM (see :mod:`asr.signals`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from asr import logs
from asr.backends import BackendError
from asr.models import UnknownModelError
from asr.signals import exit_status
from evaluation.cli_guards import a_folder, stop_cancels, store_for_run, writable_folder
from evaluation.cli_parser import UsageError, build_parser
from evaluation.datasets import DatasetError
from evaluation.executors import ExecutorError
from evaluation.noise import NoiseError, parse_conditions
from evaluation.progress import TerminalBar
from evaluation.runner import RunError, RunOptions
from evaluation.store import RunNotFound, StoreError, new_run_id
from evaluation.thresholds import ThresholdError, check_planned, gate, parse_threshold

RUN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
STORE = "the store (runs, recorded test cases)"
USER_ERRORS = (
    DatasetError,
    NoiseError,
    RunError,
    UnknownModelError,
    BackendError,
    StoreError,
    RunNotFound,
    ExecutorError,
    ThresholdError,
)


def cmd_run(args: argparse.Namespace) -> int:
    from evaluation.report import SYNTHETIC_NOTE, write_outputs
    from evaluation.runner import run_validation

    thresholds = [parse_threshold(t) for t in args.max_wer]
    for t in thresholds:  # "--max-wer 35" meant 35% to whoever typed it, and is a gate that never fails
        if t.max_wer > 1 and not t.spec.endswith("%"):
            print(
                f"warning: --max-wer {t.spec} is {t.max_wer:.0%} WER; for {t.max_wer:g}% write {t.max_wer:g}% or "
                f"{t.max_wer / 100:g}",
                file=sys.stderr,
            )
    options = _run_options(args)
    run_id = options.run_id
    bar = TerminalBar(not args.quiet and sys.stderr.isatty())
    started, cancel = threading.Event(), threading.Event()

    def progress(done: int, total: int, message: str) -> None:
        started.set()  # the run is registered: from now on Ctrl-C or SIGTERM cancels it, keeping what was done
        bar(done, total, message)

    try:
        with store_for_run(args.data_dir) as store, stop_cancels(cancel, started) as received:
            # a threshold on a group or noise no row has was found after the whole run, every output written
            result = run_validation(
                options,
                store,
                progress=progress,
                cancel=cancel,
                on_loaded=lambda data: check_planned(thresholds, data, options.noise, options.modes),
            )
    except KeyboardInterrupt as exc:  # a second Ctrl-C or SIGTERM, or one before the run started
        bar.close()
        said = f"resume with --run-id {run_id}" if started.is_set() else "nothing was stored"
        print(f"cancelled; {said}", file=sys.stderr)
        return exit_status(exc)
    finally:
        bar.close()
    if result.status == "cancelled":  # no outputs, no gate: a part of a run passes no threshold
        print(f"cancelled: {_cancelled_text(store, result)}; resume with --run-id {run_id}", file=sys.stderr)
        return exit_status(signum=received.signum)
    out = Path(args.out) if args.out else Path("out") / result.run_id
    try:
        outcomes, failures = gate(result.rows, thresholds)
    except ThresholdError:
        write_outputs(out, result.rows, result.summary, result.settings, result.run_id, None, result.skipped)
        raise
    write_outputs(
        out, result.rows, result.summary, result.settings, result.run_id, {"thresholds": outcomes}, result.skipped
    )
    with reader_may_leave():
        _print_summary(result, out)
        if args.dataset == "builtin":
            print(SYNTHETIC_NOTE)
        for failure in failures:
            print(f"FAIL: {failure}")
    return 1 if failures else 0


@contextlib.contextmanager
def reader_may_leave():
    """Printing into a pipe whose reader has gone (``| head -3``): stop printing, quietly, and let the command
    return its own exit code. It printed "error: : Broken pipe" and exited 2, a failed --max-wer gate too."""
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # or Python's exit flush says it again


def _path_options(args: argparse.Namespace) -> dict:
    """The streaming and Ray options given, each refused where the run would ignore it: `--stream-sessions 4`
    without --mode streaming (or --cpus-per-worker on the local executor) ran as if it were not there."""
    given = {"stream_sessions": args.stream_sessions, "stream_clock": args.stream_clock}
    if args.mode == "offline" and (flag := next((k for k, v in given.items() if v is not None), None)):
        raise UsageError(f"--{flag.replace('_', '-')} sets the streaming path: add --mode streaming or --mode both")
    ray = {"workers": args.workers, "cpus_per_worker": args.cpus_per_worker}
    if args.executor.strip() == "local" and (flag := next((k for k, v in ray.items() if v is not None), None)):
        raise UsageError(f"--{flag.replace('_', '-')} sets the Ray actors: add --executor ray (or ray://HOST:PORT)")
    return {k: v for k, v in (given | {"cpus_per_worker": args.cpus_per_worker}).items() if v is not None}


def _run_options(args: argparse.Namespace) -> RunOptions:
    """The run's options from the command line, checked before anything is loaded or stored."""

    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit must be at least 1, not {args.limit}")
    a_folder("--out", args.out, "results.csv and summary.*")  # found after the run, as a traceback
    writable_folder("--out", args.out, "results.csv and summary.*")  # found after the run too
    a_folder("--data-dir", args.data_dir, STORE)
    if args.run_id is not None and not RUN_ID.fullmatch(args.run_id):  # "../x" wrote out/../x, "x/y" out/x/y
        raise UsageError(f"--run-id {args.run_id!r}: use letters, digits, '-', '_' and '.' (it names out/RUN_ID)")
    options = RunOptions(
        **_path_options(args),
        dataset=args.dataset,
        noise=tuple(c.spec for c in parse_conditions(args.noise)),
        model=args.model,
        backend=args.backend,
        device=args.device,
        limit=args.limit,
        min_words=args.min_words,
        text_column=args.text_column,
        group_columns=tuple(args.group_column),
        speaker_column=args.speaker_column,
        split=args.split,
        seed=args.seed,
        normalizer=args.normalizer,
        language=args.language,
        mode=args.mode,
        stream_seconds=args.stream_seconds,
        run_id=args.run_id or new_run_id(),
        executor=args.executor,
        workers=args.workers,
    ).validate()
    _check_language(options)
    return options


def _check_language(options: RunOptions) -> None:
    """``--language fr`` on an English-only model was ignored: every row decoded in English, under a run whose
    settings say French (``python -m asr transcribe`` refused it). The model is loaded once per process, so the
    local run reuses it."""
    if options.language in (None, "", "en"):
        return
    from asr.backends import check_language, get_backend
    from evaluation.runner import worker_options

    model = worker_options(options).model_name
    check_language(get_backend(model, options.backend, options.device), model, options.language)


def _print_summary(result, out: Path) -> None:
    from evaluation.report import count_text, display_table, invented_pivot, overall_path, streaming_overall_text

    s, o = result.summary, result.summary.overall
    group = s.group_columns[0] if s.group_columns else None
    rates = invented_pivot(result.rows, group) if o.ref_words == 0 else None
    if rates is not None:  # a probe run: no reference words, so a WER table of n/a; what counts is what was invented
        by = f"{group} x noise" if group else "noise"
        print(f"run {result.run_id} ({result.status}): invented words per minute of non-speech by {by} (0 is right)")
        print(rates.round(2).to_string(index=False))
    else:
        title = f"WER by {group} x noise" if s.pivot_text is not None else "WER by noise"
        print(f"run {result.run_id} ({result.status}): {title} (pooled, 95% CI; * = too few utterances to trust)")
        if s.pivot_text is not None:  # groups down the side, noise across
            print(s.pivot_text.to_string())
        else:  # one row per noise condition: its row numbers ("0  clean ...") were a column that meant nothing
            print(display_table(s.tables["noise"], ["noise"]).to_string(index=False))
    no_wer = "n/a (no reference words)"
    wer = f"{o.wer * 100:.2f}% (raw {o.raw_wer * 100:.2f}%), CER {o.cer * 100:.2f}%" if o.ref_words else no_wer
    print(
        f"overall WER{overall_path(s)} {wer}, "
        f"{count_text(result.rows)}, {o.audio_seconds:.1f} s audio, {o.compute_seconds:.1f} s compute, rtfx {o.rtfx:.1f} "
        f"(compute)" + (f", rtfx {result.rtfx:.1f} (wall)" if result.audio_seconds_done else "")
    )  # no wall rtfx when this call transcribed nothing (every row was stored): it read "rtfx 0.0 (wall)"
    if s.overall_streaming is not None:
        print(streaming_overall_text(s).strip())
    if s.languages is not None:
        print(s.languages.text())
    if o.runaway:
        print(f"{o.runaway} hypothesis(es) are repetition loops (column runaway): they dominate the WER they land in")
    if s.streaming is not None:
        from evaluation.stream_tables import format_streaming

        print("streaming (committed text on the simulated live clock; latency = commit time - word end in the audio):")
        print(format_streaming(s.streaming, ["noise"]).to_string(index=False))
    _print_invented(result)
    _print_audio_notes(result)
    if result.resumed_rows:
        print(f"resumed: {result.resumed_rows} rows were already stored")
    if result.skipped:
        print(f"skipped {len(result.skipped)} dataset row(s):")
        for message in result.skipped[:10]:
            print(f"  {message}")
        if len(result.skipped) > 10:  # it said "skipped 11" and listed 10, with nothing to say where the 11th was
            print(f"  ... {len(result.skipped) - 10} more in summary.md and summary.json (skipped)")
    print(f"wrote {out}/results.csv, summary.csv, summary.json, summary.md")


def _print_audio_notes(result) -> None:
    """One line for the rows whose audio reading changed (loud float audio scaled back): each logged a WARNING
    line mid-run, across the progress bar, and results.csv's audio_note names them all."""
    from evaluation.report import plural

    rows = result.rows
    if "audio_note" not in rows.columns:
        return
    noted = rows[rows["audio_note"].fillna("").astype(str) != ""]
    if len(noted):
        first = noted.iloc[0]
        print(
            f"{plural(len(noted), 'row')} had their audio changed on reading (audio_note in results.csv), "
            f"e.g. {first['id']}: {first['audio_note']}"
        )


def _print_invented(result) -> None:
    from evaluation.report import invented_lines

    for line in invented_lines(result.rows, result.summary.group_columns):
        print(line)


def _stored(data_dir: str):
    """The store in ``data_dir`` for a command that only reads it, or None when there is none: opening one makes
    its folder and database, so ``runs --data-dir TYPO`` used to leave a new empty store behind."""
    from evaluation.store import DB_NAME, Store

    a_folder("--data-dir", data_dir, STORE)
    folder = Path(data_dir).expanduser()
    return Store(folder) if (folder / DB_NAME).is_file() else None


def _no_store(data_dir: str) -> str:
    folder = Path(data_dir).expanduser()
    return f"{data_dir}: {'no such folder' if not folder.exists() else 'it holds no store'}"


def cmd_compare(args: argparse.Namespace) -> int:
    from evaluation.compare import compare_runs, comparison_text
    from evaluation.report import markdown_table
    from evaluation.spreadsheet import write_csv

    a_folder("--out", args.out, "compare.csv and compare.md")
    if (store := _stored(args.data_dir)) is None:
        raise UsageError(
            f"--data-dir {_no_store(args.data_dir)}, so no run {args.run_a!r} (--data-dir names the store)"
        )
    try:
        comparison = compare_runs(store, args.run_a, args.run_b)
    except RunNotFound as exc:  # said which id, not where to find the ones there are
        raise UsageError(f"{exc} (python -m evaluation runs --data-dir {args.data_dir} lists them)") from exc
    text = comparison_text(comparison)
    regressions = len(comparison.regressions)
    with reader_may_leave():
        print(f"B = {args.run_b} against A = {args.run_a} (delta = B - A in WER points; positive is worse)")
        for difference in comparison.differences:
            print(f"  {difference}")
        print(text.to_string(index=False))
        print(f"{regressions} regression(s) beyond the 95% CI")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_csv(comparison.table, out / "compare.csv")  # a group value that starts like a formula as text
        (out / "compare.md").write_text(markdown_table(text) + "\n", encoding="utf-8")
    return 1 if args.fail_on_regression and regressions else 0


def cmd_runs(args: argparse.Namespace) -> int:
    store = _stored(args.data_dir)  # listing creates nothing: a --data-dir that names no store says so
    runs = store.runs.list_runs() if store is not None else []
    if not runs:  # no store, or a store without a run: one message (it printed nothing, as if the folder were right)
        where = args.data_dir if store is not None else _no_store(args.data_dir)
        print(f"no stored runs in {where} (python -m evaluation run stores one; --data-dir names the store)")
    for run in runs:
        wer = _overall(store, run).get("wer")
        wer_text = f"{wer * 100:.1f}%" if isinstance(wer, (int, float)) else "-"
        s = run.settings
        part = f"  ({_stored_text(run)}, WER over those)" if run.status != "finished" and run.results else ""
        print(
            f"{run.id}  {run.status:9}  WER {wer_text:>6}  {s.model} / {s.backend}  {s.dataset}  {','.join(s.noise)}{part}"
        )
    return 0


def _overall(store, run) -> dict:
    """A run's overall figures: stored when it finished or was cancelled, else (a run killed, or one stopped before
    its figures were stored) those of its stored rows, which it was listed without ("WER -")."""
    if run.summary.get("overall") or not run.results:
        return run.summary.get("overall") or {}
    from evaluation.report import headline_overall

    return headline_overall(store.runs.run_results(run.id)).to_json()


def _cancelled_text(store, result) -> str:
    """ "24 of 252 rows stored (WER 30.1% over them)": what a cancelled run kept."""
    o = result.summary.overall
    return _stored_text(store.runs.get_run(result.run_id)) + (
        f" (WER {o.wer * 100:.1f}% over them)" if o.ref_words else ""
    )


def _stored_text(run) -> str:
    """How much of a run that did not finish is stored: "32 of 252 rows stored"."""
    planned = run.summary.get("rows_planned")
    return f"{run.results}{f' of {planned}' if planned else ''} rows stored"


def cmd_make_real(args: argparse.Namespace) -> int:
    from evaluation.realspeech import SOUNDS_DIR, RealSpeechError, make_real

    try:
        out = make_real(
            Path(args.out) if args.out else None,
            Path(args.sounds) if args.sounds else SOUNDS_DIR,
            Path(args.texts) if args.texts else None,
            force=args.force,
        )
    except RealSpeechError as exc:
        raise UsageError(str(exc)) from exc
    print(out)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    level = logging.DEBUG if getattr(args, "debug", False) else logging.WARNING
    logs.configure(level, "%(levelname)s %(name)s: %(message)s")
    # loud float audio logged "WARNING asr.audio: ..." per file mid-run; the summary counts the rows instead
    logging.getLogger("asr.audio").setLevel(logging.NOTSET if level == logging.DEBUG else logging.ERROR)
    with reader_may_leave():  # runs, make-builtin, make-real; run and compare keep their exit codes themselves
        return _dispatch(args)
    return 0


def _dispatch(args: argparse.Namespace) -> int:
    try:
        if args.command == "run":
            return cmd_run(args)
        if args.command == "compare":
            return cmd_compare(args)
        if args.command == "runs":
            return cmd_runs(args)
        if args.command.startswith("make-"):  # a file as --out said "F/audio: Not a directory"
            a_folder("--out", args.out, "the set")
        if args.command == "make-real":
            return cmd_make_real(args)
        from evaluation.builtin import BUILTIN_DIR, make_builtin

        print(make_builtin(Path(args.out) if args.out else BUILTIN_DIR))
        return 0
    except (UsageError, *USER_ERRORS) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {message}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of the output left: main stops quietly
        raise
    except OSError as exc:  # a --data-dir or --out that cannot be written (a file, no permission, a full disk)
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
