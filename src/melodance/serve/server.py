"""The scoring server ``melodance serve`` runs: MLflow's scoring server behind a guard.

The model is loaded through MLflow (``models:/melodance@champion`` by
default) and served by MLflow's own scoring-server app
(:func:`mlflow.pyfunc.scoring_server.init`), run in this process by uvicorn
(imported, never looked up on ``PATH``). :class:`Guard`, an ASGI middleware in
front of it, enforces what MLflow does not (see docs/security-server.md):

- ``POST /invocations`` takes ``application/json`` only, and at most
  :data:`MAX_BODY_BYTES`: a larger ``Content-Length`` gets 413 before a byte of
  the body is read, a chunked body is cut off at the limit.
- At most :data:`MAX_IN_FLIGHT` requests are read and answered at once, at most
  :data:`MAX_WAITING` more wait; beyond that 503. Memory stays bounded by
  these limits, whatever the clients send.
- Every error is a short JSON ``{"error": "..."}`` that never quotes the
  request (MLflow's own messages repeat the whole input, and add a stack
  trace with server paths); details go to the server's log only.
- A 200 answer never holds ``NaN`` or ``Infinity`` (invalid JSON).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys

MAX_BODY_BYTES = 48 * 1024 * 1024
"""Largest request body, bytes: a 32 MiB song in base64 (43 MiB) plus room."""
MAX_IN_FLIGHT = 2
"""Requests read and predicted at once (each holds up to a body and its features)."""
MAX_WAITING = 16
"""Requests queued for a slot beyond MAX_IN_FLIGHT; more get 503."""
DRAIN_S, DRAIN_IDLE_S, DRAIN_BYTES = 3.0, 0.3, 256 * 1024 * 1024
"""How long, how idle and how much of a refused body is read and dropped (see Guard._drain)."""
MAX_ERROR_CHARS = 300
"""Longest error message sent to a client."""
ENDPOINTS = {"/invocations": ("POST",), "/ping": ("GET",), "/health": ("GET",),
             "/version": ("GET",)}

log = logging.getLogger("melodance.serve")

# MLflow's messages, by their fixed opening, and what the client is told instead.
_MLFLOW_MESSAGES = (
    ("Ensure that input is a valid JSON formatted string", "the body is not valid JSON"),
    ("The input must be a JSON dictionary with exactly one of the input fields",
     "expected a JSON object with exactly one of 'inputs', 'dataframe_split', "
     "'dataframe_records' or 'instances' (see docs/security-server.md)"),
    ('One of "instances" and "inputs" must be specified',
     "send 'inputs' (or 'instances') alone, with no other top-level field"),
    ('"signature_name" parameter is currently not supported',
     "'signature_name' is not supported"),
    ("Ensure that the input is a valid JSON-formatted string",
     "inputs: each field must be a number, a string or a rectangular array of numbers"),
    ("Failed to parse input as a Pandas DataFrame", "the data frame could not be read"),
    ("Encountered an unexpected error while evaluating the model",
     "the model could not process this request (see the request fields in "
     "docs/security-server.md)"),
    ("Request processing time exceeded limit", "the request took too long and was stopped"),
)
_OURS = "Failed to predict data"
_INVALID = "Invalid input."
_REQUEST_ERROR = re.compile(r"^melodance\.serve\.predict\.RequestError: (.+)$", re.M)
_NON_FINITE = re.compile(rb"\bNaN\b|\bInfinity\b")


def short_error(status: int, body: bytes) -> str:
    """The message a client gets for an error answer of the wrapped app.

    Only texts this package or MLflow wrote are passed on, never a part of the
    request: MLflow prefixes the model's own message with the whole input
    (``Failed to predict data '<input>'. Error: <message>``), which is cut
    off; its other messages are replaced by fixed texts.
    """
    msg, trace = "", ""
    try:
        obj = json.loads(body)
        if isinstance(obj, dict):
            msg = str(obj.get("message") or obj.get("detail") or obj.get("error") or "")
            trace = str(obj.get("stack_trace") or "")
    except (ValueError, UnicodeDecodeError):
        msg = body[:200].decode("utf-8", "replace")
    if msg.startswith(_OURS) and "\nError: " in msg:
        # The model's RequestError (melodance.serve.predict), raised as an
        # MlflowException: written to name the field and the problem without
        # quoting the request.
        return _cut(msg.rpartition("\nError: ")[2])
    ours = _REQUEST_ERROR.findall(trace)
    if ours:
        # The same error raised as itself: MLflow reports "unexpected error" and
        # keeps the message only in the stack trace.
        return _cut(ours[-1])
    invalid = msg.startswith(_INVALID)  # MlflowInvalidInputException's prefix
    msg = msg.removeprefix(_INVALID).lstrip()
    for opening, text in _MLFLOW_MESSAGES:
        if msg.startswith(opening):
            return text
    if invalid:  # e.g. numpy's "setting an array element with a sequence" (a ragged array)
        return "inputs: each field must be a number, a string or a rectangular array of numbers"
    return {404: "not found", 405: "method not allowed", 413: "request body too large",
            415: "unsupported content type: send application/json",
            503: "busy: try again later", 504: "the request took too long and was stopped",
            }.get(status, f"request refused (HTTP {status})" if status < 500 else
                  "internal error (see the server's log)")


def _precheck(body: bytes) -> str | None:
    """The model-free checks of a request's named ``inputs`` (serve.predict.check_fields), run
    before MLflow enforces the signature: its messages would not name every field. Anything
    else (not JSON, other input formats) goes on to MLflow's own checks."""
    from melodance.serve.predict import RequestError, check_fields

    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    inputs = obj.get("inputs") if isinstance(obj, dict) else None
    if not isinstance(inputs, dict):
        return None
    try:
        check_fields(inputs)
    except RequestError as e:
        return _cut(str(e))
    return None


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MAX_ERROR_CHARS else text[:MAX_ERROR_CHARS - 3] + "..."


