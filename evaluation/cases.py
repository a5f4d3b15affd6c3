"""Test cases and flags as the store keeps them: the typed ``Case``, and its row in SQLite and back.

Split from ``store.py`` so that the store holds the transactions (what is written when, and atomically) and this
module the shape of a case row: columns, JSON labels, and which column an edit may change.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from evaluation.runstore import StoreError

INSERT_SQL = (
    "INSERT INTO cases (id, kind, audio_file, transcript, reference, reason, labels, notes, model,"
    " backend, status, created_at, duration, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
EDITABLE = ("status", "labels", "reference", "notes")  # what a reviewer (or saving a take again) may change
# The columns an export of cases writes (``evaluation.export``) beside one per label, and the audio column the
# validation loader takes before ``file_name`` (``audio_filepath``): a label of one of these names, in any case (the
# loader matches names case-insensitively), was dropped from the export or replaced the column on loading it back.
EXPORT_COLUMNS = ("id", "kind", "text", "hypothesis", "reason", "status", "model", "backend", "notes", "duration")
RESERVED_LABELS = ("file_name", "audio", "audio_filepath", *EXPORT_COLUMNS)


class CaseConflict(ValueError):
    """A reviewer's edit of a field another tester (or another tab) changed since the reviewer opened the case."""

    def __init__(self, case_id: str, fields: list[str]) -> None:
        super().__init__(
            f"case {case_id} was changed elsewhere since it was opened ({', '.join(fields)}): nothing was saved;"
            " click its row again to see what is stored, then edit"
        )
        self.fields = fields


