"""The page's HTTP server: the standard library's threading server on loopback.

Routes:

- ``GET /``, ``GET /static/<file>``: the page.
- ``GET /api/models``, ``GET /api/sequences``: the model choices and the dataset's sequences.
- ``POST /api/dance`` (JSON: ``audio_base64``, ``filename``, ``start_s``, ``duration_s``,
  ``model``) and ``POST /api/compare`` (JSON: ``sequence``, ``start_s``, ``duration_s``,
  ``model``): start a job, answer ``{"id": ...}`` (202).
- ``GET /api/jobs/<id>``: its state, step, elapsed time, error or result.
- ``GET /api/jobs/<id>/<file>``: ``audio.wav`` (the danced span of the song), ``dance.mp4``,
  ``motion.json``, ``motion.bvh``.

Errors answer JSON ``{"error": message}`` with a 4xx/5xx status; no request
can stop the server.
"""

from __future__ import annotations

import json
import mimetypes
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from melodance.serve.predict import MAX_AUDIO_BYTES
from melodance.ui.app import UiApp, UiError

STATIC = Path(__file__).parent / "static"
MAX_BODY = MAX_AUDIO_BYTES * 4 // 3 + 64 * 1024
"""Largest request body: the largest song predict() accepts, base64, plus the form."""
FILES = {"audio.wav": "audio/wav", "dance.mp4": "video/mp4", "motion.json": "application/json",
         "motion.bvh": "text/plain"}


class Handler(BaseHTTPRequestHandler):
    app: UiApp  # set on the subclass made by make_server
    quiet: bool = False
    server_version = "melodance-ui"

    def log_message(self, fmt, *args):
        if not self.quiet:
            sys.stderr.write(f"ui: {self.address_string()} {fmt % args}\n")

    # ------------------------------------------------------------------ replies

    def _send(self, status: int, body: bytes, ctype: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj, separators=(",", ":")).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json({"error": message}, status)

    def _file(self, path: Path, ctype: str, download: str | None = None) -> None:
        extra = {"Content-Disposition": f'attachment; filename="{download}"'} if download else {}
        self._send(200, path.read_bytes(), ctype, extra)

    def _guard(self, fn) -> None:
        try:
            fn()
        except UiError as e:
            self._error(400, str(e))
        except KeyError as e:
            self._error(404, f"not found: {e.args[0] if e.args else self.path}")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # the server stays up, the page shows the message
            traceback.print_exc()
            self._error(500, f"internal error: {type(e).__name__}: {e}")

    # ------------------------------------------------------------------ routes

    def do_GET(self):  # noqa: N802 (http.server's naming)
        self._guard(self._get)

    do_HEAD = do_GET

    def do_POST(self):  # noqa: N802
        self._guard(self._post)

    def _get(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            return self._file(STATIC / "index.html", "text/html; charset=utf-8")
        if path.startswith("/static/"):
            name = path.removeprefix("/static/")
            f = STATIC / name
            if "/" in name or name.startswith(".") or not f.is_file():
                raise KeyError(path)
            ctype = mimetypes.guess_type(name)[0] or "application/octet-stream"
            return self._file(f, ctype + ("; charset=utf-8" if ctype.startswith("text/") or
                                          ctype.endswith("javascript") else ""))
        if path == "/api/models":
            return self._json(self.app.models())
        if path == "/api/sequences":
            return self._json({"data": str(self.app.data_dir or ""),
                               "sequences": self.app.sequences()})
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[:2] == ["api", "jobs"]:
            return self._json(self.app.job(parts[2]).status())
        if len(parts) == 4 and parts[:2] == ["api", "jobs"] and parts[3] in FILES:
            f = self.app.file(parts[2], parts[3])
            name = parts[3]
            download = None if name == "audio.wav" else f"melodance-{parts[2]}-{name}"
            return self._file(f, FILES[name], download)
        raise KeyError(path)

    def _post(self) -> None:
        path = self.path.split("?", 1)[0]
        if path not in ("/api/dance", "/api/compare"):
            raise KeyError(path)
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            # Drain nothing: close the connection instead of reading 50+ MiB we refuse.
            self.close_connection = True
            raise UiError(f"upload too large ({n / 2**20:.0f} MiB); the limit is "
                          f"{MAX_AUDIO_BYTES // 2**20} MiB of audio")
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise UiError(f"request is not JSON ({e})") from None
        if not isinstance(body, dict):
            raise UiError("request must be a JSON object")
        job = (self.app.submit_dance if path == "/api/dance" else self.app.submit_compare)(body)
        self._json({"id": job.id}, HTTPStatus.ACCEPTED)


def make_server(app: UiApp, host: str = "127.0.0.1", port: int = 5050,
                quiet: bool = False) -> ThreadingHTTPServer:
    """A server bound to (host, port) (port 0: a free one; see ``server.server_address``)."""
    handler = type("UiHandler", (Handler,), {"app": app, "quiet": quiet})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server
