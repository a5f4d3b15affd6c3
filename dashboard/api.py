"""The scripting API: token-protected REST routes under ``/api/`` on the dashboard's own server.

The Gradio event API is closed (``dashboard.guard``); this is the one way for a script to drive the
dashboard, and it covers the Record flow: save a script, start a session with a speaker profile, post a
take's audio for the current prompt (checked, or accepted as a test case), skip, read the takes and the
session summary. It goes through the same modules as the Record page (``evaluation.prompts``,
``evaluation.takes``, the store's ``recordings``), so page and API accept, refuse and save the same things.

Access: every request carries ``Authorization: Bearer TOKEN``, the token in ``DATA/api-token``, created with
mode 0600 at the first start (read it on the server; it never leaves it otherwise). When the dashboard runs
with ``--auth``, a request must also carry the login cookie that ``POST /login`` sets, so the token alone
does not bypass the login. Errors are FastAPI's JSON ``{"detail": "one line"}`` with 400, 401, 404, 409 or 413.
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import reprlib
import secrets
import stat
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.routing import BaseRoute

from asr.audio import AudioError
from asr.backends import DEFAULT_BACKEND, BackendError, get_backend
from asr.models import UnknownModelError, default_model
from asr.results import BACKENDS
from dashboard.config import DashboardConfig
from dashboard.shared import get_store
from evaluation.prompts import Prompt, ScriptError, builtin_script, from_records, parse_pasted
from evaluation.recordstore import RecordSession, SessionNotFound, SpeakerProfile, StaleTake
from evaluation.runstore import StoreError
from evaluation.takes import assess_take

logger = logging.getLogger(__name__)

TOKEN_FILE = "api-token"
PREFIX = "/api"


def ensure_token(data_dir: Path) -> str:
    """The API token in ``data_dir/api-token``: created (0600, never readable by others) on the first start."""
    path = Path(data_dir) / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _existing_token(path)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    logger.info("API token created in %s", path)
    return token


def _existing_token(path: Path) -> str:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        os.chmod(path, 0o600)
        logger.warning("%s was readable by others (mode %o); it is 0600 now", path, mode)
    token = path.read_text(encoding="utf-8").strip()
    if len(token) < 32:
        raise ValueError(f"{path}: the API token is shorter than 32 characters; delete the file to make a new one")
    return token


def api_routes(config: DashboardConfig, token: str) -> list[BaseRoute]:
    """The ``/api/`` routes, to be given to the server's FastAPI app at creation (``app_kwargs['routes']``)."""
    router = APIRouter(prefix=PREFIX, dependencies=[Depends(_authorizer(token))])
    handlers = _Handlers(config)
    router.add_api_route("/scripts", handlers.list_scripts, methods=["GET"])
    router.add_api_route("/scripts", handlers.save_script, methods=["POST"], status_code=201)
    router.add_api_route("/sessions", handlers.list_sessions, methods=["GET"])
    router.add_api_route("/sessions", handlers.start_session, methods=["POST"], status_code=201)
    router.add_api_route("/sessions/{session_id}", handlers.get_session, methods=["GET"])
    router.add_api_route("/sessions/{session_id}/takes", handlers.post_take, methods=["POST"])
    router.add_api_route("/sessions/{session_id}/takes", handlers.list_takes, methods=["GET"])
    router.add_api_route("/sessions/{session_id}/skip", handlers.skip, methods=["POST"])
    router.add_api_route("/sessions/{session_id}/summary", handlers.summary, methods=["GET"])
    return list(router.routes)


def _authorizer(token: str):
    def authorize(request: Request) -> None:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
            raise HTTPException(401, "send Authorization: Bearer TOKEN (the token is in DATA/api-token)")
        app = request.app
        if getattr(app, "auth", None) is not None:  # --auth: the login is needed as well
            cookie_id = getattr(app, "cookie_id", "")
            cookie = request.cookies.get(f"access-token-{cookie_id}") or request.cookies.get(
                f"access-token-unsecure-{cookie_id}"
            )
            if not cookie or app.tokens.get(cookie) is None:
                raise HTTPException(401, "this dashboard runs with --auth: POST /login first and send its cookie")

    return authorize


def _error(status: int, message: str) -> HTTPException:
    return HTTPException(status, message)


