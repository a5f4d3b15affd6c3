"""Recording scripts: the prompts a tester reads aloud on the Record page, and the built-in sets.

A script is a list of prompts, each with a stable id (it names the take and the test case made from it) and
a prompt type (what kind of speech it is: Harvard sentence, digits, names and addresses, IVR commands), so a
session's summary can say where a speaker's WER comes from. Scripts come from three places: the built-in sets
below, pasted text (one prompt a line), or an uploaded CSV/TXT (``id,text`` with an optional ``type``).

Pure: no store, no Gradio; the Record page and the REST API both parse through here, so they accept and
refuse the same input with the same one-line message.
"""

from __future__ import annotations

import csv
import io
import re
import reprlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from evaluation.builtin import HARVARD

MAX_PROMPTS = 1000  # a script longer than this is almost certainly a wrong file, not a session
MAX_PROMPT_CHARS = 500  # about 30 s of reading; longer prompts belong in the full-context set
MAX_NAME_CHARS = 255  # a script's name: the longest file name, so a script named after its uploaded file fits
MAX_TYPE_CHARS = 64  # a prompt type, as long as an id may be: it names a row of the session summary
CUSTOM_TYPE = "custom"  # the prompt type of pasted lines and files without a type column
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class ScriptError(ValueError):
    """A script that cannot be used (empty, a bad line, a duplicate id), naming the line."""


@dataclass(frozen=True)
class Prompt:
    id: str  # unique within its script; becomes part of the take's labels
    text: str  # what the tester reads, and the reference the take is scored against
    type: str = CUSTOM_TYPE  # what kind of speech: harvard, digits, names, commands, custom, ...


# Harvard sentences, lists 1 and 2 (IEEE 1969, public domain); the first nine are the built-in set's.
HARVARD_LISTS = (
    *HARVARD,
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
)
DIGITS = (
    "My account number is 4 7 1 9 0 3 2 6.",
    "Please call me back on 0 2 0 7 9 4 6 0 1 3 5.",
    "The code is 8 8 3 1.",
    "Dial 1 800 555 0199 for help.",
    "My date of birth is the 14th of March 1986.",
    "The reference is 6 5 0 2 9, then 7 7.",
    "I need 3 tickets for the 7 30 show.",
    "Extension 2 4 5, please.",
    "My card ends in 9 0 0 4.",
    "The total was 12 pounds 49.",
)
NAMES = (
    "My name is Siobhan O'Sullivan.",
    "Please send it to 42 Elm Street, Springfield.",
    "I live at 7 Kingsway, Cardiff, CF10 3AT.",
    "Ask for Rajesh Venkataraman in accounts.",
    "The parcel goes to Flat 3, 19 Princes Street, Edinburgh.",
    "Book a table for Nguyen, party of four.",
    "Our office is on 1200 Peachtree Road, Atlanta, Georgia.",
    "Can I speak to Dr. Adebayo Okonkwo?",
    "Deliver it to Schlossstrasse 5, Berlin.",
    "My email is j dot smith at example dot com.",
)
COMMANDS = (
    "Press one for sales.",
    "Press two for billing.",
    "Speak to an agent.",
    "Check my balance.",
    "Cancel my order.",
    "Repeat that, please.",
    "Go back to the main menu.",
    "Transfer me to customer service.",
    "Yes, that is correct.",
    "No, I want to change my address.",
    "Pay my bill.",
    "Report a lost card.",
)
BUILTIN_SCRIPTS: dict[str, tuple[str, tuple[str, ...]]] = {  # name -> (prompt type, prompts)
    "harvard": ("harvard", HARVARD_LISTS),
    "digits": ("digits", DIGITS),
    "names-addresses": ("names", NAMES),
    "ivr-commands": ("commands", COMMANDS),
}
MIXED = "mixed"  # five of each built-in type, interleaved: one session's summary then shows every type


def builtin_script(name: str) -> tuple[Prompt, ...]:
    """The prompts of a built-in script (``harvard``, ``digits``, ``names-addresses``, ``ivr-commands``, ``mixed``)."""
    if name == MIXED:
        per_type = [builtin_script(n)[:5] for n in BUILTIN_SCRIPTS]
        return tuple(p for group in zip(*per_type, strict=True) for p in group)
    if name not in BUILTIN_SCRIPTS:
        known = ", ".join([*BUILTIN_SCRIPTS, MIXED])
        raise ScriptError(f"no built-in script {reprlib.repr(name)}; the built-in scripts are {known}")
    kind, texts = BUILTIN_SCRIPTS[name]
    return tuple(Prompt(f"{kind}-{n:02d}", text, kind) for n, text in enumerate(texts, 1))


def builtin_names() -> list[str]:
    return [*BUILTIN_SCRIPTS, MIXED]


def script_name(name: str | None, count: int) -> str:
    """The name a script of ``count`` prompts is saved under: ``name`` stripped, else "script of N prompts". One
    longer than MAX_NAME_CHARS is refused: a 1 MB name was stored, and listed in the Record page's script picker."""
    name = str(name or "").strip() or f"script of {count} prompt{'' if count == 1 else 's'}"
    if len(name) > MAX_NAME_CHARS:
        raise ScriptError(f"script name {reprlib.repr(name)}: {len(name)} characters; at most {MAX_NAME_CHARS}")
    return name


