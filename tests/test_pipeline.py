"""The whole pipeline on the embedded corpus, in a temporary copy of the repository,
with the real DVC and a real MLflow SQLite store."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PROJECT_FILES = ("dvc.yaml", "dvc.lock", "params.yaml", "data.dvc", "MLproject", ".dvcignore",
                 ".gitignore", "pyproject.toml")


def run(cmd, cwd, check=True, **kw):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, **kw)
    if check and out.returncode != 0:
        raise AssertionError(f"{cmd} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    return out


def make_repo_copy(dst: Path, **param_overrides) -> Path:
    """A git + DVC repository holding this project's pipeline files and source."""
    dst.mkdir(parents=True)
    for name in PROJECT_FILES:
        if (REPO / name).exists():
            shutil.copy2(REPO / name, dst / name)
    shutil.copytree(REPO / "src", dst / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (dst / ".dvc").mkdir()
    shutil.copy2(REPO / ".dvc" / "config", dst / ".dvc" / "config")
    shutil.copy2(REPO / ".dvc" / ".gitignore", dst / ".dvc" / ".gitignore")
    params = yaml.safe_load((dst / "params.yaml").read_text())
    for key, value in param_overrides.items():
        section, name = key.split("__")
        params.setdefault(section, {})[name] = value
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dst)
    run(["git", "add", "-A"], dst)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init"], dst)
    return dst


def test_synth_matches_data_dvc(tmp_path):
    """`melodance data synth` writes exactly the bytes that data.dvc records."""
    committed = yaml.safe_load((REPO / "data.dvc").read_text())["outs"][0]
    repo = tmp_path / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo)
    run(["dvc", "init", "-q"], repo)
    run(["melodance", "data", "synth"], repo)
    run(["dvc", "add", "-q", "data"], repo)
    fresh = yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]
    assert fresh["md5"] == committed["md5"]
    assert fresh["nfiles"] == committed["nfiles"]
    assert fresh["size"] == committed["size"]


@pytest.mark.slow
def test_default_demo_dances(tmp_path):
    """`make demo`'s pipeline at params.yaml's defaults (the generative family, its step
    floors) on the embedded corpus: the model moves, so the render stage's still rule passes
    its videos without --allow-still and the realism gate registers it as champion."""
    import json

    repo = make_repo_copy(tmp_path / "repo")
    run(["melodance", "data", "synth"], repo)
    out = run(["dvc", "repro"], repo, timeout=1800)
    said = out.stdout + out.stderr
    assert "trained vqgpt" in said
    headline = json.loads((repo / "outputs" / "evaluate" / "metrics.json").read_text())
    assert 0.5 < headline["energy"] < 2.0, headline
    assert headline["energy"] > 10 * headline["seed_d"]["energy"], headline
    assert len(list((repo / "outputs" / "render").glob("*.mp4"))) >= 1
    assert "is now champion" in said, said[-3000:]


@pytest.mark.slow
def test_dvc_repro_end_to_end(tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    # 3 epochs of a tiny model do not learn to move: the render stage's still rule
    # would refuse its videos, so this test of the pipeline's mechanics allows them. The
    # LSTM family keeps it fast; the generative family's stage: tests/test_families.py.
    repo = make_repo_copy(tmp_path / "repo", train__epochs=3, model__hidden_size=32,
                          model__mlp_hidden=32, model__code_size=8, model__family="lstm",
                          render__allow_still=True)
    run(["melodance", "data", "synth"], repo)
    status = run(["dvc", "status", "data.dvc"], repo)
    assert "changed" not in status.stdout, status.stdout
    out = run(["dvc", "repro"], repo)
    for stage in ("validate", "features", "train", "train_seed", "evaluate"):
        assert f"Running stage '{stage}'" in out.stdout
    assert (repo / "outputs" / "train" / "model.pt").is_file()
    assert (repo / "outputs" / "evaluate" / "metrics.json").is_file()

    # An MLflow run with train and validation loss per epoch, tagged with commit and data hash.
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("melodance")
    runs = client.search_runs([exp.experiment_id], "tags.`melodance.stage` = 'train'")
    assert len(runs) == 2 and {x.info.status for x in runs} == {"FINISHED"}  # train, train_seed
    import json

    r = client.get_run(json.loads((repo / "outputs" / "train" / "run.json").read_text())["run_id"])
    assert "seed_d" in json.loads((repo / "outputs" / "evaluate" / "metrics.json").read_text())
    for key in ("train_loss", "val_loss", "val_metric_loss"):
        hist = client.get_metric_history(r.info.run_id, key)
        assert [m.step for m in hist] == [1, 2, 3]
    data_md5 = yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]["md5"]
    assert r.data.tags["melodance.data_hash"] == data_md5
    assert len(r.data.tags["melodance.git_commit"]) == 40
    del mlflow

    # Nothing changed: a second repro runs no stage, and the workspace is clean.
    again = run(["dvc", "repro"], repo)
    assert "Running stage" not in again.stdout
    assert "up to date" in run(["dvc", "status"], repo).stdout
