"""Benchmark: the scoring server (`melodance serve`) on loopback.

Set-up, all in a temporary folder: a model of the ``params.yaml`` size trained
for one epoch on the real data's features (``train.stage.run_training``, the
train stage itself, logged to a fresh SQLite MLflow store), registered and
made champion (``serve.registry.register``), then served by
``melodance serve`` itself (MLflow's scoring app behind the guard of
``melodance.serve.server``, one uvicorn worker in process).

Requests (``/invocations``) carry 30 s of a real song:

- as features: the raw ``music`` [750, 16] and ``temporal`` [750, 3] of the span;
- as audio: a 30 s MP3 cut from the song (base64), features extracted by the server.

Latency: requests one at a time, features and audio in turns (median, p95;
the client's JSON decoding included). Throughput: 4 concurrent clients
sending back to back for a fixed time (requests per second). For reference,
the same requests answered in-process by ``serve.predict.predict`` (no HTTP,
no JSON). Peak memory: summed RSS of the server's process tree, sampled.

    python benchmarks/bench_serve.py [--quick] [--json rows.json] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402

SONG_S = 30.0
CLIENTS = 4


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url: str, body: bytes) -> dict:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"{url}: HTTP {e.code}: {e.read()[:500]!r}") from e


def train_and_register(feats_dir: Path, work: Path, epochs: int) -> tuple[str, Path]:
    """Train the params.yaml-sized model, log it to the store in MLFLOW_TRACKING_URI,
    register it as champion; returns (run id, bundle path)."""
    from melodance.models import ModelConfig
    from melodance.params import load_section
    from melodance.serve.registry import register
    from melodance.train.config import TrainConfig
    from melodance.train.stage import run_training

    params = REPO / "params.yaml"
    model_cfg = load_section("model", ModelConfig, params).model_copy(
        update={"variant": "lstm_autoencoder"})
    train_cfg = load_section("train", TrainConfig, params).model_copy(update={
        "epochs": epochs, "threads": 1, "checkpoint_dir": str(work / "checkpoints")})
    metrics = run_training(feats_dir, work / "train", model_cfg, train_cfg, progress=False)
    run_id = json.loads((work / "train" / "run.json").read_text())["run_id"]
    reg = register(run_id, metrics)
    if not reg.promoted:
        raise RuntimeError(f"fresh store, yet the model was not made champion: {reg.reason}")
    return run_id, work / "train" / "model.pt"


def requests_for(data: Path, work: Path) -> tuple[dict, dict, str]:
    """The two request bodies for 30 s of a real song, and the song's name."""
    import soundfile as sf

    from melodance.data.layout import read_corpus
    from melodance.features.config import FeaturesConfig
    from melodance.features.music import song_features
    from melodance.params import load_section

    cfg = load_section("features", FeaturesConfig, REPO / "params.yaml")
    n = int(round(SONG_S * cfg.fps))
    seq = next(s for s in read_corpus(data) if s.n_frames >= n)
    f = song_features(seq.audio_path, seq.start_s, n, cfg)
    features = {"inputs": {"music": f["music"].tolist(), "temporal": f["temporal"].tolist()}}
    # A 30 s song as a client would send it: an MP3 file of that length.
    with sf.SoundFile(str(seq.audio_path)) as src:
        sr = src.samplerate
        src.seek(int(round(seq.start_s * sr)))
        clip = src.read(int(SONG_S * sr), dtype="float32", always_2d=True)
    mp3 = work / "song30.mp3"
    sf.write(str(mp3), clip, sr, format="MP3")
    audio = {"inputs": {"audio_base64": base64.b64encode(mp3.read_bytes()).decode(),
                        "duration_s": SONG_S}}
    return features, audio, seq.name


def start_server(port: int, env: dict, log: Path) -> subprocess.Popen:
    cmd = [str(Path(sys.executable).parent / "melodance"), "serve", "--host", "127.0.0.1",
           "--port", str(port)]
    with open(log, "w") as f:
        return subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)


def wait_ready(base: str, server: subprocess.Popen, log: Path, timeout_s: float = 180) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if server.poll() is not None:
            raise RuntimeError(f"server exited ({server.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if urllib.request.urlopen(base + "/ping", timeout=2).status == 200:
                return time.perf_counter() - t0
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server not ready after {timeout_s} s:\n{log.read_text()[-3000:]}")


def concurrent_rate(url: str, body: bytes, clients: int, seconds: float) -> tuple[float, int]:
    """Requests per second completed by ``clients`` threads sending back to back."""
    done, errors = [0] * clients, []
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        while time.perf_counter() < stop:
            try:
                post(url, body)
            except Exception as e:  # noqa: BLE001 - reported after the run
                errors.append(repr(e))
                return
            done[i] += 1

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} client errors, first: {errors[0]}")
    return sum(done) / wall, sum(done)


