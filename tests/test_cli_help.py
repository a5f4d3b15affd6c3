"""Every command's ``--help``: each option says what it does, each command what it is for, and a default the help
names is the one the code uses.

Found by walking the README as a new user: ``benchmarks sweep --backends`` said "comma-separated backends" and
nothing of its default (both), ``--noise`` and ``--model`` there and in ``benchmarks ray`` / ``live`` had no help at
all, and ``python -m dashboard --host``, ``--max-upload-mb``, ``--live-limit`` and ``--live-sessions`` named none.
"""

from __future__ import annotations

import argparse
import dataclasses

import pytest

from asr.cli import _parser as asr_parser
from asr.results import DecodeOptions
from asr.streaming.options import StreamOptions
from benchmarks import asr_main, full_context, live_path, scaleout, stream, sweep
from benchmarks.approaches import DEFAULT_APPROACHES, LONG_APPROACHES
from dashboard.__main__ import _parser as dashboard_parser
from evaluation.cli_parser import build_parser as evaluation_parser
from evaluation.realspeech import SOUNDS_DIR
from evaluation.runner import RunOptions

PARSERS = {
    "python -m asr": asr_parser,
    "python -m evaluation": evaluation_parser,
    "python -m dashboard": dashboard_parser,
    "python -m benchmarks asr": asr_main.parser,
    "python -m benchmarks asr --isolated": full_context._parser,
    "python -m benchmarks stream": stream.parser,
    "python -m benchmarks sweep": sweep.parser,
    "python -m benchmarks live": live_path.parser,
    "python -m benchmarks ray": scaleout.parser,
}
DISPATCHED = {"python -m asr bench"}  # its options are benchmarks asr's (python -m asr bench --help prints them)


def _commands(name: str, parser: argparse.ArgumentParser):
    """Every command that runs something: the parser itself, or each leaf of its subcommands."""
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        yield name, parser
    for action in subs:
        for sub_name, sub in action.choices.items():
            yield from _commands(f"{name} {sub_name}", sub)


COMMANDS = dict(c for name, make in PARSERS.items() for c in _commands(name, make()))


def _options(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or action.help == argparse.SUPPRESS:
            continue
        yield action


def _shown(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - DISPATCHED))
def test_every_option_says_what_it_does_and_names_its_default(command):
    parser = COMMANDS[command]
    assert parser.description, f"{command} --help says nothing of what the command does"
    for action in _options(parser):
        flag = action.option_strings[-1] if action.option_strings else action.dest
        assert action.help, f"{command} {flag} has no help"
        if action.default in (None, False, "", []) or isinstance(action.default, (list, tuple)):
            continue  # nothing to name (a flag, "all", "detect", or a default the help says in words)
        assert _shown(action.default) in action.help, f"{command} {flag}: its default {action.default!r} is not named"


def test_defaults_named_in_words_are_the_real_ones():
    """The defaults a help text names although the option's own default is None: the code decides them."""
    helps = {
        (command, a.option_strings[-1]): a.help
        for command, p in COMMANDS.items()
        for a in _options(p)
        if a.option_strings
    }
    assert f"default {StreamOptions().decode.beam_size})" in helps[("python -m benchmarks stream", "--beam-size")]
    assert f"{DecodeOptions().beam_size} is greedy (default)" in helps[("python -m asr transcribe", "--beam-size")]
    assert f"(default {SOUNDS_DIR})" in helps[("python -m evaluation make-real", "--sounds")]
    assert "default whisper-tiny.en" in helps[("python -m evaluation run", "--model")]
    run = {f.name: f.default for f in dataclasses.fields(RunOptions)}  # the CLI passes these only when given
    assert f"default {run['stream_sessions']})" in helps[("python -m evaluation run", "--stream-sessions")]
    assert f"{run['stream_clock']} (default)" in helps[("python -m evaluation run", "--stream-clock")]
    assert f"default {run['cpus_per_worker']:g})" in helps[("python -m evaluation run", "--cpus-per-worker")]
    approaches = helps[("python -m benchmarks asr", "--approaches")]
    assert f"(default: {' '.join(DEFAULT_APPROACHES)}; with --long, {' '.join(LONG_APPROACHES)})" in approaches


@pytest.mark.parametrize(
    ("command", "option", "needle"),
    [
        ("python -m evaluation run", "--out", "gets a ' before it"),  # the quote a spreadsheet user sees, explained
        ("python -m evaluation compare", "--out", "gets a ' before it"),
        ("python -m asr transcribe", "--language", "any case"),
        ("python -m evaluation run", "--language", "any case"),
        ("python -m benchmarks asr", "--language", "any case"),
    ],
)
def test_the_csv_mark_and_the_language_case_are_named_in_the_help(command, option, needle):
    action = next(a for a in COMMANDS[command]._actions if option in a.option_strings)
    assert needle in action.help, action.help