def parse_pasted(text: str, name: str = "pasted prompts") -> tuple[Prompt, ...]:
    """One prompt a line; blank lines are skipped; ids ``p01``, ``p02``... in order."""
    lines = [line.strip() for line in (text or "").splitlines()]
    texts = [line for line in lines if line]
    width = max(2, len(str(len(texts))))
    return _checked((Prompt(f"p{n:0{width}d}", t) for n, t in enumerate(texts, 1)), name)


def parse_script_file(data: bytes | str, name: str = "script") -> tuple[Prompt, ...]:
    """An uploaded script: CSV with ``id,text[,type]`` columns (a header row is optional), or TXT.

    A TXT file is read as ``id<TAB>text`` lines when every line has a tab, else as one prompt a line. A file that
    is not UTF-8 text (a spreadsheet saved as .xlsx, a recording picked by mistake) is a ScriptError, not a crash.
    """
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise ScriptError(
            f"{name}: not UTF-8 text (byte {exc.start + 1}); save the script as a UTF-8 CSV or TXT file"
        ) from None
    if name.lower().endswith(".csv"):
        return _parse_csv(text, name)
    lines = [line for line in text.splitlines() if line.strip()]
    if lines and all("\t" in line for line in lines):
        rows = [line.split("\t") for line in lines]
        return _from_rows(rows, name)
    return parse_pasted(text, name)


def from_records(records: Sequence[dict], name: str = "prompts") -> tuple[Prompt, ...]:
    """Prompts from ``{"id", "text", "type"}`` records (the REST API's JSON); ``type`` is optional."""
    rows = []
    for n, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise ScriptError(f"{name}: prompt {n}: expected an object with id and text, got {record!r}")
        rows.append([str(record.get(k) or "") for k in ("id", "text", "type")])
    return _from_rows(rows, name)


def _parse_csv(text: str, name: str) -> tuple[Prompt, ...]:
    reader = csv.reader(io.StringIO(text))
    lines = [(reader.line_num, row) for row in reader if any(cell.strip() for cell in row)]
    rows = [row for _, row in lines]
    header = [cell.strip().lower() for cell in rows[0]] if rows else []
    named = header[:2] == ["id", "text"] or {"id", "text"} <= set(header)
    _no_extra_fields(lines[1:] if named else lines, name, header if named else None)
    if named:
        order = [header.index(k) for k in ("id", "text", "type") if k in header]
        rows = [[row[i] if i < len(row) else "" for i in order] for row in rows[1:]]
    return _from_rows(rows, name)


def _no_extra_fields(lines: Sequence[tuple[int, list[str]]], name: str, header: list[str] | None) -> None:
    """A text with an unquoted comma is refused: the prompt was cut at it ('Hello'), or its rest became the type."""
    most = len(header) if header else 3
    for line, row in lines:
        if any(cell.strip() for cell in row[most:]):  # empty cells after the last column are nothing lost
            has = f"the header has {most} ({', '.join(header)})" if header else "at most 3 (id, text, type)"
            raise ScriptError(
                f'{name}: line {line}: {len(row)} fields, {has}; quote a text with a comma: "Hello, there"'
            )


def _from_rows(rows: Sequence[Sequence[str]], name: str) -> tuple[Prompt, ...]:
    prompts = []
    for n, row in enumerate(rows, 1):
        if len(row) < 2:
            raise ScriptError(f"{name}: line {n}: expected id,text (and optionally a type), got {','.join(row)!r}")
        kind = row[2].strip() if len(row) > 2 and row[2].strip() else CUSTOM_TYPE
        prompts.append(Prompt(row[0].strip(), row[1].strip(), kind))
    return _checked(prompts, name)


def _checked(prompts: Iterable[Prompt], name: str) -> tuple[Prompt, ...]:
    """One rule for every source: 1 to MAX_PROMPTS prompts, ids well formed and unique, texts with words to score."""
    from evaluation.scoring import get_normalizer  # the scorer's rule of what counts as a word

    normalize = get_normalizer()
    out = tuple(prompts)
    if not out:
        raise ScriptError(f"{name}: no prompts; give one prompt a line (or id,text lines in a CSV)")
    if len(out) > MAX_PROMPTS:
        raise ScriptError(f"{name}: {len(out)} prompts; a script holds at most {MAX_PROMPTS}")
    seen: set[str] = set()
    for n, p in enumerate(out, 1):
        if not ID_PATTERN.match(p.id):  # at most 64 characters too
            raise ScriptError(
                f"{name}: prompt {n}: id {reprlib.repr(p.id)} must be up to 64 letters, digits, '_', '-' or '.'"
            )
        if p.id in seen:
            raise ScriptError(f"{name}: prompt {n}: id {p.id!r} is used twice")
        if not p.text:
            raise ScriptError(f"{name}: prompt {n} ({p.id}): the text is empty")
        if len(p.text) > MAX_PROMPT_CHARS:  # before the text is quoted below
            raise ScriptError(f"{name}: prompt {n} ({p.id}): {len(p.text)} characters; at most {MAX_PROMPT_CHARS}")
        if not normalize(p.text).split():  # "Hmm.", "...": a take of it has WER n/a and its insertions no words
            raise ScriptError(f"{name}: prompt {n} ({p.id}): {p.text!r} has no words to score; give words to read")
        if len(p.type) > MAX_TYPE_CHARS:  # a 100,000-character type was stored
            raise ScriptError(
                f"{name}: prompt {n} ({p.id}): type of {len(p.type)} characters; at most {MAX_TYPE_CHARS}"
            )
        seen.add(p.id)
    return out
