"""The page's HTTP server: the standard library's threading server, on loopback by default.

Routes:

- ``GET /``, ``GET /static/<file>``: the page.
- ``GET /api/models``, ``GET /api/sequences``: the model choices (by id) and the dataset's
  sequences (names only).
- ``POST /api/dance`` (JSON: ``audio_base64``, ``filename``, ``start_s``, ``duration_s``,
  ``seed``, ``model``) and ``POST /api/compare`` (JSON: ``sequence``, ``start_s``,
  ``duration_s``, ``seed``, ``model``): start a job, answer ``{"id": ...}`` (202).
  ``model`` is an id listed by ``/api/models``, never a path or a URI.
- ``GET /api/jobs/<id>``: its state, step, elapsed time, error or result.
- ``GET /api/jobs/<id>/<file>``: ``audio.wav`` (the danced span of the song), ``dance.mp4``,
  ``motion.json``, ``motion.bvh`` (written on the first GET; a HEAD never writes).

Who may call (see docs/security.md): every request must name an allowed ``Host``
(loopback names when the server listens on loopback: a web page that rebinds its
own name to 127.0.0.1 is refused), an ``Origin``, when a browser sends one, equal
to the page's own, and, when a token is set (required off loopback), the token as
the cookie the page's address sets, an ``Authorization: Bearer`` header or an
``X-Melodance-Token`` header. POSTs must be ``Content-Type: application/json``
with a ``Content-Length`` within :data:`MAX_BODY`; the body is never read past it.

Errors answer JSON ``{"error": message}`` with a 4xx/5xx status and never an
absolute path; no request can stop the server.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import mimetypes
import socket
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from melodance.errors import InputError
from melodance.serve.predict import MAX_AUDIO_BYTES
from melodance.ui.app import Busy, UiApp, UiError, redact

STATIC = Path(__file__).parent / "static"
MAX_BODY = MAX_AUDIO_BYTES * 4 // 3 + 64 * 1024
"""Largest request body: the largest song predict() accepts, base64, plus the form."""
FILES = {"audio.wav": "audio/wav", "dance.mp4": "video/mp4", "motion.json": "application/json",
         "motion.bvh": "text/plain"}
SOCKET_TIMEOUT_S = 30.0
"""A connection that sends nothing for this long is closed."""
BODY_DEADLINE_S = 300.0
"""A request body must arrive within this time (50 MiB at 1.4 Mbit/s), however it trickles."""
MAX_CONNECTIONS = 32
"""Connections served at once; more are answered 503 and closed."""
MAX_UPLOADS = 2
"""Request bodies read at once (each up to MAX_BODY in memory); more are answered 429."""
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_HOSTS = frozenset({"", "0.0.0.0", "::"})
DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)


class HttpError(Exception):
    """Answer ``status`` with ``message`` (JSON ``{"error": ...}``)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address to listen on) reaches only this machine."""
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_name(value: str) -> str:
    """``Host`` header value -> lower-case name without the port (``[::1]:5050`` -> ``::1``)."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Handler(BaseHTTPRequestHandler):
    app: UiApp  # set on the subclass made by make_server
    quiet: bool = False
    allowed_hosts: frozenset[str] | None = LOOPBACK_NAMES  # None: any Host (token required)
    token: str | None = None
    uploads: threading.BoundedSemaphore
    server_version = "melodance-ui"
    sys_version = ""
    timeout = SOCKET_TIMEOUT_S  # StreamRequestHandler sets it on the socket

    def log_message(self, fmt, *args):
        if not self.quiet:
            sys.stderr.write(f"ui: {self.address_string()} {fmt % args}\n")

    def send_error(self, code, message=None, explain=None):
        """http.server's own errors (bad request line, unknown method, header too long) as
        short JSON that never repeats the request; an unknown method is 405, not 501."""
        if code == HTTPStatus.NOT_IMPLEMENTED:
            code = HTTPStatus.METHOD_NOT_ALLOWED
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        try:
            self._json({"error": phrase.lower()}, code)
        except (OSError, AttributeError):
            pass  # the client left, or the request line was too broken to answer

    # ------------------------------------------------------------------ replies

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        if self.close_connection:
            self.send_header("Connection", "close")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200, extra: dict | None = None) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode(), "application/json",
                   extra)

    def _error(self, status: int, message: str) -> None:
        self._json({"error": redact(message)[:2000]}, status)

    def _file(self, path: Path, ctype: str, download: str | None = None,
              extra: dict | None = None) -> None:
        extra = dict(extra or {})
        if download:
            extra["Content-Disposition"] = f'attachment; filename="{download}"'
        self._send(200, path.read_bytes(), ctype, extra)

    def _guard(self, fn) -> None:
        # A body we do not read would be taken for the next request: close after answering
        # unless _post read it all.
        self._close_after = self.close_connection
        if self.headers.get("Content-Length") or self.headers.get("Transfer-Encoding"):
            self.close_connection = True
        try:
            self._check_access()
            fn()
        except DISCONNECTS:
            self.close_connection = True
            return
        except HttpError as e:
            self._reply_error(e.status, str(e))
        except Busy as e:
            self._reply_error(HTTPStatus.TOO_MANY_REQUESTS, str(e))
        except UiError as e:
            self._reply_error(400, str(e))
        except KeyError as e:
            what = e.args[0] if e.args else urlsplit(self.path).path
            self._reply_error(404, f"not found: {str(what)[:200]}")
        except Exception as e:  # the server stays up, the page shows the message
            traceback.print_exc()
            self._reply_error(500, f"internal error ({type(e).__name__}); see the server's log")

    def _reply_error(self, status: int, message: str) -> None:
        try:
            self._error(status, message)
        except DISCONNECTS:
            self.close_connection = True

    # ------------------------------------------------------------------ access

    def _check_access(self) -> None:
        host = self.headers.get("Host")
        if self.allowed_hosts is not None and host is not None \
                and _host_name(host) not in self.allowed_hosts:
            raise HttpError(HTTPStatus.FORBIDDEN, "this server answers only requests addressed "
                            "to its own host name (see melodance ui --host)")
        origin = self.headers.get("Origin")
        if origin is not None:
            o = urlsplit(origin.strip())
            if o.scheme not in ("http", "https") or host is None or o.netloc.lower() != \
                    host.strip().lower():
                raise HttpError(HTTPStatus.FORBIDDEN, "cross-origin requests are refused")
        site = self.headers.get("Sec-Fetch-Site")
        if site is not None and site.strip().lower() not in ("same-origin", "none"):
            raise HttpError(HTTPStatus.FORBIDDEN, "cross-site requests are refused")
        if self.token is not None and not self._has_token():
            raise HttpError(HTTPStatus.UNAUTHORIZED, "a token is required: open the address "
                            "melodance ui printed when it started (it ends in ?token=...)")

    def _cookie_name(self) -> str:
        return f"melodance_token_{self.server.server_address[1]}"

    def _has_token(self) -> bool:
        given = []
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            given.append(auth[7:].strip())
        given.append(self.headers.get("X-Melodance-Token", ""))
        for part in self.headers.get("Cookie", "").split(";"):
            k, _, v = part.strip().partition("=")
            if k == self._cookie_name():
                given.append(v)
        url = urlsplit(self.path)
        if self.command in ("GET", "HEAD") and url.path in ("/", "/index.html"):
            given += parse_qs(url.query).get("token", [])
        want = self.token.encode()
        return any(hmac.compare_digest(g.encode(), want) for g in given if g)

    # ------------------------------------------------------------------ routes

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._guard(self._get)

    def do_HEAD(self):  # noqa: N802
        self._guard(self._get)

    def do_POST(self):  # noqa: N802
        self._guard(self._post)

    def _method_not_allowed(self):
        self._guard(self._refuse_method)

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _method_not_allowed

    def _refuse_method(self):
        raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command[:20]}: method not allowed")

    def _get(self) -> None:
        path = urlsplit(self.path).path
        if path in ("/", "/index.html"):
            extra = {}
            if self.token is not None:
                extra["Set-Cookie"] = (f"{self._cookie_name()}={self.token}; Path=/; HttpOnly; "
                                       "SameSite=Strict")
            return self._file(STATIC / "index.html", "text/html; charset=utf-8", extra=extra)
        if path.startswith("/static/"):
            name = path.removeprefix("/static/")
            f = STATIC / name
            if "/" in name or "\\" in name or name.startswith(".") or not f.is_file():
                raise KeyError(path)
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            return self._file(f, ctype + ("; charset=utf-8" if ctype.startswith("text/") or
                                          ctype.endswith("javascript") else ""))
        if path == "/api/models":
            return self._json(self.app.models())
        if path == "/api/sequences":
            data = self.app.data_dir.name if self.app.data_dir else ""
            return self._json({"data": data, "sequences": self.app.sequences()})
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["api", "jobs"]:
            return self._json(self.app.job(parts[2]).status())
        if len(parts) == 4 and parts[:2] == ["api", "jobs"] and parts[3] in FILES:
            f = self.app.file(parts[2], parts[3], write=self.command != "HEAD")
            name = parts[3]
            download = None if name == "audio.wav" else f"melodance-{parts[2]}-{name}"
            return self._file(f, FILES[name], download)
        raise KeyError(path)

    def _post(self) -> None:
        path = urlsplit(self.path).path
        if path not in ("/api/dance", "/api/compare"):
            raise KeyError(path)
        ctype = self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if ctype != "application/json":
            raise HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
                            "requests must be Content-Type: application/json")
        n = self._content_length()
        if not self.uploads.acquire(blocking=False):
            raise HttpError(HTTPStatus.TOO_MANY_REQUESTS, "busy: other uploads are arriving; "
                            "try again in a moment")
        try:
            raw = self._read_body(n)
        finally:
            self.uploads.release()
        self.close_connection = self._close_after
        try:
            body = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
            msg = e.msg if isinstance(e, json.JSONDecodeError) else type(e).__name__
            raise UiError(f"request is not JSON ({msg})") from None
        del raw
        if not isinstance(body, dict):
            raise UiError("request must be a JSON object")
        job = (self.app.submit_dance if path == "/api/dance" else self.app.submit_compare)(body)
        self._json({"id": job.id}, HTTPStatus.ACCEPTED)

    def _content_length(self) -> int:
        if self.headers.get("Transfer-Encoding"):
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length "
                            "(chunked transfer is not accepted)")
        values = self.headers.get_all("Content-Length") or []
        if not values:
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
        value = values[0].strip()
        if len(set(v.strip() for v in values)) != 1 or not value.isdigit() or \
                not value.isascii() or len(value) > 12:
            raise HttpError(HTTPStatus.BAD_REQUEST, "Content-Length must be one non-negative "
                            "integer")
        n = int(value)
        if n > MAX_BODY:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"upload too large ({n / 2**20:.0f} MiB); the limit is "
                            f"{MAX_AUDIO_BYTES // 2**20} MiB of audio")
        return n

    def _read_body(self, n: int) -> bytes:
        """Exactly ``n`` bytes (never more), within BODY_DEADLINE_S."""
        deadline = time.monotonic() + BODY_DEADLINE_S
        chunks, got = [], 0
        while got < n:
            if time.monotonic() > deadline:
                raise HttpError(HTTPStatus.REQUEST_TIMEOUT, "the request body arrived too slowly")
            chunk = self.rfile.read1(min(n - got, 1 << 20))
            if not chunk:
                raise HttpError(HTTPStatus.BAD_REQUEST, f"the body ended after {got} of {n} "
                                "bytes")
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)


