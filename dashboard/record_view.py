"""What the Record page shows: the prompt, the take's WER and alignment, its checks, the session summary.

Pure renderers (strings and frames from store and scoring values), so the page module keeps only the events.
"""

from __future__ import annotations

import pandas as pd

from asr.streaming import StreamUpdate
from dashboard.pages.live import render_view
from dashboard.shared import esc, render_alignment
from evaluation.recordstore import RecordSession, TypeSummary
from evaluation.scoring import rate
from evaluation.takes import AssessedTake, TakeReport

SUMMARY_COLUMNS = ["prompt type", "accepted", "re-recorded", "skipped", "words", "WER"]


def render_prompt(session: RecordSession | None) -> str:
    if session is None:
        return (
            "<div class='asrqa-prompt asrqa-muted'>Choose a script and enter the speaker above, then press "
            "<b>Start session</b> (or resume one).</div>"
        )
    who = (  # each part named: "harvard · tester-07 · en-GB · harvard" left the tester to guess which was which
        f"speaker {esc(session.profile.speaker)} ({esc(session.profile.accent)}) · script {esc(session.script.name)}"
    )
    if session.done:
        return (
            f"<div class='asrqa-prompt'><div class='asrqa-prompt-count'>{session.total} / {session.total} · {who}</div>"
            "<div class='asrqa-prompt-text'>Session finished: every prompt is recorded or skipped.</div></div>"
        )
    prompt = session.prompt
    return (
        f"<div class='asrqa-prompt'><div class='asrqa-prompt-count'><span id='record-position'>"
        f"{session.position + 1} / {session.total}</span> · {esc(prompt.type)} prompt · {who}</div>"
        f"<div class='asrqa-prompt-text'>{esc(prompt.text)}</div></div>"
    )


def render_live(update: StreamUpdate) -> str:
    """The live transcript as on Live, and how much audio the take holds so far."""
    state = "finished" if update.finished else "heard"
    return (
        f"{render_view(update)}<span class='asrqa-readout' id='record-heard' data-seconds='{update.audio_seconds:.2f}'>"
        f"{state} {update.audio_seconds:.1f} s · lag {update.lag_seconds:.1f} s</span>"
    )


def render_wer(take: AssessedTake) -> str:
    """The take's WER against its prompt (full-context transcript, as Validate scores it) and the alignment."""
    figure = "n/a" if take.wer is None else f"{take.wer:.1%}"
    errors = f"{take.errors} error{'s' if take.errors != 1 else ''} / {take.ref_words} words"
    return (
        f"<div class='asrqa-take-wer'><b>WER {figure}</b> <span class='asrqa-muted'>({errors} against the "
        f"prompt)</span></div><div class='asrqa-muted'>Full-context transcript: {esc(take.transcript)}</div>"
        f"{render_alignment(take.alignment)}"
    )


def render_checks(report: TakeReport) -> str:
    items = "".join(
        f"<li class='{'asrqa-check-ok' if c.ok else 'asrqa-check-bad'}' data-check='{c.name}'>"
        f"{'✓' if c.ok else '✗'} {esc(c.message)}</li>"
        for c in report.checks
    )
    verdict = "Checks passed." if report.ok else "Consider re-recording:"
    return f"<div class='asrqa-checks'><b>{verdict}</b><ul>{items}</ul></div>"


def summary_frame(rows: list[TypeSummary]) -> pd.DataFrame:
    data = [
        [r.prompt_type, r.accepted, r.rerecorded, r.skipped, r.ref_words, "" if r.wer is None else f"{r.wer:.1%}"]
        for r in rows
    ]
    accepted = [r for r in rows if r.ref_words]
    if len(accepted) > 1:
        words = sum(r.ref_words for r in accepted)
        total = rate(sum(r.errors for r in accepted), words)
        data.append(
            [
                "all",
                sum(r.accepted for r in rows),
                sum(r.rerecorded for r in rows),
                sum(r.skipped for r in rows),
                words,
                f"{total:.1%}",
            ]
        )
    return pd.DataFrame(data, columns=SUMMARY_COLUMNS)


def restored_note(session: RecordSession) -> str:
    """What a reload says of the session it came back to. A finished one said "Resumed ... at prompt 3 / 3" under
    "Session finished", as if a prompt were still to record."""
    if session.done:
        return f"Session `{session.id}` is finished; start a new one under **Script and speaker**."
    return f"Resumed session `{session.id}` at prompt {session.position + 1} / {session.total}."


def session_choice(session: RecordSession) -> tuple[str, str]:
    """(label, value) of a session in the resume list."""
    label = (
        f"{session.profile.speaker} · {session.profile.accent} · {session.script.name} · "
        f"{min(session.position + 1, session.total)} / {session.total} · {session.updated_at[:16].replace('T', ' ')}"
    )
    return label, session.id
