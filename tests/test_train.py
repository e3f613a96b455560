"""Training: kill-and-resume reaches the same result; MLflow runs are never left RUNNING."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

RESUME_PARAMS = """
model: {variant: lstm_autoencoder, hidden_size: 24, layers: 1, code_size: 8, mlp_hidden: 24, dropout: 0.2}
train: {epochs: 25, batch_size: 16, threads: 1, patience: 100, checkpoint_dir: ckpt}
"""


def _train_cmd(features: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "melodance.cli", "train", "--features", str(features),
            "--out", str(out), "--no-progress"]


@pytest.mark.slow
def test_kill_and_resume_matches_uninterrupted(tmp_path, tiny_features, mlflow_store):
    from mlflow.tracking import MlflowClient

    env = dict(os.environ)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for d in (straight, killed):
        d.mkdir()
        (d / "params.yaml").write_text(RESUME_PARAMS)

    subprocess.run(_train_cmd(tiny_features, straight / "out"), cwd=straight, env=env, check=True,
                   capture_output=True)

    proc = subprocess.Popen(_train_cmd(tiny_features, killed / "out"), cwd=killed, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    ckpt_dir = killed / "ckpt"
    while time.time() < deadline:
        cks = list(ckpt_dir.glob("train-*.pt")) if ckpt_dir.is_dir() else []
        if cks:
            import torch

            try:
                if torch.load(cks[0], weights_only=False)["epoch"] >= 2:
                    break
            except Exception:  # noqa: BLE001 - caught mid-rename; try again
                pass
        if proc.poll() is not None:
            pytest.fail("training finished before it could be killed")
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("no checkpoint appeared")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "out" / "model.pt").exists()  # no half-written outputs

    again = subprocess.run(_train_cmd(tiny_features, killed / "out"), cwd=killed, env=env,
                           capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    a = json.loads((straight / "out" / "metrics.json").read_text())
    b = json.loads((killed / "out" / "metrics.json").read_text())
    assert a == b
    assert not list(ckpt_dir.glob("train-*.pt"))  # checkpoint removed after success

    client = MlflowClient(mlflow_store)
    exp = client.get_experiment_by_name("melodance")
    runs = client.search_runs([exp.experiment_id], "tags.`melodance.stage` = 'train'")
    statuses = sorted(r.info.status for r in runs)
    assert statuses == ["FINISHED", "FINISHED", "KILLED"]
    resumed = [r for r in runs if r.data.tags.get("melodance.resumed") == "true"]
    assert len(resumed) == 1
    steps = [m.step for m in client.get_metric_history(resumed[0].info.run_id, "val_loss")]
    assert steps == list(range(1, 26))  # whole curve, replayed epochs included


@pytest.mark.slow
def test_sigterm_marks_run_killed(tmp_path, tiny_features, mlflow_store):
    from mlflow.tracking import MlflowClient

    (tmp_path / "params.yaml").write_text(RESUME_PARAMS.replace("epochs: 25", "epochs: 400"))
    proc = subprocess.Popen(_train_cmd(tiny_features, tmp_path / "out"), cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not list((tmp_path / "ckpt").glob("train-*.pt")):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) != 0
    client = MlflowClient(mlflow_store)
    exp = client.get_experiment_by_name("melodance")
    (run,) = client.search_runs([exp.experiment_id], "tags.`melodance.stage` = 'train'")
    assert run.info.status == "KILLED"
