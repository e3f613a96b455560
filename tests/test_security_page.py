"""The page (`melodance ui`) and the model files run only what they should and refuse the rest.

Each exploit of issue 22 is replayed against the real server (a `melodance ui`
process on loopback) and must fail: a pickle given as a model path, a fake MLflow
model served over http, a cross-origin text/plain POST, ``Content-Length: -1``.
A hypothesis fuzz test sends hundreds of malformed requests; each must get a 4xx
and the server must stay up with its memory bounded. Model files load with
``torch.load(weights_only=True)`` and a registered model loads and predicts with
MLflow's pickle deserialisation switched off.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import pickle
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

psutil = pytest.importorskip("psutil")


# ----------------------------------------------------------------------------- helpers

class _Marker:
    """Unpickling this writes a marker file: proof that a pickle ran."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.write_text, (self.path, "unpickled: code ran"))


def _evil_bundle(tmp: Path, marker: Path) -> Path:
    """A file shaped like a model bundle whose loading with weights_only=False runs code."""
    import torch

    path = tmp / "model.pt"
    torch.save({"format": "melodance-bundle-1", "model_config": {}, "dims": [16, 3, 72],
                "hook": _Marker(marker)}, path)
    return path


@contextlib.contextmanager
def _fake_mlflow_artifacts(root: Path):
    """A loopback http server shaped like MLflow's artifact proxy serving ``root``
    (``/mlflow-artifacts/artifacts?path=`` lists, ``/mlflow-artifacts/artifacts/<p>`` reads);
    yields (base URL, list of the paths requested)."""
    hits: list[str] = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):  # noqa: N802
            hits.append(self.path)
            url = urlsplit(self.path)
            prefix = "/mlflow-artifacts/artifacts"
            rel = url.path.removeprefix(prefix).strip("/")
            if not rel:
                rel = parse_qs(url.query).get("path", [""])[0]
                d = root / rel
                files = [{"path": p.name, "is_dir": p.is_dir(),
                          **({} if p.is_dir() else {"file_size": p.stat().st_size})}
                         for p in sorted(d.iterdir())] if d.is_dir() else \
                    [{"path": d.name, "is_dir": False, "file_size": d.stat().st_size}]
                body = json.dumps({"files": files}).encode()
            else:
                body = (root / rel).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/mlflow-artifacts/artifacts", hits
    finally:
        server.shutdown()
        server.server_close()


def _fake_model(folder: Path, marker: Path) -> Path:
    """An MLflow pyfunc model whose python_model.pkl writes ``marker`` when unpickled."""
    import cloudpickle

    model = folder / "fake"
    model.mkdir(parents=True)
    (model / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
        "    python_model: python_model.pkl\n"
        f"    cloudpickle_version: {cloudpickle.__version__}\n"
        f"    python_version: {sys.version.split()[0]}\n"
        "    artifacts:\n      bundle:\n        path: python_model.pkl\n")
    (model / "python_model.pkl").write_bytes(pickle.dumps(_Marker(marker)))
    return model


@contextlib.contextmanager
def _ui(tmp: Path, *args: str, env: dict | None = None):
    """`melodance ui` on a free port as a separate process; yields (proc, base URL, log)."""
    log = tmp / f"ui-{time.monotonic_ns()}.log"
    full_env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
                **(env or {})}
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "melodance.cli", "ui", "--port", "0",
                                 *args], stderr=f, stdout=f, env=full_env)
    url = None
    deadline = time.monotonic() + 120
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        m = re.search(r"serving on (http://\S+)", log.read_text())
        if m:
            url = m.group(1)
        else:
            time.sleep(0.1)
    if url is None:
        proc.kill()
        proc.wait()
        pytest.fail(f"melodance ui did not start:\n{log.read_text()}")
    try:
        yield proc, url, log
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _raw(url: str, method: str, path: str, headers: dict | list | None = None,
         body: bytes = b"", host: str | None = None, timeout: float = 60) -> tuple[int, dict, bytes]:
    """One HTTP request over a plain socket (any header, any Content-Length); (status,
    headers, body). Status 0: the server closed without an answer."""
    u = urlsplit(url)
    items = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host or u.netloc}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in items]
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    data = b""
    with socket.create_connection((u.hostname, u.port), timeout=timeout) as s:
        try:
            s.sendall(head + body)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := s.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
    if not data:
        return 0, {}, b""
    head, _, rest = data.partition(b"\r\n\r\n")
    first, *hl = head.decode("latin-1").split("\r\n")
    hdrs = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in hl)}
    return int(first.split()[1]), hdrs, rest


