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
    for name in ("metrics.json", "summary.json"):
        a = json.loads((straight / "out" / name).read_text())
        b = json.loads((killed / "out" / name).read_text())
        assert a == b, name
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


@pytest.fixture(scope="module")
def demo_features(synth_corpus, tmp_path_factory) -> Path:
    """The embedded corpus's features with the project's own params.yaml settings."""
    from melodance.features.config import FeaturesConfig
    from melodance.features.pipeline import build_features
    from melodance.params import load_section

    repo = Path(__file__).resolve().parents[1]
    cfg = load_section("features", FeaturesConfig, repo / "params.yaml")
    out = tmp_path_factory.mktemp("demo") / "features"
    build_features(synth_corpus, out, cfg, progress=False)
    return out


@pytest.mark.slow
def test_autoencoder_beats_the_mean_pose_on_the_embedded_corpus(demo_features):
    """Variant d, at the project's default settings, learns the music-to-motion mapping:
    its validation metric_loss (whole sequences generated from their music) is clearly
    below that of standing still in the mean training pose."""
    import numpy as np

    from melodance.evaluate.metrics import metric_loss_per_frame
    from melodance.features.motion import motion_from_features
    from melodance.features.pipeline import load_features
    from melodance.models import ModelConfig
    from melodance.params import load_section
    from melodance.train.config import TrainConfig
    from melodance.train.loop import fit

    repo = Path(__file__).resolve().parents[1]
    fs = load_features(demo_features)
    # params.yaml leaves the tuned keys at auto; these are the values the demo's study picks.
    model_cfg = load_section("model", ModelConfig, repo / "params.yaml",
                             overrides={"family": "lstm", "hidden_size": 64, "layers": 2, "code_size": 32,
                                        "dropout": 0.0})
    assert model_cfg.variant == "lstm_autoencoder"
    # Three training seeds, judged by their median: one seed's result moves with the CPU's
    # floating-point kernels (seed 0: about 55 cm on earlier machines, docs/ablations; 64 cm on an
    # AMD EPYC without AVX-512, where seeds 1 and 2 gave 57 and 58), not whether the model learns.
    losses = []
    for seed in (0, 1, 2):
        cfg = load_section("train", TrainConfig, repo / "params.yaml",
                           overrides={"batch_size": 8, "lr": 0.002, "recon_weight": 0.5, "seed": seed})
        losses.append(fit(fs, model_cfg, cfg, progress=False).best.val_metric_loss_per_frame)

    mean = np.concatenate([fs.sequences[n].motion for n in fs.split["train"]]).mean(axis=0)
    origin = np.zeros(3, np.float32)
    still = []
    for name in fs.split["val"]:
        true, _ = motion_from_features(fs.sequences[name].motion, origin)
        pose, _ = motion_from_features(np.broadcast_to(mean, fs.sequences[name].motion.shape), origin)
        still.append(metric_loss_per_frame(pose, true) * len(true))
    frames = sum(len(fs.sequences[n].motion) for n in fs.split["val"])
    baseline = sum(still) / frames
    model = float(np.median(losses))
    print(f"val metric_loss per frame: model {losses} (median {model:.1f}) cm, mean pose {baseline:.1f} cm")
    assert model < 0.9 * baseline


FAULT_POINTS = ("model.pt", "metrics.json", "summary.json", "history.csv", "loss_curves.png", "logged",
                "run.json", "swapped")


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
def test_killed_train_never_leaves_outputs_mixed(tmp_path, tiny_features, mlflow_store, capsys):
    """Issue 22 item 8: SIGKILL at each write of the train stage; outputs/train is always
    either the previous training's outputs or the new one's, and register checks they match."""
    from melodance.cli import main
    from melodance.train.stage import check_outputs

    params = RESUME_PARAMS.replace("epochs: 25", "epochs: 2")
    (tmp_path / "params.yaml").write_text(params)
    out = tmp_path / "out"
    env = dict(os.environ)
    first = subprocess.run(_train_cmd(tiny_features, out), cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    (out / "NOTES.txt").write_text("the user's own file")
    old = _contents(out)
    check_outputs(out)

    # Another training (another seed) into the same folder, killed at each write.
    (tmp_path / "params.yaml").write_text(params.replace("patience: 100", "patience: 100, seed: 7"))
    for point in FAULT_POINTS:
        proc = subprocess.run(_train_cmd(tiny_features, out), cwd=tmp_path,
                              env={**env, "MELODANCE_FAULT_AT": point},
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == -signal.SIGKILL, (point, proc.returncode, proc.stderr[-2000:])
        now = _contents(out)
        if point != "swapped":
            assert now == old, f"killed at {point}: outputs changed"
        else:
            assert now != old and now["NOTES.txt"] == old["NOTES.txt"]
            run, _ = check_outputs(out)  # all from the new training
            assert run["run_id"] != json.loads(old["run.json"])["run_id"]
    new = _contents(out)

    # register refuses a folder that mixes two trainings, naming the file.
    (out / "model.pt").write_bytes(old["model.pt"])
    assert main(["register", "--train", str(out), "--features", str(tiny_features),
                 "--out", str(tmp_path / "reg")]) == 1
    assert "model.pt: does not belong to run" in capsys.readouterr().err
    (out / "model.pt").write_bytes(new["model.pt"])
    (out / "metrics.json").write_bytes(old["metrics.json"])
    assert main(["register", "--train", str(out), "--features", str(tiny_features),
                 "--out", str(tmp_path / "reg")]) == 1
    assert "metrics.json: does not belong to run" in capsys.readouterr().err
    (out / "metrics.json").write_bytes(new["metrics.json"])
    (out / "summary.json").write_bytes(old["summary.json"])
    assert main(["register", "--train", str(out), "--features", str(tiny_features),
                 "--out", str(tmp_path / "reg")]) == 1
    assert "summary.json: does not belong to run" in capsys.readouterr().err
    (out / "summary.json").write_bytes(new["summary.json"])
    assert main(["register", "--train", str(out), "--features", str(tiny_features),
                 "--out", str(tmp_path / "reg")]) == 0
