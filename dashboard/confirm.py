"""Server-side confirmation of destructive actions: a single-use token issued by the confirmation step.

The page's "Yes, delete" used to be an event like any other: a client that called it directly deleted a case
without ever being asked. Now the step that asks ("Delete" shows the question) issues a token kept in the
session's server-side ``gr.State``, which no client can write; the destructive event runs only when the token
there names the same action and target and is fresh, and it is used up by that run.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

CONFIRM_TTL_S = 300.0  # a question left open longer than five minutes must be asked again


@dataclass(frozen=True)
class Confirmation:
    action: str  # e.g. "delete-case"
    target: str  # what the action applies to, e.g. the case id
    token: str  # random, so two questions about the same target are distinct
    issued_at: float  # time.monotonic() when the question was shown


def issue(action: str, target: str, now: float | None = None) -> Confirmation:
    return Confirmation(action, target, secrets.token_urlsafe(16), time.monotonic() if now is None else now)


def accepts(confirmation: object, action: str, target: str | None, now: float | None = None) -> bool:
    """True only for a confirmation issued for this action and target less than ``CONFIRM_TTL_S`` ago."""
    if not isinstance(confirmation, Confirmation) or not target:
        return False
    age = (time.monotonic() if now is None else now) - confirmation.issued_at
    return confirmation.action == action and confirmation.target == target and 0 <= age <= CONFIRM_TTL_S