def _post(url: str, path: str, obj, extra: dict | None = None) -> tuple[int, dict]:
    body = json.dumps(obj).encode()
    status, _, data = _raw(url, "POST", path, {"Content-Type": "application/json",
                                               "Content-Length": str(len(body)),
                                               **(extra or {})}, body)
    return status, json.loads(data or b"{}")


def _get(url: str, path: str) -> tuple[int, dict]:
    status, _, data = _raw(url, "GET", path)
    return status, json.loads(data or b"{}")


def _wait_job(url: str, job_id: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _, s = _get(url, f"/api/jobs/{job_id}")
        if s["state"] in ("done", "error"):
            return s
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished after {timeout_s} s")


def _rss_mib(proc) -> float:
    return psutil.Process(proc.pid).memory_info().rss / 2**20


@pytest.fixture(scope="module")
def page(tiny_bundle, synth_corpus, tmp_path_factory):
    """One `melodance ui` (the tiny model, the embedded corpus) for the tests that do not
    stop it; yields (proc, url, log)."""
    tmp = tmp_path_factory.mktemp("page")
    with _ui(tmp, "--model", str(tiny_bundle), "--data", str(synth_corpus)) as p:
        yield p


# ----------------------------------------------------------------------------- models

def test_pickle_as_model_path_is_refused_and_runs_nothing(page, tmp_path):
    _, url, _ = page
    marker = tmp_path / "MARKER"
    evil = _evil_bundle(tmp_path, marker)
    answers = []
    for route, extra in (("/api/dance", {"audio_base64": "AAAA"}),
                         ("/api/compare", {"sequence": "DANCE_C_1"})):
        status, body = _post(url, route, {**extra, "model": str(evil), "duration_s": 2})
        answers.append((route, status, body))
        if status == 202:  # accepted: give the job its chance to load the model
            _wait_job(url, body["id"])
    assert not marker.exists(), f"the pickle ran: {answers}"
    for route, status, body in answers:
        assert status == 400, (route, status, body)
        assert str(tmp_path) not in body["error"] and "model.pt" not in body["error"]

    # Given on the command line (trusted), the file is still read as data only: refused.
    from melodance.models.bundle import DanceBundle
    from melodance.serve.registry import load_bundle

    with pytest.raises(ValueError, match="not a melodance model bundle"):
        load_bundle(evil)
    with pytest.raises(ValueError, match="not a melodance model bundle"):
        DanceBundle.load(evil)
    assert not marker.exists(), "the pickle ran"


def test_error_texts_do_not_tell_whether_a_path_exists(page, tmp_path):
    _, url, _ = page
    (tmp_path / "exists.pt").write_bytes(b"not a model")
    answers = {_post(url, "/api/dance", {"audio_base64": "AAAA", "model": p})[1]["error"]
               for p in (str(tmp_path / "exists.pt"), str(tmp_path / "absent.pt"), "/etc/passwd",
                         "/nonexistent/model.pt")}
    assert len(answers) == 1, answers
    assert "/" not in answers.pop().replace("/api/models", "")


def test_fake_model_over_http_is_refused_and_fetches_nothing(page, tmp_path):
    _, url, _ = page
    marker = tmp_path / "MARKER"
    _fake_model(tmp_path / "served", marker)
    with _fake_mlflow_artifacts(tmp_path / "served") as (base, hits):
        uri = f"{base}/fake"
        answers = []
        for route, extra in (("/api/dance", {"audio_base64": "AAAA"}),
                             ("/api/compare", {"sequence": "DANCE_C_1"})):
            status, body = _post(url, route, {**extra, "model": uri, "duration_s": 2})
            answers.append((route, status, body))
            if status == 202:  # accepted: give the job its chance to load the model
                _wait_job(url, body["id"])
        assert not marker.exists(), f"the fake model's pickle ran: {answers}"
        assert hits == [], f"the server fetched {hits}"
        assert [a[1] for a in answers] == [400, 400], answers
        # Even as trusted input, load_bundle takes only models:/ and runs:/ URIs.
        from melodance.errors import UserError
        from melodance.serve.registry import load_bundle

        with pytest.raises(UserError, match="not a model this command loads"):
            load_bundle(uri)
        assert hits == [], f"the server fetched {hits}"
    assert not marker.exists(), "the fake model's pickle ran"


@pytest.fixture(scope="module")
def registry(tiny_bundle, tmp_path_factory):
    """A fresh MLflow store with the tiny model logged once and registered three times
    (versions 1-3; version 3 is the champion); yields the tracking URI."""
    tmp = tmp_path_factory.mktemp("registry")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("MELODANCE_ARTIFACT_ROOT", (tmp / "mlartifacts").as_uri())
    mp.delenv("DVC_EXP_NAME", raising=False)
    import logging

    import mlflow

    from melodance import tracking
    from melodance.serve.pyfunc import log_dance_model
    from melodance.serve.registry import register_version, set_champion

    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler = Keep(level=logging.WARNING)
    logging.getLogger("mlflow").addHandler(handler)
    try:
        tracking.setup()
        with mlflow.start_run() as run:
            log_dance_model(tiny_bundle)
        for _ in range(3):
            version = register_version(run.info.run_id, {})
        set_champion(version)
    finally:
        logging.getLogger("mlflow").removeHandler(handler)
    try:
        yield {"uri": uri, "run_id": run.info.run_id, "log": records, "tmp": tmp}
    finally:
        mp.undo()


def test_model_is_logged_from_code_and_loads_without_unpickling(registry, tmp_path):
    """The registered model holds a code file, no pickle; MLflow loads and serves it with
    pickle deserialisation switched off (MLFLOW_ALLOW_PICKLE_DESERIALIZATION=false)."""
    assert not [m for m in registry["log"] if "CloudPickle" in m or "cloudpickle" in m], \
        registry["log"]
    arts = list(Path(registry["tmp"], "mlartifacts").rglob("MLmodel"))
    assert arts
    for mlmodel in arts:
        import yaml

        flavor = yaml.safe_load(mlmodel.read_text())["flavors"]["python_function"]
        assert "python_model" not in flavor and Path(flavor["model_code_path"]).name == \
            "model_code.py", flavor
        assert not list(mlmodel.parent.glob("*.pkl"))
    code = """
import json, sys
import numpy as np
import mlflow.pyfunc
m = mlflow.pyfunc.load_model("models:/melodance/1")
rng = np.random.default_rng(0)
out = m.predict({"music": rng.random((50, 16)).tolist(), "temporal": np.zeros((50, 3)).tolist()})
print(json.dumps({"frames": out["frames"], "shape": list(np.asarray(out["joints"]).shape),
                  "finite": bool(np.isfinite(out["joints"]).all())}))
"""
    env = {**os.environ, "MLFLOW_TRACKING_URI": registry["uri"],
           "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "false"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res == {"frames": 50, "shape": [50, 23, 3], "finite": True}


def test_page_loads_registry_models_by_id_and_keeps_few(registry, tiny_bundle, tmp_path,
                                                        monkeypatch):
    from melodance.ui.app import MODEL_CACHE, UiApp, UiError

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry["uri"])
    app = UiApp(model=None, data_dir=None, workdir=tmp_path / "jobs")
    try:
        ids = [c["id"] for c in app.models()["choices"]]
        assert ids == ["default", "@champion", "v3", "v2", "v1"]
        labels = set()
        for model_id in ("v1", "v2", "v3", "@champion", "default", "v1"):
            bundle, label = app.bundle(model_id)
            labels.add(label)
            assert len(app._bundles) <= MODEL_CACHE
            assert bundle.model.music_dim == 16
        assert "melodance/1" in labels and any("champion" in lb for lb in labels)
        for bad in ("v99", "@nobody", str(tiny_bundle), "models:/melodance/1",
                    "runs:/" + registry["run_id"] + "/model", "http://127.0.0.1:9/x", 3,
                    ["v1"], "v1; rm -rf /"):
            with pytest.raises(UiError, match="model"):
                app.resolve_model(bad)
    finally:
        app.close()


def test_bundle_file_is_plain_data_for_weights_only(tiny_bundle, tmp_path):
    import torch

    from melodance.models.bundle import FORMAT, DanceBundle

    payload = torch.load(tiny_bundle, map_location="cpu", weights_only=True)
    assert payload["format"] == FORMAT

    def walk(x, where="payload"):
        if isinstance(x, dict):
            for k, v in x.items():
                assert isinstance(k, str), where
                walk(v, f"{where}.{k}")
        elif isinstance(x, (list, tuple)):
            for i, v in enumerate(x):
                walk(v, f"{where}[{i}]")
        else:
            assert x is None or isinstance(x, (str, int, float, bool, torch.Tensor)), \
                (where, type(x))

    walk(payload)
    assert isinstance(payload["normalizers"]["music"]["offset"], torch.Tensor)
    b = DanceBundle.load(tiny_bundle)
    rng = np.random.default_rng(1)
    j, r = b.generate(rng.random((40, 16)).astype(np.float32), np.zeros((40, 3), np.float32))
    assert j.shape == (40, 23, 3) and np.isfinite(j).all() and np.isfinite(r).all()
    # Saving what is not plain data is an error naming the field, not a pickle.
    bad = DanceBundle(b.model, b.normalizers, {**b.features_meta, "odd": object()})
    with pytest.raises(TypeError, match=r"features_meta\.odd"):
        bad.save(tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


# ----------------------------------------------------------------------------- HTTP

def test_cross_origin_and_rebinding_requests_are_refused(page, tmp_path):
    proc, url, _ = page
    body = json.dumps({"sequence": "DANCE_C_1", "duration_s": 2}).encode()
    n = str(len(body))
    # What a web page in the user's browser can send without a CORS preflight.
    status, _, data = _raw(url, "POST", "/api/compare", {
        "Content-Type": "text/plain;charset=UTF-8", "Content-Length": n,
        "Origin": "http://evil.example", "Sec-Fetch-Site": "cross-site"}, body)
    assert status in (403, 415), data
    for headers in ({"Content-Type": "text/plain", "Content-Length": n},
                    {"Content-Type": "application/json", "Content-Length": n,
                     "Origin": "http://evil.example"},
                    {"Content-Type": "application/json", "Content-Length": n, "Origin": "null"}):
        status, _, data = _raw(url, "POST", "/api/compare", headers, body)
        assert status in (403, 415), (headers, data)
    # DNS rebinding: the attacker's name resolved to 127.0.0.1.
    port = urlsplit(url).port
    for path in ("/api/models", "/api/sequences", "/"):
        status, _, _ = _raw(url, "GET", path, host=f"evil.example:{port}")
        assert status == 403, path
    status, _, _ = _raw(url, "POST", "/api/compare", {
        "Content-Type": "application/json", "Content-Length": n}, body,
        host=f"evil.example:{port}")
    assert status == 403
    # The page itself (same origin) still works.
    status, _, _ = _raw(url, "GET", "/api/models", {"Origin": url.rstrip("/"),
                                                    "Sec-Fetch-Site": "same-origin"})
    assert status == 200
    assert proc.poll() is None


def test_content_length_minus_one_is_refused_with_memory_bounded(page):
    proc, url, _ = page
    u = urlsplit(url)
    before = _rss_mib(proc)
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(b"POST /api/dance HTTP/1.1\r\nHost: " + u.netloc.encode() +
                  b"\r\nContent-Type: application/json\r\nContent-Length: -1\r\n\r\n{\"a\":")
        # The answer comes while the body is still "open": the server does not wait for it.
        first = s.recv(4096)
        assert first.startswith(b"HTTP/1.") and b" 400 " in first.split(b"\r\n")[0], first
        sent = 0
        chunk = b"x" * (1 << 20)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError, TimeoutError):
            for _ in range(64):
                s.sendall(chunk)
                sent += len(chunk)
    time.sleep(0.5)
    after = _rss_mib(proc)
    print(f"Content-Length -1: {sent / 2**20:.0f} MiB offered, server RSS {before:.0f} -> "
          f"{after:.0f} MiB")
    assert after - before < 32, (before, after)
    for cl, want in (("", 411), ("abc", 400), ("1e3", 400), ("+5", 400), ("99999999999", 413),
                     ("5, 6", 400)):
        headers = [("Content-Type", "application/json")]
        if cl:
            headers.append(("Content-Length", cl))
        status, _, data = _raw(url, "POST", "/api/dance", headers, b"{}")
        assert status == want, (cl, status, data)
    status, _, _ = _raw(url, "POST", "/api/dance", [("Content-Type", "application/json"),
                                                    ("Content-Length", "3"),
                                                    ("Content-Length", "30")], b"{}")
    assert status == 400
    assert proc.poll() is None and _get(url, "/api/models")[0] == 200


def test_answers_carry_no_absolute_paths_and_head_never_renders(page, synth_corpus):
    proc, url, log = page
    status, _, data = _raw(url, "GET", "/api/sequences")
    assert status == 200 and str(synth_corpus) not in data.decode()
    assert "/" not in json.loads(data)["data"]
    status, body = _post(url, "/api/compare", {"sequence": "DANCE_C_1", "start_s": 1,
                                               "duration_s": 2})
    assert status == 202, body
    s = _wait_job(url, body["id"])
    assert s["state"] == "done", s["error"]
    text = json.dumps(s)
    assert str(synth_corpus) not in text and "/tmp" not in text
    base = f"/api/jobs/{body['id']}"
    status, _, data = _raw(url, "HEAD", f"{base}/dance.mp4")
    assert status == 404 and data == b""
    status, _, _ = _raw(url, "HEAD", f"{base}/dance.mp4")
    assert status == 404  # still not rendered
    status, _, _ = _raw(url, "HEAD", f"{base}/motion.bvh")
    assert status == 404
    status, _, data = _raw(url, "GET", f"{base}/motion.bvh")
    assert status == 200 and data.startswith(b"HIERARCHY")
    status, hdrs, data = _raw(url, "HEAD", f"{base}/motion.bvh")
    assert status == 200 and data == b"" and int(hdrs["content-length"]) > 0

    # A client that leaves in the middle of a download: no traceback in the server's log.
    u = urlsplit(url)
    for _ in range(5):
        s = socket.create_connection((u.hostname, u.port), timeout=60)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(f"GET {base}/audio.wav HTTP/1.1\r\nHost: {u.netloc}\r\n\r\n".encode())
        s.recv(100)
        # RST instead of FIN: the server's next write fails at once.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(1.0)
    assert _get(url, "/api/models")[0] == 200 and proc.poll() is None
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_job_queue_is_bounded(tiny_bundle, synth_corpus, tmp_path):
    """A full queue answers Busy (HTTP 429); the worker is held on the model lock, so the
    test does not depend on how fast a job runs."""
    from melodance.ui.app import Busy, UiApp

    app = UiApp(model=str(tiny_bundle), data_dir=synth_corpus, workdir=tmp_path / "jobs",
                max_pending=2)
    try:
        with app._model_lock:  # the first job blocks in "loading the model"
            jobs = [app.submit_compare({"sequence": "DANCE_C_1", "duration_s": 2})
                    for _ in range(2)]
            with pytest.raises(Busy, match="busy"):
                app.submit_compare({"sequence": "DANCE_C_1", "duration_s": 2})
        deadline = time.monotonic() + 300
        while any(j.state not in ("done", "error") for j in jobs) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert [j.state for j in jobs] == ["done", "done"], [j.error for j in jobs]
        app.submit_compare({"sequence": "DANCE_C_1", "duration_s": 2})  # room again
    finally:
        app.close()


def test_sigterm_removes_uploaded_songs(tiny_bundle, tmp_path):
    tmpdir = tmp_path / "tmpdir"
    tmpdir.mkdir()
    song = np.sin(np.arange(44100 * 3) * 2 * np.pi * 440 / 44100).astype(np.float32)
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, song, 44100, format="WAV")
    with _ui(tmp_path, "--model", str(tiny_bundle), "--data", str(tmp_path / "none"),
             env={"TMPDIR": str(tmpdir)}) as (proc, url, log):
        status, body = _post(url, "/api/dance", {
            "audio_base64": base64.b64encode(buf.getvalue()).decode(), "filename": "a.wav"})
        assert status == 202, body
        left = [p for p in tmpdir.rglob("*") if p.is_file()]
        assert any(p.name.startswith("song") for p in left), left
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143, log.read_text()
    assert list(tmpdir.iterdir()) == [], list(tmpdir.rglob("*"))