class _Handlers:
    """Route bodies; each turns request values into store calls and the result into JSON."""

    def __init__(self, config: DashboardConfig) -> None:
        self.config = config
        self.max_bytes = int(config.max_upload_mb * 1024 * 1024)

    @property
    def store(self):
        return get_store(self.config.data_dir)

    def list_scripts(self) -> dict:
        scripts = self.store.recordings.list_scripts()
        return {"scripts": [_script_json(s) for s in scripts]}

    async def save_script(self, request: Request) -> JSONResponse:
        body = await self._json(request)
        try:
            script = self._script(body)
        except (ScriptError, StoreError) as exc:  # a name over MAX_NAME_CHARS
            raise _error(400, str(exc)) from exc
        return JSONResponse(_script_json(script), status_code=201)

    def _script(self, body: dict):
        """The script a body names: a built-in one stored once under its name and reused, as the Record page does
        (each API session saved another copy, "script of 12 prompts"), else a new one saved under ``name``."""
        prompts = _prompts(body)
        if body.get("builtin"):
            return self.store.recordings.builtin_script(str(body["builtin"]), prompts)
        return self.store.recordings.save_script(str(body.get("name") or ""), prompts, "pasted")

    def list_sessions(self, open: str = "") -> dict:  # noqa: A002 - the query parameter's name
        open_only = _flag("open", open)
        return {"sessions": [_session_json(s) for s in self.store.recordings.list_sessions(open_only=open_only)]}

    async def start_session(self, request: Request) -> JSONResponse:
        body = await self._json(request)
        model, backend = await run_in_threadpool(_model_and_backend, body)
        fields = {
            k: str(body.get(k) or "") for k in ("speaker", "accent", "gender", "age_band", "device", "environment")
        }
        try:
            profile = SpeakerProfile(**fields).validate()  # before the script is saved: a refusal saves nothing
            script_id = str(body.get("script_id") or "") or self._script(body).id
            session = self.store.recordings.start_session(script_id, profile, model=model, backend=backend)
        except (ScriptError, StoreError) as exc:
            raise _error(400, str(exc)) from exc
        except SessionNotFound as exc:
            raise _error(404, str(exc)) from exc
        return JSONResponse(_session_json(session), status_code=201)

    def get_session(self, session_id: str) -> dict:
        return _session_json(self._session(session_id))

    async def post_take(self, session_id: str, request: Request, action: str = "check", index: str | None = None):
        """The body is the take's audio (any format); ``action=check`` scores it, ``accept`` also saves it."""
        if action not in ("check", "accept"):
            raise _error(400, f"action must be check or accept, not {action!r}")
        place = _index(index)
        audio = await self._capped_body(request)
        if not audio:
            raise _error(400, "the request body must be the take's audio (wav, flac, mp3, ogg, webm, m4a)")
        return await run_in_threadpool(self._take, session_id, audio, action, place)

    async def _capped_body(self, request: Request, what: str = "the audio") -> bytes:
        """The body, refused (413) from its declared length before it is read, or, sent without one (chunked), as
        soon as it passes the cap: a chunked body was read whole whatever its size (a JSON one in any case)."""
        length = int(request.headers.get("content-length") or 0)
        if length > self.max_bytes:
            raise _error(413, f"{what} is {mb(length)}; at most {mb(self.max_bytes)} (--max-upload-mb)")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_bytes:
                raise _error(413, f"{what} is over {mb(self.max_bytes)} (--max-upload-mb)")
        return bytes(body)

    async def _json(self, request: Request) -> dict:
        try:
            body = json.loads(await self._capped_body(request, "the request body"))
        except ValueError as exc:
            raise _error(400, "the request body must be a JSON object") from exc
        if not isinstance(body, dict):
            raise _error(400, "the request body must be a JSON object")
        return body

    def _take(self, session_id: str, data: bytes, action: str, index: int | None) -> dict:
        from asr.audio import load_audio

        session = self._session(session_id)
        position = session.position if index is None else index
        if session.done or position != session.position:
            raise _error(409, _stale(session, position))
        try:
            audio = load_audio(data)
            backend = get_backend(session.model or default_model(), session.backend or "faster-whisper")
        except AudioError as exc:
            raise _error(400, str(exc)) from exc
        except (UnknownModelError, BackendError) as exc:
            raise _error(400, str(exc)) from exc
        take = assess_take(audio, session.prompt.text, backend)
        out: dict[str, Any] = {
            "prompt_index": position,
            "prompt": asdict(session.prompt),
            "transcript": take.transcript,
            "wer": take.wer,
            "errors": take.errors,
            "ref_words": take.ref_words,
            "checks": take.report.to_json(),
            "ok": take.report.ok,
        }
        if action == "accept":
            try:
                saved, case = self.store.recordings.accept(
                    session.id,
                    position,
                    audio,
                    transcript=take.transcript,
                    errors=take.errors,
                    ref_words=take.ref_words,
                    checks=take.report.to_json(),
                    model=session.model,
                    backend=session.backend,
                )
            except StaleTake as exc:
                raise _error(409, str(exc)) from exc
            out.update(take_id=saved.id, case_id=case.id)
        out["session"] = _session_json(self._session(session_id))
        return out

    def skip(self, session_id: str, index: str | None = None) -> dict:
        place = _index(index)
        session = self._session(session_id)
        position = session.position if place is None else place
        try:
            self.store.recordings.skip(session.id, position)
        except StaleTake as exc:
            raise _error(409, str(exc)) from exc
        return _session_json(self._session(session_id))

    def list_takes(self, session_id: str) -> dict:
        self._session(session_id)
        return {"takes": [asdict(t) for t in self.store.recordings.takes(session_id)]}

    def summary(self, session_id: str) -> dict:
        self._session(session_id)
        rows = self.store.recordings.summary(session_id)
        return {"prompt_types": [{**asdict(r), "wer": r.wer} for r in rows]}

    def _session(self, session_id: str) -> RecordSession:
        try:
            return self.store.recordings.get_session(session_id)
        except SessionNotFound as exc:
            raise _error(404, str(exc)) from exc


