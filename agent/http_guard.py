"""What stands between the network and the HTTP API: the Host, token, content-type, body and header checks, and the
security headers on every response. Kept apart from ``agent/server.py`` (the routes and the work) so that what a
request must pass before any route runs reads top to bottom in one place.

- **Host** (without a token): only a literal loopback IP (``127.0.0.0/8``, ``::1``) or ``localhost``, and the port the
  server listens on. Parsed, never prefix-matched: ``127.0.0.1.evil.example`` is a DNS name a web page can point at
  this machine (DNS rebinding), not the loopback.
- **Token**: ``Authorization: Bearer`` everywhere; ``?token=`` only on the GET endpoints a browser cannot add a header
  to (``<img>`` and ``EventSource``: images and event streams), so a token in a URL never authorises a write.
- **Writes**: ``application/json`` only (a cross-site form cannot send it), a size cap, a deadline for the whole
  body, and the body is checked as JSON before a route sees it: UTF-8, no lone surrogates or NUL characters, no
  ``NaN``/``Infinity``, integers within 64 bits — each a 400 naming what is wrong, never a 500.
- **Slow clients**: ``GuardedH11Protocol`` closes a connection whose request headers do not arrive within
  ``HEADER_TIMEOUT_S`` (uvicorn has a keep-alive timeout but none for headers, so a slow-loris client could hold
  connections open forever).
- **Responses**: ``Content-Security-Policy`` (scripts and styles from this origin only; no framing),
  ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import math
import re
from urllib.parse import parse_qs

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

HEADER_TIMEOUT_S = 10.0
BODY_TIMEOUT_S = 30.0
MAX_INT = 2**63 - 1
_HOST_CHARS = re.compile(r"^[A-Za-z0-9.\-]+$")
_PORT = re.compile(r"^[0-9]{1,5}$")
# GET endpoints where a browser cannot send a header: <img src> and EventSource
_QUERY_TOKEN_PATHS = re.compile(r"^/api/(artifacts/[^/]+|runs/[^/]+/image|runs/[^/]+/events/stream)$")

CSP = "default-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
# /docs loads Swagger UI from its CDN and starts it with an inline script (FastAPI's page)
CSP_DOCS = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; style-src 'self' 'unsafe-inline'"
    " https://cdn.jsdelivr.net; img-src 'self' data: https://fastapi.tiangolo.com; object-src 'none'; base-uri 'none';"
    " frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def is_loopback(host: str) -> bool:
    """A host name or address that can only mean this machine: ``localhost`` or a literal loopback IP."""
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def split_host_header(value: str) -> tuple[str, int | None] | None:
    """``Host`` → (name, port); None when it is not a well-formed ``host[:port]`` (``a@b``, ``x/y``, ``h:99999``)."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[1:end], value[end + 1 :]
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return None
    else:
        name, sep, port = value.partition(":")
        rest = sep + port
        if not _HOST_CHARS.match(name):
            return None
    if not rest:
        return name, None
    if not rest.startswith(":") or not _PORT.match(rest[1:]) or not 0 < int(rest[1:]) < 65536:
        return None
    return name, int(rest[1:])


def host_allowed(value: str, port: int | None) -> bool:
    parsed = split_host_header(value)
    if parsed is None or not is_loopback(parsed[0]):
        return False
    if port is None:
        return True
    return parsed[1] == port or (parsed[1] is None and port == 80)  # no port in Host: the scheme's default


class BadBody(ValueError):
    pass