class CaseNotFound(KeyError):
    """No test case or flag with this id (it may have been deleted)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "case not found"


@dataclass(frozen=True)
class Case:
    """A saved test case or a flagged transcript."""

    id: str
    kind: str  # "test_case" | "flag"
    audio_path: str  # absolute path of a 16 kHz mono WAV inside data_dir/audio
    transcript: str  # the model's hypothesis
    reference: str  # the reference text (test case) or the corrected transcript (flag)
    reason: str  # the flag reason ("" for test cases)
    labels: dict[str, str]  # accent, noise, device, ... (free keys)
    notes: str
    model: str
    backend: str
    status: str  # one of STATUSES
    created_at: str  # ISO 8601 UTC
    duration: float  # seconds
    origin: str = ""  # the take it was saved from (see ``Store.save_take``); "" when saved by ``add_case``


@dataclass(frozen=True)
class SavedTake:
    """What ``Store.save_take`` did: the case as stored, and whether it was added (False: an earlier save of the
    same take was updated)."""

    case: Case
    added: bool
    kept: tuple[str, ...] = ()  # fields (``label KEY``) the case keeps as someone else set them (``kept_from_take``)


def clean_labels(labels: Mapping[str, Any] | None) -> dict[str, str]:
    """Labels are free keys with string values; empty values are dropped so filters stay meaningful."""
    out: dict[str, str] = {}
    for key, value in (labels or {}).items():
        key, text = str(key).strip(), "" if value is None else str(value).strip()
        if key and text:
            out[key] = text
    return out


def is_reserved(key: str) -> bool:
    """Whether a label named ``key`` would collide with a column of an export (``RESERVED_LABELS``)."""
    return str(key).strip().lower() in RESERVED_LABELS


def reserved_label_error(key: str) -> str:
    return (
        f"label {str(key).strip()!r}: every export of the cases has a column of that name ({', '.join(RESERVED_LABELS)};"
        f" in any case), which the label would replace; name it differently, e.g. {str(key).strip()}_label"
    )


def check_label_names(labels: Mapping[str, Any] | None, stored: Mapping[str, str] | None = None) -> None:
    """Refuse a label that is added or changed (against ``stored``) under a reserved name (see ``RESERVED_LABELS``);
    one already stored so, unchanged, passes, so that a case saved before the rule can still be edited."""
    for key, value in clean_labels(labels).items():
        if is_reserved(key) and (stored is None or stored.get(key) != value):
            raise StoreError(reserved_label_error(key))


def in_stored_order(stored: Mapping[str, str], edited: Mapping[str, Any]) -> dict[str, str]:
    """``edited`` (cleaned) with the keys it shares with ``stored`` in their stored order, new keys after them.

    Review builds the label set from its boxes (other labels first, then accent, noise, device), so saving a case,
    even unchanged, moved its labels about in the table; the order a case was saved with is the one it keeps.
    """
    labels = clean_labels(edited)
    return {**{k: labels[k] for k in stored if k in labels}, **labels}


def row_values(case: Case) -> tuple:
    """The values ``INSERT_SQL`` takes for ``case``."""
    return (
        case.id,
        case.kind,
        Path(case.audio_path).name,
        case.transcript,
        case.reference,
        case.reason,
        json.dumps(case.labels, ensure_ascii=False),
        case.notes,
        case.model,
        case.backend,
        case.status,
        case.created_at,
        case.duration,
        case.origin or None,  # NULL: not a take's, so the UNIQUE (origin, kind) index leaves it alone
    )


def from_row(row: sqlite3.Row, audio_dir: Path) -> Case:
    return Case(
        id=row["id"],
        kind=row["kind"],
        audio_path=str(audio_dir / row["audio_file"]),
        transcript=row["transcript"],
        reference=row["reference"],
        reason=row["reason"],
        labels=json.loads(row["labels"]),
        notes=row["notes"],
        model=row["model"],
        backend=row["backend"],
        status=row["status"],
        created_at=row["created_at"],
        duration=float(row["duration"]),
        origin=row["origin"] or "",
    )


def column_values(changes: Mapping[str, Any]) -> dict[str, str]:
    """The columns an edit writes (labels as JSON), by column name: names come from ``EDITABLE`` only, never from
    a user, so they may be put into the SQL."""
    wrong = set(changes) - set(EDITABLE)
    if wrong:
        raise ValueError(f"not editable: {', '.join(sorted(wrong))}")
    return {
        column: json.dumps(clean_labels(value), ensure_ascii=False) if column == "labels" else str(value)
        for column, value in changes.items()
    }


def merge_edit(opened: Case, stored: Case, edits: Mapping[str, Any]) -> dict[str, Any]:
    """What an edit made on ``opened`` (the case as the panel showed it) writes over ``stored`` (the row now).

    Review sent every field of its panel, so of two tabs open on one case the later save put back what the earlier
    one had changed (a status confirmed in one tab went back to new when the other saved a label). Only what this
    edit changed is written now, label by label; a field (or label) changed both here and elsewhere, to different
    values, raises ``CaseConflict`` and nothing is written.
    """
    out, clashes = _merged(opened, stored, edits)
    if clashes:
        raise CaseConflict(stored.id, clashes)
    return out


def merge_take(sent_before: Mapping[str, Any] | None, stored: Case, sent: Mapping[str, Any]) -> dict[str, Any]:
    """What a take saved again (``sent``: reference, notes, labels from the Transcribe or Live page) writes over its
    case ``stored``, given what its last save sent (``sent_before``; None for a row saved before it was kept).

    Saving the take again wrote every field the page had, so a reference a reviewer had corrected on Review went back
    to the tester's text and the reviewer's labels went with it. Now only what the tester changed since the last save
    is written, label by label, and a field someone changed since (on Review) stays as they left it, even where the
    tester changed it too: the caller tells the tester which (see ``kept_from_take``). Unknown ``sent_before``: all
    that is stored stays.
    """
    if sent_before is None:
        return {}
    before = {k: (clean_labels(v) if k == "labels" else v) for k, v in sent_before.items() if k in sent}
    opened = replace(stored, **before)
    out, clashes = _merged(opened, stored, {k: v for k, v in sent.items() if k in before})
    labels = out.get("labels")
    for name in clashes:  # changed both here and elsewhere: what is stored stays
        if name.startswith("label ") and labels is not None:
            key = name.removeprefix("label ")
            labels = {**labels, key: stored.labels[key]} if key in stored.labels else _without(labels, key)
        else:
            out.pop(name, None)
    if labels is not None:
        out["labels"] = labels
    if out.get("labels") == stored.labels:
        out.pop("labels")
    return out


def kept_from_take(saved: Case, sent: Mapping[str, Any], form_labels: Iterable[str] = ()) -> list[str]:
    """The fields (and labels of the tester's form, ``form_labels``) where the case as saved differs from what the
    take sent: what someone else set that the save kept, named as ``CaseConflict`` names them."""
    kept = [column for column in ("reference", "notes") if column in sent and getattr(saved, column) != sent[column]]
    mine = clean_labels(sent.get("labels"))
    keys = dict.fromkeys(str(key).strip() for key in form_labels)
    kept += [f"label {key}" for key in keys if key and saved.labels.get(key, "") != mine.get(key, "")]
    return kept


def _without(labels: Mapping[str, str], key: str) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != key}


def _merged(opened: Case, stored: Case, edits: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``merge_edit``'s writes, and the fields (``label KEY`` for a label) changed both in ``edits`` and in
    ``stored`` since ``opened``, to different values."""
    out: dict[str, Any] = {}
    clashes: list[str] = []
    for column, mine in edits.items():
        if column == "labels":
            continue
        was, now = getattr(opened, column), getattr(stored, column)
        if mine != was:
            out[column] = mine
            if now not in (was, mine):
                clashes.append(column)
    if edits.get("labels") is not None:
        mine, was, now = clean_labels(edits["labels"]), opened.labels, stored.labels
        labels = dict(now)
        for key in [*was, *(k for k in mine if k not in was)]:
            if mine.get(key) == was.get(key):
                continue  # not changed here: what is stored stays
            if now.get(key) not in (was.get(key), mine.get(key)):
                clashes.append(f"label {key}")
            if key in mine:
                labels[key] = mine[key]
            else:
                labels.pop(key, None)
        if labels != now:
            out["labels"] = labels
    return out, clashes
