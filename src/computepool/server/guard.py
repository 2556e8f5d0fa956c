"""What every request and response passes through before the routes: security headers on
every answer, a cap on the request body, and no NUL in the path or the query string.

One pure ASGI middleware (no per-request objects beyond what it must touch), so the
submission hot path pays a few microseconds for it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from sqlalchemy import BigInteger, Column, SmallInteger
from sqlalchemy.engine import Engine

from computepool.bounds import BODY_MAX_BYTES, ID_MAX

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The dashboard and the API: scripts and everything else from this origin only; inline
#: style attributes stay allowed (the pages set computed widths and colours with them).
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
#: FastAPI's interactive API docs (/docs, /redoc) load their script and styles from a CDN
#: and start with an inline script; they hold no data, only the OpenAPI document.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://fonts.googleapis.com; "
    "font-src https://fonts.gstatic.com; img-src 'self' data: https://fastapi.tiangolo.com "
    "https://cdn.redoc.ly; connect-src 'self'; worker-src blob:; frame-ancestors 'none'; "
    "base-uri 'none'"
)
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
_BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


def security_headers(path: str) -> list[tuple[bytes, bytes]]:
    csp = DOCS_CSP if path in DOCS_PATHS else CSP
    return [
        (b"content-security-policy", csp.encode()),
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        # not no-referrer: under it a browser sends "Origin: null" with same-origin form posts
        (b"referrer-policy", b"same-origin"),
    ]


def store_id_max(engine: Engine, column: Column) -> int:
    """The largest id ``column`` can hold in this store (PostgreSQL's INTEGER: 2^31-1; SQLite's
    INTEGER: 2^63-1); an id beyond it names no row."""
    if engine.dialect.name == "sqlite" or isinstance(column.type, BigInteger):
        return ID_MAX
    return 2**15 - 1 if isinstance(column.type, SmallInteger) else 2**31 - 1


def nul_in_request(scope: Scope) -> str | None:
    """The path or query parameter holding a NUL character, or None."""
    if "\x00" in scope.get("path", "") or b"%00" in scope.get("raw_path", b""):
        return "path"
    qs: bytes = scope.get("query_string", b"")
    if b"%00" not in qs:
        return None
    for k, v in parse_qsl(qs.decode("latin-1"), keep_blank_values=True):
        if "\x00" in k or "\x00" in v:
            return k.replace("\x00", "") or "query"
    return "query"


#: The OpenAI-compatible gateway's paths: their errors are in OpenAI's shape.
OPENAI_PATHS = ("/v1/completions", "/v1/chat/completions", "/v1/models")


def _error(status: int, field: str, reason: str, openai: bool = False) -> tuple[Message, Message]:
    if openai:
        kind = "invalid_request_error"
        code = "request_too_large" if status == 413 else kind
        doc: dict = {"error": {"message": reason, "type": kind, "param": field, "code": code}}
    else:
        doc = {"error": reason, "errors": [{"field": field, "reason": reason}]}
    body = json.dumps(doc).encode()
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    return start, {"type": "http.response.body", "body": body}


class Guard:
    """Security headers on every response; 413 for a body over ``max_body`` bytes; 422 for a
    NUL in the path or query (PostgreSQL cannot store it, and no name holds one)."""

    def __init__(self, app: ASGIApp, max_body: int = BODY_MAX_BYTES) -> None:
        self.app, self.max_body = app, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope.get("path", ""))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", ())}
                message["headers"] = [
                    *message.get("headers", ()),
                    *(h for h in extra if h[0] not in have),
                ]
            await send(message)

        openai = scope.get("path", "") in OPENAI_PATHS
        refused = self._refusal(scope, openai)
        if refused is None and scope.get("method") in _BODY_METHODS:
            refused, receive = await self._bounded_body(scope, receive, openai)
        if refused is not None:
            for m in refused:
                await send_with_headers(m)
            return
        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope, openai: bool = False) -> tuple[Message, Message] | None:
        where = nul_in_request(scope)
        if where is not None:
            return _error(422, where, "must not contain NUL (\\x00) characters", openai)
        return None

    async def _bounded_body(
        self, scope: Scope, receive: Receive, openai: bool = False
    ) -> tuple[tuple[Message, Message] | None, Receive]:
        length = None
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                length = v
        if length is not None:
            if not length.isdigit():
                return _error(400, "content-length", "not a byte count", openai), receive
            if len(length) > 15 or int(length) > self.max_body:
                return self._too_large(openai), receive
            return None, receive  # the server holds the body to its declared length
        # no length declared (chunked): read at most max_body + 1 bytes, then replay them
        chunks, size, more = [], 0, True
        while more:
            m = await receive()
            if m["type"] != "http.request":
                return None, _replay([m], receive)
            chunks.append(m.get("body", b""))
            size += len(chunks[-1])
            more = m.get("more_body", False)
            if size > self.max_body:
                return self._too_large(openai), receive
        body = b"".join(chunks)
        return None, _replay([{"type": "http.request", "body": body}], receive)

    def _too_large(self, openai: bool = False) -> tuple[Message, Message]:
        return _error(413, "body", f"request body over {self.max_body} bytes", openai)


def _replay(messages: list[Message], then: Receive) -> Receive:
    """``messages`` first, then whatever ``then`` receives (a disconnect, later)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await then()

    return receive