def check_json_body(body: bytes) -> None:
    """Reject what JSON allows but no request of ours means, before pydantic or SQLite meet it (where it was a 500)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("the request body is not UTF-8") from None

    def constant(name: str):
        raise BadBody(f"the request body holds {name}; send a finite number")

    def integer(digits: str) -> int:
        if len(digits.lstrip("-")) > 19 or abs(int(digits)) > MAX_INT:
            raise BadBody(f"the integer {digits[:24]}{'…' if len(digits) > 24 else ''} is out of range (at most 2^63 - 1)")
        return int(digits)

    def real(digits: str) -> float:
        value = float(digits)
        if not math.isfinite(value):
            raise BadBody(f"the number {digits[:24]} is out of range")
        return value

    try:
        value = json.loads(text, parse_constant=constant, parse_int=integer, parse_float=real)
    except json.JSONDecodeError as err:
        raise BadBody(f"the request body is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}") from None
    except RecursionError:
        raise BadBody("the request body is nested too deeply") from None
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            _check_text(v)
        elif isinstance(v, dict):
            for k, x in v.items():
                _check_text(k)
                stack.append(x)
        elif isinstance(v, list):
            stack.extend(v)


def _check_text(s: str) -> None:
    if "\x00" in s:
        raise BadBody("a string in the request holds a NUL character; remove it")
    if any("\ud800" <= c <= "\udfff" for c in s):
        raise BadBody("a string in the request holds a lone UTF-16 surrogate (\\ud800-\\udfff); send valid Unicode")


class Guard:
    """ASGI middleware: token, Host and content-type checks, the body size cap and checks, before any route runs;
    security headers on every response."""

    def __init__(self, app, *, token: str | None, max_body: int, check_host: bool, port: int | None = None):
        self.app, self.token, self.max_body, self.check_host, self.port = app, token, max_body, check_host, port

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        method = scope.get("method", "GET")
        send = _with_security_headers(send, CSP_DOCS if path in ("/docs", "/redoc") else CSP)
        if self.check_host:
            host = headers.get("host", "")
            if not host_allowed(host, self.port):
                return await reject(send, 421, f"host '{host[:100]}' is not allowed; this server only answers the loopback")
        public = path == "/" or path.startswith("/web/") or path == "/favicon.ico"
        if self.token and not public:
            auth = headers.get("authorization", "")
            given = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
            if not given and method == "GET" and _QUERY_TOKEN_PATHS.match(path):
                given = (parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token") or [""])[0]
            if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
                return await reject(send, 401, "missing or wrong token; send 'Authorization: Bearer <token>'")
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            ctype = headers.get("content-type", "").split(";")[0].strip().lower()
            if ctype != "application/json":
                return await reject(send, 415, "send the request body as JSON (Content-Type: application/json)")
            length = headers.get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_body):
                return await reject(send, 413, f"the request body is larger than {self.max_body} bytes")
            try:
                body = await asyncio.wait_for(self._read_body(receive), BODY_TIMEOUT_S)
            except asyncio.TimeoutError:
                return await reject(send, 408, f"the request body did not arrive within {BODY_TIMEOUT_S:g} s")
            if body is None:
                return None  # the client went away
            if len(body) > self.max_body:
                return await reject(send, 413, f"the request body is larger than {self.max_body} bytes")
            if body:
                try:
                    check_json_body(body)
                except BadBody as err:
                    return await reject(send, 400, str(err))
            sent = False

            async def replay_receive():
                nonlocal sent
                if not sent:
                    sent = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            return await self.app(scope, replay_receive, send)
        return await self.app(scope, receive, send)

    async def _read_body(self, receive) -> bytes | None:
        body, more = b"", True
        while more:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            body += msg.get("body", b"")
            more = msg.get("more_body", False)
            if len(body) > self.max_body:
                break
        return body


def _with_security_headers(send, csp: str):
    async def wrapped(message):
        if message["type"] == "http.response.start":
            message = {
                **message,
                "headers": [*message.get("headers", []), *SECURITY_HEADERS, (b"content-security-policy", csp.encode())],
            }
        await send(message)

    return wrapped


async def reject(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class GuardedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for request headers: a connection that has not sent a complete
    request line and headers within ``HEADER_TIMEOUT_S`` of opening (or of its previous response) is closed."""

    header_timeout_s = HEADER_TIMEOUT_S

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the headers are in
            self._disarm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm_header_timer()

    def connection_lost(self, exc) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._disarm_header_timer()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()