def test_non_loopback_host_needs_a_token_and_warns(tiny_bundle, tmp_path):
    from melodance.ui.app import UiApp
    from melodance.ui.server import make_server

    app = UiApp(model=str(tiny_bundle), workdir=tmp_path / "jobs")
    try:
        with pytest.raises(ValueError, match="needs a token"):
            make_server(app, "0.0.0.0", 0)
        with pytest.raises(ValueError, match="at least 16"):
            make_server(app, "0.0.0.0", 0, token="short")
    finally:
        app.close()
    with _ui(tmp_path, "--host", "0.0.0.0", "--model", str(tiny_bundle)) as (proc, url, log):
        text = log.read_text()
        assert "WARNING" in text and "reachable from other machines" in text
        token = parse_qs(urlsplit(url).query)["token"][0]
        assert len(token) >= 24
        port = urlsplit(url).port
        local = f"http://127.0.0.1:{port}"
        for path in ("/", "/api/models", "/api/sequences", "/api/jobs/x"):
            assert _raw(local, "GET", path)[0] == 401, path
        assert _raw(local, "GET", f"/?token={token}x")[0] == 401
        body = b"{}"
        assert _raw(local, "POST", "/api/dance", {"Content-Type": "application/json",
                                                  "Content-Length": "2"}, body)[0] == 401
        status, hdrs, _ = _raw(local, "GET", f"/?token={token}")
        assert status == 200
        cookie = hdrs["set-cookie"].split(";", 1)[0]
        assert "HttpOnly" in hdrs["set-cookie"] and "SameSite=Strict" in hdrs["set-cookie"]
        assert _raw(local, "GET", "/api/models", {"Cookie": cookie})[0] == 200
        assert _raw(local, "GET", "/api/models",
                    {"Authorization": f"Bearer {token}"})[0] == 200
        # Any Host is fine off loopback (the token is the guard), foreign origins still not.
        assert _raw(local, "GET", "/api/models", {"Cookie": cookie},
                    host=f"192.0.2.1:{port}")[0] == 200
        assert _raw(local, "GET", "/api/models", {"Cookie": cookie,
                                                  "Origin": "http://evil.example"})[0] == 403


