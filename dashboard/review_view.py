"""What the Review page lists: the filters, the table of cases, and the line under an empty one.

Pure (store values in, strings and frames out), so the page module keeps only its components and events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from evaluation.store import STATUSES, Case, Store, clean_labels

ALL = "all"
KIND_CHOICES = [("all", ALL), ("flags", "flag"), ("test cases", "test_case")]
STATUS_CHOICES = [("won't fix" if s == "wont_fix" else s, s) for s in STATUSES]  # new → confirmed → fixed / won't fix
COLUMNS = ["id", "kind", "status", "created", "model", "seconds", "labels", "reason", "transcript", "reference"]
FIXED_LABELS = ("accent", "noise", "device")


@dataclass(frozen=True)
class Filters:
    kind: str
    status: str
    model: str
    label: str  # "key=value" or ALL
    session: str = ALL  # a Record session's id: its accepted takes only

    def query(self) -> dict:
        key, _, value = self.label.partition("=")
        return {
            "kind": None if self.kind == ALL else self.kind,
            "status": None if self.status == ALL else self.status,
            "model": None if self.model == ALL else self.model,
            "label": (key, value) if self.label != ALL and value else None,
        }

    def cases(self, store: Store) -> list[Case]:
        cases = store.list_cases(**self.query())
        if self.session and self.session != ALL:
            cases = [c for c in cases if c.labels.get("session") == self.session]
        return cases


EMPTY_HINT = (
    "*Nothing to review yet: flag a transcript on **Transcribe**, or save a test case on **Live**, **Transcribe** "
    "or **Record**; it is listed here.*"
)


NO_MATCH = "*No case matches these filters: set one back to **all** to see more.*"


def empty_hint(cases: list[Case], shown: pd.DataFrame | None = None) -> str:
    """What a tester reads under an empty table (a table of headers alone said nothing of how to fill it):
    how cases come when there are none, and that the filters hide them when ``shown`` is empty."""
    if not cases:
        return EMPTY_HINT
    return NO_MATCH if shown is not None and shown.empty else ""


def cases_table(store: Store, filters: Filters) -> pd.DataFrame:
    rows = [row(c) for c in filters.cases(store)]
    return pd.DataFrame(rows, columns=COLUMNS)


def row(case: Case) -> list:
    created = datetime.fromisoformat(case.created_at).astimezone().strftime("%Y-%m-%d %H:%M")
    labels = ", ".join(f"{k}={v}" for k, v in case.labels.items())
    kind = "flag" if case.kind == "flag" else "test case"
    status = dict((v, k) for k, v in STATUS_CHOICES).get(case.status, case.status)
    return [
        case.id,
        kind,
        status,
        created,
        case.model,
        round(case.duration, 1),
        labels,
        case.reason,
        case.transcript,
        case.reference,
    ]


def extra_labels_text(case: Case) -> str:
    """The labels other than accent, noise and device, one ``key=value`` a line (the panel's "Other labels")."""
    return "\n".join(f"{k}={v}" for k, v in case.labels.items() if k not in FIXED_LABELS)


def boxes_after_save(saved: Case, sent: list, extra: dict[str, str]) -> list[str | None]:
    """The panel's edit boxes (status, reference, accent, noise, device, other labels, notes) after a save: None
    where a box shows what is stored, else the stored value: another tab's change the save kept, which left shown
    as it was opened, the next save would have put back. ``sent`` is what the boxes held, ``extra`` the other
    labels parsed from theirs."""
    labels = saved.labels
    stored = [saved.status, saved.reference, *(labels.get(k, "") for k in FIXED_LABELS), None, saved.notes]
    out: list[str | None] = [None if now == (box or "") else now for now, box in zip(stored, sent, strict=True)]
    others = {k: v for k, v in labels.items() if k not in FIXED_LABELS}
    out[5] = None if others == clean_labels(extra) else extra_labels_text(saved)
    return out