def _header(scope, name: bytes) -> list[bytes]:
    return [v for k, v in scope.get("headers", []) if k.lower() == name]


async def _send_json(send, status: int, obj: dict, extra_headers=()) -> None:
    body = json.dumps(obj).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), *extra_headers]})
    await send({"type": "http.response.body", "body": body})


async def _error(send, status: int, message: str) -> None:
    await _send_json(send, status, {"error": _cut(message)})


class BodyTooLarge(Exception):
    pass


class Guard:
    """ASGI middleware: body cap, content type, concurrency, short errors, finite numbers."""

    def __init__(self, app, max_body: int = MAX_BODY_BYTES, max_in_flight: int = MAX_IN_FLIGHT,
                 max_waiting: int = MAX_WAITING):
        self.app = app
        self.max_body = max_body
        self.max_waiting = max_waiting
        self._slots = asyncio.Semaphore(max_in_flight)
        self._waiting = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":  # lifespan
            return await self.app(scope, receive, send)
        path, method = scope["path"], scope["method"]
        allowed = ENDPOINTS.get(path)
        if allowed is None:
            return await _error(send, 404, "not found: the endpoints are POST /invocations, "
                                "GET /ping, /health and /version")
        if method not in allowed:
            return await _error(send, 405, f"{path} takes {' or '.join(allowed)}")
        if path != "/invocations":
            return await self._forward(scope, self._replay(b"", receive), send)
        return await self._invocations(scope, receive, send)

    async def _invocations(self, scope, receive, send):
        ctype = b",".join(_header(scope, b"content-type")).decode("latin-1")
        mime, _, params = ctype.partition(";")
        if mime.strip().lower() != "application/json":
            return await _error(send, 415, "send the request as Content-Type: application/json")
        charset = params.strip().lower()
        if charset and charset.replace(" ", "") not in ("charset=utf-8", "charset=\"utf-8\""):
            return await _error(send, 415, "only UTF-8 JSON is accepted (charset=utf-8)")
        lengths = _header(scope, b"content-length")
        declared = None
        if lengths:
            try:
                declared = int(lengths[0])
            except ValueError:
                return await _error(send, 400, "Content-Length is not a number")
            if declared < 0 or len(set(lengths)) > 1:
                return await _error(send, 400, "Content-Length is not valid")
            if declared > self.max_body:
                # Refused unread; what the client sends meanwhile is discarded.
                await self._drain(receive)
                return await _error(send, 413, self._too_large())
        if self._waiting >= self.max_waiting:
            return await _error(send, 503, "busy: too many requests waiting; try again later")
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            try:
                body = await self._read(receive)
            except BodyTooLarge:
                await self._drain(receive)
                return await _error(send, 413, self._too_large())
            if body is None:
                return  # the client left
            problem = _precheck(body)
            if problem:
                return await _error(send, 400, problem)
            await self._forward(scope, self._replay(body, receive), send)
        finally:
            self._slots.release()

    def _too_large(self) -> str:
        return (f"request body too large: the limit is {self.max_body // 2**20} MiB "
                "(a song of at most 32 MiB, base64)")

    @staticmethod
    async def _drain(receive) -> None:
        """Read and drop what a refused client is still sending, for a moment.

        The answer goes out once the client pauses (or after DRAIN_S or
        DRAIN_BYTES), then the connection closes. Closing a socket with unread
        data resets it, and a client still writing its body (as most HTTP
        libraries do before reading) would see "connection reset" instead of
        the 413; a client that waits for the answer gets it after DRAIN_IDLE_S.
        """
        loop = asyncio.get_running_loop()
        end, dropped = loop.time() + DRAIN_S, 0
        while dropped < DRAIN_BYTES:
            left = min(DRAIN_IDLE_S, end - loop.time())
            if left <= 0:
                return
            try:
                msg = await asyncio.wait_for(receive(), timeout=left)
            except TimeoutError:
                return
            if msg["type"] != "http.request" or not msg.get("more_body", False):
                return
            dropped += len(msg.get("body", b""))

    async def _read(self, receive) -> bytes | None:
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                return None
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise BodyTooLarge()
            chunks.append(chunk)
            if not msg.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    def _replay(body: bytes, receive):
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # only a disconnect can come now

        return replay

    async def _forward(self, scope, receive, send):
        """Run the wrapped app with its answer held back, then send it or a short error."""
        start, chunks = None, []

        async def capture(message):
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        try:
            await self.app(scope, receive, capture)
        except Exception:  # noqa: BLE001 - logged here; the client gets a short 500
            log.exception("%s %s failed", scope["method"], scope["path"])
            return await _error(send, 500, "internal error (see the server's log)")
        if start is None:
            return await _error(send, 500, "internal error (see the server's log)")
        status, body = start["status"], b"".join(chunks)
        if status >= 400:
            msg = short_error(status, body)
            log.warning("%s %s -> %d: %s (the wrapped app said: %s)", scope["method"],
                        scope["path"], status, msg, _cut(body[:300].decode("utf-8", "replace")))
            return await _error(send, status, msg)
        if scope["path"] == "/invocations" and _NON_FINITE.search(body):
            log.error("refused to send a prediction holding NaN or Infinity")
            return await _error(send, 500, "the model produced non-finite values; "
                                "nothing was sent")
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def build_app(model_uri: str):
    """Load the model through MLflow and wrap MLflow's scoring app in :class:`Guard`."""
    import warnings

    from mlflow.exceptions import MlflowException

    from melodance import tracking
    from melodance.errors import UserError
    from melodance.serve.registry import CHAMPION_URI

    tracking.setup()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        from mlflow.pyfunc import scoring_server

        try:
            model = scoring_server.load_model_with_mlflow_config(model_uri)
        except (MlflowException, OSError) as e:
            hint = (" (no champion registered yet: train and `melodance register` a model)"
                    if model_uri == CHAMPION_URI else "")
            raise UserError(f"{model_uri}: cannot load the model{hint}: "
                            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from e
    return Guard(scoring_server.init(model))


def is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(model_uri: str, host: str = "127.0.0.1", port: int = 5001) -> int:
    """Serve until SIGINT/SIGTERM; returns the exit code."""
    import uvicorn

    app = build_app(model_uri)
    if not is_loopback(host):
        print(f"warning: serving on {host}: anyone who can reach port {port} can use the "
              "model (there is no authentication; see docs/security-server.md)", file=sys.stderr)
    print(f"melodance serve: {model_uri} on http://{host}:{port} (POST /invocations, GET /ping)",
          file=sys.stderr)
    uvicorn.run(app, host=host, port=port, workers=1, log_level="info",
                timeout_keep_alive=5, limit_concurrency=64, proxy_headers=False,
                server_header=False)
    return 0
