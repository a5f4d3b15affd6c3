"""The dashboard's HTTP boundary: Gradio's event routes answer only the page this server served.

Gradio marks an event ``api_visibility="private"`` by leaving it out of ``/gradio_api/info`` (so
``gradio_client`` cannot find it), but its routes still run any event by name (``/gradio_api/call/<name>``) or
by number (``/gradio_api/queue/join``). This ASGI middleware closes what the page never uses and makes the rest
answer only requests that carry what a browser on a page of this server sends:

- ``/gradio_api/call/``, ``/run/``, ``/api/`` and ``openapi.json``: 404, always (the page uses only the queue); so
  is FastAPI's ``/openapi.json`` at the root, which listed every route without a login.
- Every ``POST`` under ``/gradio_api/`` (queue join, upload, cancel, streamed audio): 403 unless the ``Origin``
  header names this server (a page on another site, or a script that sends no Origin, is refused; this is what
  stops another website from uploading to a localhost instance) and the request carries the page cookie, an
  HttpOnly, SameSite=Strict value signed with a per-process secret that this middleware sets on every HTML page.

It also makes the login compare user names exactly: Gradio strips the name typed, so "alice " logged in as
"alice"; a name with surrounding spaces is now refused as incorrect.

When the dashboard listens on loopback only (the default), requests must also name a loopback host
(``127.0.0.1``, ``localhost``, ``[::1]``): a site that rebinds its own DNS name to 127.0.0.1 would otherwise be
"same origin" with the dashboard in the visitor's browser and could read and drive it.

This is not authentication: a script that fetches a page first and forges the Origin header acts as the page.
Access control is ``--auth``; the scripting API is the token-protected ``/api/`` (see README "Security").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

GRADIO_PREFIX = "/gradio_api"
CLOSED_PREFIXES = ("/call/", "/run/", "/api/", "/openapi.json", "/mcp")  # event routes the page never uses
SCHEMA_PATHS = ("/openapi.json", "/docs", "/redoc")  # FastAPI's schema and docs: every route, to anyone
PAGE_COOKIE = "asrqa_page"
CLOSED_MESSAGE = "the Gradio event API is closed; scripts use the token-protected /api/ routes"
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
FOREIGN_MESSAGE = "refused: not a request from a page served by this dashboard"


class PageGuard:
    """ASGI middleware: see the module docstring. ``secret`` signs the page cookie (random per process)."""

    def __init__(self, app: ASGIApp, secret: bytes | None = None, loopback_only: bool = False) -> None:
        self.app = app
        self.secret = secret or secrets.token_bytes(32)
        self.loopback_only = loopback_only  # refuse requests naming any other host (DNS rebinding)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.loopback_only and host_name(_headers(scope).get("host", "")) not in LOOPBACK_NAMES:
            await _refuse(send, 403, "refused: this dashboard answers only to 127.0.0.1 and localhost")
            return
        path = scope.get("path", "")
        root = scope.get("root_path", "") or ""
        if root and path.startswith(root):
            path = path[len(root) :]
        if path.rstrip("/") == "/login" and scope.get("method") == "POST":
            body = await _read_body(receive)
            if await _padded_username(scope, body):
                await _refuse(send, 400, "Incorrect credentials.")
                return
            receive = _replay(body, receive)
        if path.rstrip("/") in SCHEMA_PATHS:
            await _refuse(send, 404, "Not Found")
            return
        if path.startswith(GRADIO_PREFIX + "/"):
            sub = path[len(GRADIO_PREFIX) :]
            if sub.startswith(CLOSED_PREFIXES):
                await _refuse(send, 404, CLOSED_MESSAGE)
                return
            if scope.get("method") == "POST" and not self.from_page(_headers(scope)):
                await _refuse(send, 403, FOREIGN_MESSAGE)
                return
        await self.app(scope, receive, self._with_cookie(scope, send))

    def from_page(self, headers: dict[str, str]) -> bool:
        """Same origin as the Host asked for, and a page cookie this process signed."""
        return same_origin(headers) and self.valid(_cookies(headers.get("cookie", "")).get(PAGE_COOKIE, ""))

    def issue(self) -> str:
        nonce = secrets.token_urlsafe(16)
        return f"{nonce}.{self._sign(nonce)}"

    def valid(self, value: str) -> bool:
        nonce, _, signature = value.partition(".")
        return bool(nonce) and hmac.compare_digest(signature, self._sign(nonce))

    def _sign(self, nonce: str) -> str:
        return hmac.new(self.secret, nonce.encode(), hashlib.sha256).hexdigest()[:32]

    def _with_cookie(self, scope: Scope, send: Send) -> Send:
        """Adds the page cookie to HTML answers to GET (the pages, the login page)."""
        if scope.get("method") != "GET":
            return send
        secure = "; Secure" if scope.get("scheme") == "https" else ""

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                content_type = dict((k.lower(), v) for k, v in headers).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    cookie = f"{PAGE_COOKIE}={self.issue()}; Path=/; HttpOnly; SameSite=Strict{secure}"
                    headers.append((b"set-cookie", cookie.encode()))
                    message = {**message, "headers": headers}
            await send(message)

        return wrapped


def host_name(host: str) -> str:
    """``localhost:7860`` -> ``localhost``; ``[::1]:7860`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(address: str) -> bool:
    return address.strip("[]").lower() in LOOPBACK_NAMES


def same_origin(headers: dict[str, str]) -> bool:
    """The Origin header names the host the request was sent to (a proxy's X-Forwarded-Host counts)."""
    origin = headers.get("origin", "")
    if not origin or origin == "null":
        return False
    netloc = urlsplit(origin).netloc.lower()
    hosts = {headers.get("host", "").lower(), headers.get("x-forwarded-host", "").split(",")[0].strip().lower()}
    return bool(netloc) and netloc in hosts - {""}


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if message["type"] != "http.request" or not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, original: Receive) -> Receive:
    """The body already read, then whatever the client sends next (its disconnect)."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return await original()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _padded_username(scope: Scope, body: bytes) -> bool:
    """The login form's user name has surrounding white space (urlencoded or multipart, as the page sends it)."""
    from starlette.exceptions import HTTPException
    from starlette.formparsers import MultiPartException
    from starlette.requests import Request

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(scope, receive).form()
    except (MultiPartException, HTTPException, ValueError):  # a form Starlette cannot parse is Gradio's to refuse
        return False
    name = form.get("username")
    return isinstance(name, str) and name != name.strip()


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _cookies(header: str) -> dict[str, str]:
    pairs = (part.strip().partition("=") for part in header.split(";"))
    return {name: value for name, _, value in pairs if name}


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})
