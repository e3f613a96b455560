"""The logged pyfunc model, the registry's champion policy, and the real scoring server."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from servers import free_port, http_ok, wait_until


@pytest.fixture
def trained(tmp_path, tiny_features, tiny_params, mlflow_store, monkeypatch):
    """A tiny model trained on the embedded corpus and logged to a fresh MLflow store."""
    from melodance.train.stage import load_configs, run_training

    monkeypatch.chdir(tmp_path)
    model_cfg, train_cfg, _ = load_configs(tiny_params)
    metrics = run_training(tiny_features, tmp_path / "train", model_cfg, train_cfg, progress=False)
    run = json.loads((tmp_path / "train" / "run.json").read_text())
    return {"run_id": run["run_id"], "metrics": metrics, "dir": tmp_path / "train"}


def test_champion_moves_only_to_a_better_model(trained):
    from melodance.serve.registry import champion_version, model_version_tags, promote, register, rollback

    key = "gate_score"
    m = {**trained["metrics"], key: 1.0}
    still = register(trained["run_id"], {**m, key: float("inf"),
                                         "gate_failed": ["still_fraction 1 outside [None, 0.2]"]})
    assert not still.promoted and champion_version() is None  # never the first champion
    assert "still_fraction" in still.reason
    first = register(trained["run_id"], m)
    assert first.promoted and champion_version() == first.version
    worse = register(trained["run_id"], {**m, key: m[key] + 0.5})
    assert not worse.promoted and champion_version() == first.version
    better = register(trained["run_id"], {**m, key: m[key] - 0.5})
    assert better.promoted and champion_version() == better.version
    tags = model_version_tags(better.version)
    assert tags["data_hash"] and tags["git_commit"] and "metric.gate_score" in tags
    assert "metric.best_val_metric_loss_per_frame" in tags  # reported, not decisive
    assert rollback() == first.version
    assert champion_version() == first.version
    promote(worse.version)
    assert champion_version() == worse.version
    with pytest.raises(ValueError, match="no version 99"):
        promote("99")


def _post(url: str, payload) -> tuple[int, dict]:
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.mark.slow
def test_scoring_server_song_features_and_bad_requests(trained, real_data, mlflow_store, tmp_path):
    from melodance.data.layout import read_sequence
    from melodance.features.config import FeaturesConfig
    from melodance.features.music import song_features
    from melodance.serve.registry import promote, register

    # The 2-epoch model stands still, so the gate keeps it out; a person promotes it to serve it.
    promote(register(trained["run_id"], {**trained["metrics"], "gate_score": float("inf"),
                                         "gate_failed": ["stands still"]}).version)
    port = free_port()
    env = dict(os.environ, MLFLOW_TRACKING_URI=mlflow_store)
    log = open(tmp_path / "server.log", "w")
    # `melodance serve` as installed (MLflow's scoring app behind the guard, uvicorn in
    # process): it works whether or not the venv's bin folder is on PATH.
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "melodance"), "serve", "--model",
         "models:/melodance@champion", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(base + "/ping"), "scoring server", 120, tmp_path / "server.log", server)

        seq = read_sequence(real_data / "DANCE_C_2")
        start_s, duration_s = seq.start_frame / 25, seq.span_frames / 25
        song = base64.b64encode(Path(seq.audio_path).read_bytes()).decode()
        code, out = _post(base + "/invocations", {"inputs": {
            "audio_base64": song, "start_s": start_s, "duration_s": duration_s}})
        assert code == 200, out
        pred = out["predictions"]
        joints = np.asarray(pred["joints"])
        assert joints.shape == (seq.span_frames, 23, 3)
        assert np.asarray(pred["root"]).shape == (seq.span_frames, 3)
        assert pred["fps"] == 25.0

        feats = song_features(seq.audio_path, start_s, 300, FeaturesConfig())
        code, out = _post(base + "/invocations", {"inputs": {
            "music": feats["music"].tolist(), "temporal": feats["temporal"].tolist()}})
        assert code == 200, out
        assert np.asarray(out["predictions"]["joints"]).shape == (300, 23, 3)

        music = feats["music"][:50]
        nan = music.copy()
        nan[3, 2] = float("nan")
        bad = {
            "wrong shape": {"inputs": {"music": music[:, :10].tolist(),
                                       "temporal": feats["temporal"][:50].tolist()}},
            "NaN": {"inputs": {"music": np.where(np.isnan(nan), 0, nan).tolist(),
                               "temporal": [[float("nan")] * 3] * 50}},
            "empty": {"inputs": {"music": [], "temporal": []}},
            "not audio": {"inputs": {"audio_base64": base64.b64encode(b"hello" * 1000).decode()}},
            "not base64": {"inputs": {"audio_base64": "%%%not base64%%%"}},
            "too long": {"inputs": {"music": np.zeros((20000, 16)).tolist(),
                                    "temporal": np.zeros((20000, 3)).tolist()}},
            "no fields": {"inputs": {"song": 1}},
            "not json": b"{this is not json",
        }
        for name, payload in bad.items():
            code, out = _post(base + "/invocations", payload)
            assert 400 <= code < 500, (name, code, out)
            assert set(out) == {"error"} and out["error"], (name, out)
            assert len(json.dumps(out)) < 1000, name  # never the request echoed back
        assert http_ok(base + "/ping")  # still up
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
