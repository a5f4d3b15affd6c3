"""Prompted recording sessions in the store: scripts, sessions (one speaker profile each) and their takes.

Composed into :class:`evaluation.store.Store` as ``store.recordings``; it writes through the store's
connections, so it shares the store's WAL mode, busy timeout and parameterized SQL.

Why it looks like this:
- A session's place in its script (``position``) is in the database, not in the browser, so a session
  resumes at the right prompt after a reload or a server restart, from any browser.
- Accepting a take is one transaction: the test case row, the take row and the move to the next prompt land
  together, after the audio file is in place. The move is conditional on the position the tester saw, so two
  tabs on one session cannot both accept prompt 12 (the second is told, and its audio file removed), and a
  crash leaves either the whole take or none of it.
- Re-recorded and skipped takes are kept as rows (without audio): the session's summary counts them.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from evaluation.prompts import Prompt, script_name
from evaluation.runstore import StoreError, utc_now
from evaluation.scoring import rate

SCHEMA = """
CREATE TABLE IF NOT EXISTS scripts (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, source TEXT NOT NULL, prompts TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS record_sessions (
    id TEXT PRIMARY KEY, script_id TEXT NOT NULL REFERENCES scripts (id), profile TEXT NOT NULL,
    position INTEGER NOT NULL, model TEXT NOT NULL, backend TEXT NOT NULL, created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS takes (
    id TEXT PRIMARY KEY, session_id TEXT NOT NULL REFERENCES record_sessions (id) ON DELETE CASCADE,
    prompt_index INTEGER NOT NULL, prompt_id TEXT NOT NULL, prompt_type TEXT NOT NULL, action TEXT NOT NULL,
    case_id TEXT, transcript TEXT NOT NULL, errors INTEGER NOT NULL, ref_words INTEGER NOT NULL,
    checks TEXT NOT NULL, created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS takes_session ON takes (session_id, prompt_index);
"""
ACTIONS = ("accepted", "rerecorded", "skipped")
PROFILE_FIELDS = ("speaker", "accent", "gender", "age_band", "device", "environment")
ALIAS = re.compile(r"^[\w][\w .@+-]{0,63}$")
MAX_LABEL_CHARS = 100  # accent, gender, age band, device, environment: labels on every take, Validate's group names


class SessionNotFound(KeyError):
    """No record session (or script) with this id."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "session not found"


class StaleTake(StoreError):
    """The take was for a prompt the session has moved past (another tab, or a double click)."""


@dataclass(frozen=True)
class Script:
    id: str
    name: str  # what the tester called it, or the built-in script's name
    source: str  # "builtin", "pasted" or "upload"
    prompts: tuple[Prompt, ...]
    created_at: str


@dataclass(frozen=True)
class SpeakerProfile:
    """Who is speaking, entered once per session and stored with every take as labels."""

    speaker: str  # an alias ("tester-07"): no real name is needed
    accent: str  # accent or first language, as the team names it ("Scottish", "L1 Hindi")
    gender: str = ""
    age_band: str = ""  # "18-29", "30-44", ...
    device: str = ""  # "laptop microphone", "headset", ...
    environment: str = ""  # "quiet room", "office", ...

    def validate(self) -> SpeakerProfile:
        speaker = self.speaker.strip()
        if not ALIAS.match(speaker):  # a blank or 65-character id was told to use letters and digits
            why = "required" if not speaker else "at most 64 characters" if len(speaker) > 64 else None
            why = why or "give an alias that starts with a letter or digit, then letters, digits, spaces or . @ + - _"
            raise StoreError(f"speaker id {self.speaker[:70]!r}: {why} (e.g. tester-07)")
        if not self.accent.strip():
            raise StoreError("accent or first language: say which (it is what Validate groups by)")
        for key in PROFILE_FIELDS[1:]:  # 100,000 characters of accent were stored, and labelled every take
            if len(value := str(getattr(self, key) or "").strip()) > MAX_LABEL_CHARS:
                raise StoreError(f"{key.replace('_', ' ')}: {len(value)} characters; at most {MAX_LABEL_CHARS}")
        return SpeakerProfile(**{k: str(v or "").strip() for k, v in asdict(self).items()})

    def labels(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}


@dataclass(frozen=True)
class RecordSession:
    id: str
    script: Script
    profile: SpeakerProfile
    position: int  # index of the next prompt to record; len(prompts) when done
    model: str
    backend: str
    created_at: str
    updated_at: str

    @property
    def total(self) -> int:
        return len(self.script.prompts)

    @property
    def done(self) -> bool:
        return self.position >= self.total

    @property
    def prompt(self) -> Prompt | None:
        return None if self.done else self.script.prompts[self.position]


@dataclass(frozen=True)
class Take:
    id: str
    session_id: str
    prompt_index: int
    prompt_id: str
    prompt_type: str
    action: str  # one of ACTIONS
    case_id: str | None  # the test case an accepted take became
    transcript: str
    errors: int  # word errors against the prompt (normalized), as scored when it was taken
    ref_words: int
    checks: Mapping[str, Any]  # the take checks (evaluation.takes.TakeReport.to_json)
    created_at: str


@dataclass(frozen=True)
class TypeSummary:
    prompt_type: str
    accepted: int
    rerecorded: int
    skipped: int
    errors: int
    ref_words: int

    @property
    def wer(self) -> float | None:
        """Pooled over the accepted takes (errors / reference words), None before the first one."""
        return rate(self.errors, self.ref_words) if self.ref_words else None


class Recordings:
    """Scripts, sessions and takes; ``connect`` and the case writers come from the store that composes it."""

    def __init__(self, connect: Callable[..., contextlib.AbstractContextManager], cases: Any) -> None:
        self._connect = connect
        self._cases = cases  # the store: stage_case(...) writes audio, insert_case(conn, case) writes the row

    # -- scripts -----------------------------------------------------------------------------------------
    def save_script(self, name: str, prompts: Sequence[Prompt], source: str = "pasted") -> Script:
        name = script_name(name, len(prompts))
        if not prompts:
            raise StoreError(f"script {name!r} has no prompts")
        data = json.dumps([asdict(p) for p in prompts], ensure_ascii=False)
        script = Script(uuid.uuid4().hex[:12], name, source, tuple(prompts), utc_now())
        with self._connect(write=True) as conn:
            conn.execute(
                "INSERT INTO scripts (id, name, source, prompts, created_at) VALUES (?, ?, ?, ?, ?)",
                (script.id, script.name, source, data, script.created_at),
            )
        return script

    def builtin_script(self, name: str, prompts: Sequence[Prompt]) -> Script:
        """The built-in script ``name``, saved once under that name and reused while its prompts are the same.

        The Record page and the API both start sessions from it, so the page's script list offers it once
        ("saved: ivr-commands"), not once per session ("script of 12 prompts", as every API session saved it).
        """
        for script in self.list_scripts():
            if script.source == "builtin" and script.name == name and script.prompts == tuple(prompts):
                return script
        return self.save_script(name, prompts, "builtin")

    def list_scripts(self) -> list[Script]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM scripts ORDER BY created_at DESC, rowid DESC").fetchall()
        return [_script(r) for r in rows]

    def get_script(self, script_id: str) -> Script:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM scripts WHERE id = ?", (script_id,)).fetchone()
        if row is None:
            raise SessionNotFound(f"no script with id {script_id!r}")
        return _script(row)

    # -- sessions ----------------------------------------------------------------------------------------
    def start_session(
        self, script_id: str, profile: SpeakerProfile, model: str = "", backend: str = ""
    ) -> RecordSession:
        script = self.get_script(script_id)
        profile = profile.validate()
        now = utc_now()
        session_id = uuid.uuid4().hex[:12]
        with self._connect(write=True) as conn:
            conn.execute(
                "INSERT INTO record_sessions (id, script_id, profile, position, model, backend, created_at, updated_at)"
                " VALUES (?, ?, ?, 0, ?, ?, ?, ?)",
                (session_id, script.id, json.dumps(asdict(profile)), model, backend, now, now),
            )
        return RecordSession(session_id, script, profile, 0, model, backend, now, now)

    def get_session(self, session_id: str) -> RecordSession:
        with self._connect() as conn:
            row = conn.execute(_SESSION_SQL + " WHERE s.id = ?", (session_id,)).fetchone()
        if row is None:
            raise SessionNotFound(f"no record session with id {session_id!r}")
        return _session(row)

    def list_sessions(self, open_only: bool = False) -> list[RecordSession]:
        """Sessions, most recently active first; ``open_only`` leaves out those at the end of their script."""
        with self._connect() as conn:
            rows = conn.execute(_SESSION_SQL + " ORDER BY s.updated_at DESC, s.rowid DESC").fetchall()
        sessions = [_session(r) for r in rows]
        return [s for s in sessions if not s.done] if open_only else sessions

    # -- takes -------------------------------------------------------------------------------------------
    def accept(
        self,
        session_id: str,
        index: int,
        audio: Any,
        *,
        transcript: str,
        errors: int,
        ref_words: int,
        checks: Mapping[str, Any],
        model: str = "",
        backend: str = "",
    ) -> tuple[Take, Any]:  # the take and the store's new Case (not imported: the store imports this module)
        """Save prompt ``index``'s take as a test case (reference = prompt, labels = profile) and move on."""
        session = self.get_session(session_id)
        prompt = self._current(session, index)
        labels = {
            **session.profile.labels(),
            "session": session.id,
            "script": session.script.name,
            "prompt_id": prompt.id,
            "prompt_type": prompt.type,
        }
        case = self._cases.stage_case(
            "test_case",
            audio,
            transcript=transcript,
            reference=prompt.text,
            labels=labels,
            model=model,
            backend=backend,
        )
        take = _new_take(session, index, "accepted", case.id, transcript, errors, ref_words, checks)
        try:
            with self._advance(session, index) as conn:
                self._cases.insert_case(conn, case)
                _insert_take(conn, take)
        except BaseException:
            self._cases.discard_staged(case)
            raise
        return take, case

    def rerecord(self, session_id: str, index: int, *, transcript: str, errors: int, ref_words: int, checks) -> Take:
        """Note a take the tester threw away; the session stays on the same prompt."""
        session = self.get_session(session_id)
        self._current(session, index)
        take = _new_take(session, index, "rerecorded", None, transcript, errors, ref_words, checks)
        with self._connect(write=True) as conn:
            _insert_take(conn, take)
        return take

    def skip(self, session_id: str, index: int) -> Take:
        session = self.get_session(session_id)
        self._current(session, index)
        take = _new_take(session, index, "skipped", None, "", 0, 0, {})
        with self._advance(session, index) as conn:
            _insert_take(conn, take)
        return take

    def takes(self, session_id: str) -> list[Take]:
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM takes WHERE session_id = ? ORDER BY prompt_index, created_at, rowid", (session_id,)
            ).fetchall()
        return [_take(r) for r in rows]

    def summary(self, session_id: str) -> list[TypeSummary]:
        """Per prompt type, in the script's order: accepted, re-recorded and skipped takes, pooled WER."""
        session = self.get_session(session_id)
        order = list(dict.fromkeys(p.type for p in session.script.prompts))
        counts: dict[str, dict[str, int]] = {t: dict.fromkeys((*ACTIONS, "errors", "ref_words"), 0) for t in order}
        for take in self.takes(session_id):
            c = counts.setdefault(take.prompt_type, dict.fromkeys((*ACTIONS, "errors", "ref_words"), 0))
            c[take.action] += 1
            if take.action == "accepted":
                c["errors"] += take.errors
                c["ref_words"] += take.ref_words
        return [
            TypeSummary(t, c["accepted"], c["rerecorded"], c["skipped"], c["errors"], c["ref_words"])
            for t, c in counts.items()
        ]

    def _current(self, session: RecordSession, index: int) -> Prompt:
        if index != session.position:
            raise StaleTake(_stale_message(session, index))
        return session.script.prompts[index]

    @contextlib.contextmanager
    def _advance(self, session: RecordSession, index: int) -> Iterator[sqlite3.Connection]:
        """A write transaction that moves the session from ``index`` to the next prompt, or fails as stale."""
        with self._connect(write=True) as conn:
            cur = conn.execute(
                "UPDATE record_sessions SET position = ?, updated_at = ? WHERE id = ? AND position = ?",
                (index + 1, utc_now(), session.id, index),
            )
            if cur.rowcount == 0:
                raise StaleTake(_stale_message(self.get_session(session.id), index))
            yield conn


def _stale_message(session: RecordSession, index: int) -> str:
    where = "is finished" if session.done else f"is at prompt {session.position + 1} / {session.total}"
    return f"prompt {index + 1} of this session was already taken (in another tab?); the session {where}"


_SESSION_SQL = (
    "SELECT s.*, c.name AS script_name, c.source AS script_source, c.prompts AS script_prompts,"
    " c.created_at AS script_created FROM record_sessions s JOIN scripts c ON c.id = s.script_id"
)


def _prompts(data: str) -> tuple[Prompt, ...]:
    return tuple(Prompt(**p) for p in json.loads(data))


def _script(row: sqlite3.Row) -> Script:
    return Script(row["id"], row["name"], row["source"], _prompts(row["prompts"]), row["created_at"])


def _session(row: sqlite3.Row) -> RecordSession:
    script = Script(
        row["script_id"],
        row["script_name"],
        row["script_source"],
        _prompts(row["script_prompts"]),
        row["script_created"],
    )
    profile = SpeakerProfile(**{k: v for k, v in json.loads(row["profile"]).items() if k in PROFILE_FIELDS})
    return RecordSession(
        row["id"],
        script,
        profile,
        int(row["position"]),
        row["model"],
        row["backend"],
        row["created_at"],
        row["updated_at"],
    )


def _new_take(session: RecordSession, index: int, action: str, case_id, transcript, errors, ref_words, checks) -> Take:
    prompt = session.script.prompts[index]
    return Take(
        uuid.uuid4().hex[:12],
        session.id,
        index,
        prompt.id,
        prompt.type,
        action,
        case_id,
        str(transcript or ""),
        int(errors),
        int(ref_words),
        dict(checks or {}),
        utc_now(),
    )


def _insert_take(conn: sqlite3.Connection, take: Take) -> None:
    values = {**asdict(take), "checks": json.dumps(take.checks, ensure_ascii=False)}
    columns, marks = ", ".join(_TAKE_COLUMNS), ", ".join("?" * len(_TAKE_COLUMNS))
    conn.execute(f"INSERT INTO takes ({columns}) VALUES ({marks})", [values[c] for c in _TAKE_COLUMNS])


def _take(row: sqlite3.Row) -> Take:
    return Take(**{c: row[c] for c in _TAKE_COLUMNS if c != "checks"}, checks=json.loads(row["checks"]))


_TAKE_COLUMNS = tuple(f.name for f in fields(Take))  # the takes table's columns are Take's fields, in order