def _model_and_backend(body: dict) -> tuple[str, str]:
    """A session's model and backend, checked when it starts (400): a session of one that cannot load was started,
    and every take of it was then refused, the tester's audio with it. Resolving loads nothing. Left out (or
    null), each is the default, stored by name; given, it must be one that loads: ``"backend": ""`` was taken,
    stored as no backend, and the session's test cases saved without one (their takes ran on faster-whisper)."""
    from asr.models import resolve

    model = default_model() if body.get("model") is None else str(body["model"])
    backend = DEFAULT_BACKEND if body.get("backend") is None else str(body["backend"])
    if backend not in BACKENDS:
        raise _error(400, f"unknown backend {reprlib.repr(backend)}; choose one of: {', '.join(BACKENDS)}")
    try:
        resolve(model)
    except UnknownModelError as exc:
        raise _error(400, str(exc)) from exc
    return model, backend


def mb(size: int) -> str:
    """A byte count as the --max-upload-mb option counts it (MiB, one decimal), so the 413 compares like units."""
    return f"{size / 2**20:.1f} MB"


def _index(value: str | None) -> int | None:
    """The ``index`` query value, parsed here so that a bad one is a 400 with one line, not FastAPI's 422 list."""
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _error(
            400, f"index must be the prompt's place as a whole number (0 is the first), not {value!r}"
        ) from None


def _flag(name: str, value: str) -> bool:
    """A true/false query value (``open=true``), parsed here for the same one-line 400 as ``_index``."""
    lowered = value.strip().lower()
    if lowered in ("", "0", "false", "no", "off"):
        return False
    if lowered in ("1", "true", "yes", "on"):
        return True
    raise _error(400, f"{name} must be true or false, not {value!r}")


def _prompts(body: dict) -> tuple[Prompt, ...]:
    """A script from JSON: ``builtin`` (a name), ``text`` (one prompt a line) or ``prompts`` ([{id, text, type}])."""
    try:
        if body.get("builtin"):
            return builtin_script(str(body["builtin"]))
        if isinstance(body.get("prompts"), list):
            return from_records(body["prompts"], "prompts")
        return parse_pasted(str(body.get("text") or ""), "text")
    except ScriptError as exc:
        raise _error(400, str(exc)) from exc


def _stale(session: RecordSession, index: int) -> str:
    if session.done:
        return "the session is finished: every prompt is recorded or skipped"
    return f"prompt index {index} is not the session's current prompt ({session.position})"


def _script_json(script) -> dict:
    return {
        "id": script.id,
        "name": script.name,
        "source": script.source,
        "prompts": [asdict(p) for p in script.prompts],
        "created_at": script.created_at,
    }


def _session_json(session: RecordSession) -> dict:
    return {
        "id": session.id,
        "script": {"id": session.script.id, "name": session.script.name, "prompts": len(session.script.prompts)},
        "profile": asdict(session.profile),
        "position": session.position,
        "total": session.total,
        "done": session.done,
        "prompt": asdict(session.prompt) if session.prompt else None,
        "model": session.model,
        "backend": session.backend,
        "created_at": session.created_at,
        "updated_at": session.updated_at,
    }