# ----------------------------------------------------------------------------- fuzz

def test_fuzz_malformed_requests_get_4xx_and_server_survives(page):
    """Hundreds of random malformed requests (each has at least one defect that must be
    refused): each is answered 4xx; afterwards the server answers and its memory is
    bounded."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    proc, url, _ = page
    port = urlsplit(url).port
    _get(url, "/api/models")
    before = _rss_mib(proc)
    junk = st.text(max_size=40)
    bad_number = st.one_of(st.just(-1), st.just(-0.5), st.just("abc"), st.just("inf"),
                           st.just("nan"), st.just(1e308), st.just(True), st.lists(st.integers(),
                                                                                      max_size=3),
                           st.dictionaries(junk, st.integers(), max_size=2),
                           st.just("9" * 400), st.just(10**400))
    bad_model = st.one_of(
        st.sampled_from(["/etc/passwd", "../model.pt", "http://127.0.0.1:1/m", "s3://b/m",
                         "file:///etc/passwd", "models:/melodance/1", "runs:/x/model", "v0",
                         "v99999", "@nobody", "ftp://x/y", "C:\\\\model.pt"]),
        junk.filter(lambda s: s not in ("", "default")), st.integers(), st.lists(junk, max_size=2))
    bad_b64 = st.text(min_size=1, max_size=50).map(lambda s: "%" + s)
    seq = st.sampled_from(["DANCE_C_1", "DANCE_R_2"])
    # A defect in the JSON object: each one alone must give a 400.
    dance_defects = st.one_of(
        st.fixed_dictionaries({"audio_base64": bad_b64}),
        st.fixed_dictionaries({"audio_base64": st.just("AAAA"), "start_s": bad_number}),
        st.fixed_dictionaries({"audio_base64": st.just("AAAA"), "duration_s": bad_number}),
        st.fixed_dictionaries({"audio_base64": st.just("AAAA"), "model": bad_model}),
        st.fixed_dictionaries({"audio_base64": st.one_of(st.integers(), st.none(), st.just(""),
                                                         st.lists(junk, max_size=2))}),
        st.dictionaries(junk.filter(lambda k: k != "audio_base64"), junk, max_size=3))
    compare_defects = st.one_of(
        st.fixed_dictionaries({"sequence": junk.filter(lambda s: not s.startswith("DANCE_"))}),
        st.fixed_dictionaries({"sequence": seq, "start_s": bad_number}),
        st.fixed_dictionaries({"sequence": seq, "duration_s": bad_number}),
        st.fixed_dictionaries({"sequence": seq, "model": bad_model}),
        st.fixed_dictionaries({"sequence": st.one_of(st.integers(), st.none(),
                                                     st.lists(seq, max_size=2))}))
    route_body = st.one_of(st.tuples(st.just("/api/dance"), dance_defects),
                           st.tuples(st.just("/api/compare"), compare_defects))

    def encoded(obj) -> bytes:
        return json.dumps(obj).encode()

    valid_post = st.one_of(st.tuples(st.just("/api/dance"),
                                     st.just({"audio_base64": "AAAA", "duration_s": 2})),
                           st.tuples(st.just("/api/compare"),
                                     st.just({"sequence": "DANCE_C_1", "duration_s": 2})))

    @st.composite
    def request(draw):
        kind = draw(st.sampled_from(["body", "envelope", "json", "path", "method", "host"]))
        method, headers, host = "POST", {"Content-Type": "application/json"}, None
        if kind == "body":  # well-formed HTTP, a bad field
            path, obj = draw(route_body)
            body = encoded(obj)
        elif kind == "json":  # not a JSON object
            path = draw(st.sampled_from(["/api/dance", "/api/compare"]))
            body = draw(st.one_of(
                st.binary(max_size=200).map(lambda b: b"\x00{" + b),
                st.text(max_size=100).map(lambda t: ("{" + t).encode("utf-8", "surrogatepass")
                                          if not t.endswith("}") else b"{"),
                st.sampled_from([b"[]", b"1", b'"x"', b"null", b"[" * 100000, b"\xff\xfe"])))
        else:
            path, obj = draw(valid_post)
            body = encoded(obj)
            if kind == "envelope":  # a valid form in a bad envelope
                defect = draw(st.sampled_from(["ctype", "length", "origin", "short"]))
                if defect == "ctype":
                    headers["Content-Type"] = draw(st.sampled_from(
                        ["text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", "", "application/jsonx"]))
                elif defect == "length":
                    headers["Content-Length"] = draw(st.sampled_from(
                        ["-1", "-100", "abc", "", "1.5", "0x10", " ", "1" * 30,
                         str(10**12)]))
                elif defect == "origin":
                    headers["Origin"] = draw(st.sampled_from(
                        ["http://evil.example", "null", f"http://localhost.evil:{port}",
                         "file://", "http://127.0.0.1:1"]))
                else:
                    headers["Content-Length"] = str(len(body) + draw(st.integers(1, 1000)))
            elif kind == "path":
                path = draw(st.one_of(
                    st.sampled_from(["/api/dance/x", "/api/jobs", "/api/jobs/../../etc/passwd",
                                     "/api/nothing", "/static/../server.py", "/static/.x",
                                     "/api/jobs/zzz/dance.mp4", "/api/jobs/zzz"]),
                    st.text(alphabet="abcdefghij/._%", max_size=30).map(lambda t: "/x/" + t)))
                method = draw(st.sampled_from(["POST", "GET", "HEAD"]))
            elif kind == "method":
                method = draw(st.sampled_from(["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
                                               "FOO", "CONNECT"]))
            else:
                host = draw(st.sampled_from([f"evil.example:{port}", "example.com",
                                             f"127.0.0.1.nip.io:{port}", "[::2]"]))
        headers.setdefault("Content-Length", str(len(body)))
        return method, path, headers, body, host

    seen = []

    @settings(max_examples=300, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(request())
    def one(req):
        method, path, headers, body, host = req
        if method in ("GET", "HEAD"):
            body = b""
            headers = {}
        status, _, data = _raw(url, method, path, headers, body, host=host)
        seen.append(status)
        assert 400 <= status < 500, (req[:3], body[:200], status, data[:300])

    one()
    assert len(seen) >= 300
    assert proc.poll() is None
    assert _get(url, "/api/models")[0] == 200
    growth = _rss_mib(proc) - before
    print(f"fuzz: {len(seen)} requests, statuses {sorted(set(seen))}, server RSS {before:.0f} -> "
          f"{before + growth:.0f} MiB")
    assert growth < 100, f"server RSS grew {growth:.0f} MiB"