class UiServer(ThreadingHTTPServer):
    """Threading server with a bound on connections served at once, quiet about clients that
    left."""

    daemon_threads = True
    request_queue_size = 64

    def __init__(self, address, handler, max_connections: int = MAX_CONNECTIONS):
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            body = b'{"error":"busy: too many connections"}'
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: "
                                b"application/json\r\nConnection: close\r\nContent-Length: "
                                + str(len(body)).encode() + b"\r\n\r\n" + body)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        exc = sys.exc_info()[1]
        if isinstance(exc, DISCONNECTS):
            return  # the client left or went silent: nothing to report
        super().handle_error(request, client_address)


def make_server(app: UiApp, host: str = "127.0.0.1", port: int = 5050, quiet: bool = False,
                token: str | None = None) -> UiServer:
    """A server bound to (host, port) (port 0: a free one; see ``server.server_address``).

    On loopback it answers requests addressed to loopback names only; elsewhere it
    needs ``token`` (ValueError without one) and answers requests addressed to ``host``
    (any name when ``host`` is a wildcard such as 0.0.0.0).
    """
    if token is not None and (len(token) < 16 or not token.isascii() or not token.isprintable()
                              or any(c in token for c in " ;,\"\\")):
        raise InputError("the token must be at least 16 printable ASCII characters without "
                         "spaces, quotes, commas, semicolons or backslashes")
    if is_loopback(host):
        allowed: frozenset[str] | None = LOOPBACK_NAMES | {host.lower().strip("[]")}
    else:
        if token is None:
            raise InputError(f"listening on {host} (not loopback) needs a token")
        allowed = None if host in WILDCARD_HOSTS else LOOPBACK_NAMES | {host.lower().strip("[]")}
    attrs = {"app": app, "quiet": quiet, "allowed_hosts": allowed, "token": token,
             "uploads": threading.BoundedSemaphore(MAX_UPLOADS)}
    handler = type("UiHandler", (Handler,), attrs)
    server_cls = UiServer
    if ":" in host:
        server_cls = type("UiServer6", (UiServer,), {"address_family": socket.AF_INET6})
    return server_cls((host.strip("[]"), port), handler)