def server_side_costs(bundle, body: bytes) -> str:
    """Where a request's time goes inside the server, measured in-process with MLflow's own
    scoring-server functions (private API: on failure, say so instead of failing)."""
    import io

    try:
        from mlflow.pyfunc import scoring_server as ss

        from melodance.serve.predict import predict

        def best_ms(fn, n: int = 5):
            out, ts = None, []
            for _ in range(n):
                t0 = time.perf_counter()
                out = fn()
                ts.append((time.perf_counter() - t0) * 1e3)
            return out, min(ts)

        parsed, parse_ms = best_ms(lambda: ss._parse_json_data(body.decode(), None, None))
        out, pred_ms = best_ms(lambda: predict(bundle, parsed.data))

        def encode() -> str:
            buf = io.StringIO()
            ss.predictions_to_json(out, buf)
            return buf.getvalue()

        text, enc_ms = best_ms(encode)
    except Exception as e:  # noqa: BLE001 - a diagnostic only
        return f"server-side breakdown unavailable ({type(e).__name__}: {e})"
    return (f"in the server: parse request {parse_ms:.0f} ms, predict {pred_ms:.0f} ms, encode "
            f"response {enc_ms:.0f} ms ({len(text) / 1e6:.1f} MB of JSON)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(ap)
    ap.add_argument("--workdir", default=None, help="reuse real features built here")
    ap.add_argument("--data", default=str(C.SHARED_DATA))
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--keep-model", default=None,
                    help="copy the trained bundle here (run_all.py hands it to bench_render.py)")
    args = ap.parse_args()
    n_lat = args.repeat or (5 if args.quick else 20)
    rate_s = 3.0 if args.quick else 10.0

    with tempfile.TemporaryDirectory(prefix="bench-serve-") as td:
        work = Path(td)
        base_dir = Path(args.workdir) if args.workdir else work
        feats_dir, _ = C.ensure_real_features(base_dir / "features_real", args.data)
        # A fresh store for this benchmark only; never the project's mlflow.db.
        store = {"MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
                 "MELODANCE_ARTIFACT_ROOT": (work / "mlartifacts").as_uri()}
        os.environ.update(store)
        os.environ.pop("DVC_EXP_NAME", None)
        cwd = os.getcwd()
        os.chdir(work)  # relative paths of the train stage (checkpoints) stay in here
        try:
            t0 = time.perf_counter()
            _, bundle_path = train_and_register(feats_dir, work, args.epochs)
            setup_s = time.perf_counter() - t0
        finally:
            os.chdir(cwd)
        if args.keep_model:
            shutil.copy2(bundle_path, args.keep_model)
        features, audio, song = requests_for(Path(args.data), work)
        bodies = {"features": json.dumps(features).encode(), "audio": json.dumps(audio).encode()}

        # In-process reference: the same requests without HTTP and JSON.
        from melodance.models.bundle import DanceBundle
        from melodance.serve.predict import predict

        bundle = DanceBundle.load(bundle_path)
        inproc = C.alternate({k: (lambda r=r: predict(bundle, r["inputs"]))
                              for k, r in (("features", features), ("audio", audio))},
                             max(3, n_lat // 4))

        costs = {k: server_side_costs(bundle, b) for k, b in bodies.items()}

        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = work / "server.log"
        server = start_server(port, dict(os.environ, **store), log)
        try:
            start_s = wait_ready(url, server, log)
            with C.TreePeak(server.pid) as mem:
                for body in bodies.values():  # warm-up: first request loads lazily
                    post(url + "/invocations", body)
                out = post(url + "/invocations", bodies["features"])["predictions"]
                frames = np.asarray(out["joints"]).shape
                if frames != (int(SONG_S * 25), 23, 3):
                    raise RuntimeError(f"unexpected response shape {frames}")
                lat = C.alternate({k: (lambda b=b: post(url + "/invocations", b))
                                   for k, b in bodies.items()}, n_lat, warmup=False)
                rates = {}
                for k, b in bodies.items():
                    rates[k] = concurrent_rate(url + "/invocations", b, CLIENTS, rate_s)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    load = os.getloadavg()[0]
    rows = []
    for k, what in (("features", "features [750, 16] + [750, 3]"), ("audio", "a 30 s MP3")):
        ms = [s * 1e3 for s in lat[k]]
        ref = C.median(inproc[k]) * 1e3
        for stat, val in (("median", C.median(ms)), ("p95", C.percentile(ms, 95))):
            rows.append(C.Row(f"serving latency {stat}, 30 s song as {what}", "ms", val, None,
                              False, "report", None,
                              f"{len(ms)} requests; in-process predict() {ref:.0f} ms; "
                              f"{costs[k]}",
                              {"ours": ms, "in_process_ms": [s * 1e3 for s in inproc[k]]},
                              mem.peak_mb, "serving"))
    for k in bodies:
        rate, n = rates[k]
        rows.append(C.Row(f"serving throughput, {CLIENTS} concurrent clients, {k}", "requests/s",
                          rate, None, True, "report", None,
                          f"{n} requests in {rate_s:.0f} s; one uvicorn worker (the default)",
                          {"ours": [rate]}, mem.peak_mb, "serving"))
    rows.append(C.Row("scoring server start to first /ping", "s", start_s, None, False,
                      "report", None, "melodance serve, model from the registry",
                      {"ours": [start_s]}, None, "serving"))
    for r in rows:
        r.note += f"; load {load:.1f}"
    print(f"song {song}; model trained and registered in {setup_s:.0f} s")
    C.print_rows(rows)
    C.write_rows(args.json, rows, song=song, setup_s=setup_s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
