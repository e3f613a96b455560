"""Running as a team, on real engines (docs/team.md): an ``mlflow server`` on
PostgreSQL with its artifacts on S3, Optuna workers sharing one PostgreSQL
study, and a DVC remote on S3. Every server is real and listens on loopback:
PostgreSQL from Debian's packages, the S3 endpoint from moto's server.

The pipeline code is the same as for one person on one machine; only the
settings change (``MLFLOW_TRACKING_URI``, ``tune.storage``, the DVC remote).
Skipped when the servers are not installed, except in CI, where they must run.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import yaml

import servers

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pg():
    with servers.postgres() as cluster:
        yield cluster


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    with servers.s3_server(tmp_path_factory.mktemp("s3")) as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def team_server(pg, s3, tmp_path_factory):
    """The team's tracking server: runs and registry in PostgreSQL, artifacts on S3."""
    backend = pg.create_database("mlflow")
    with servers.mlflow_server(backend, f"s3://{s3.bucket}/mlartifacts", s3,
                               tmp_path_factory.mktemp("mlflow-server")) as uri:
        yield uri


@pytest.fixture
def on_server(team_server, monkeypatch, request) -> str:
    """Point this test's pipeline (and the worker processes it starts) at the server."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", team_server)
    # Clients hold no S3 credentials: artifacts go through the server.
    for key in ("MELODANCE_ARTIFACT_ROOT", "DVC_EXP_NAME", "MLFLOW_S3_ENDPOINT_URL",
                *servers.S3_KEYS):
        monkeypatch.delenv(key, raising=False)
    # One experiment per test: the tests share the server but not their runs.
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", f"team-{request.node.name}")
    return team_server


def test_pipeline_logs_to_postgres_server_and_champion_loads(on_server, pg, s3, tmp_path,
                                                             tiny_features, tiny_params,
                                                             monkeypatch):
    import mlflow
    import psycopg
    from mlflow.tracking import MlflowClient

    from melodance.features.pipeline import load_features
    from melodance.models.bundle import DanceBundle
    from melodance.serve.registry import register
    from melodance.train.stage import load_configs, run_training

    monkeypatch.chdir(tmp_path)
    model_cfg, train_cfg, _ = load_configs(tiny_params)
    metrics = run_training(tiny_features, tmp_path / "train", model_cfg, train_cfg,
                           progress=False)
    run_id = json.loads((tmp_path / "train" / "run.json").read_text())["run_id"]
    reg = register(run_id, {**metrics, "gate_score": 1.0})  # the gate's score (serve.registry)
    assert reg.promoted and reg.champion == reg.version

    # The run, its per-epoch curves and the registry live in the server's PostgreSQL...
    client = MlflowClient(on_server)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [1, 2]
    with psycopg.connect(pg.url("mlflow")) as conn:
        (status,) = conn.execute("SELECT status FROM runs WHERE run_uuid = %s",
                                 (run_id,)).fetchone()
        aliases = conn.execute("SELECT alias, version FROM registered_model_aliases "
                               "WHERE name = 'melodance'").fetchall()
    assert status == "FINISHED"
    assert aliases == [("champion", int(reg.version))]
    # ...its artifacts on S3, and nothing on this machine's disk.
    keys = s3.keys("mlartifacts/")
    assert any(k.endswith("/MLmodel") for k in keys), keys[:20]
    assert any(k.endswith("/model.pt") for k in keys), keys[:20]
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "mlartifacts").exists()

    # The champion loads through the server (registry -> S3 via the proxy) and
    # dances like the bundle that was trained here.
    model = mlflow.pyfunc.load_model("models:/melodance@champion")
    fs = load_features(tiny_features)
    seq = fs.sequences[fs.split["val"][0]]
    music, temporal = seq.music[:100], seq.temporal[:100]
    pred = model.predict({"music": music, "temporal": temporal})
    joints, root = DanceBundle.load(tmp_path / "train" / "model.pt").generate(music, temporal)
    assert pred["joints"].shape == (100, 23, 3)
    np.testing.assert_allclose(pred["joints"], joints, atol=1e-4)
    np.testing.assert_allclose(pred["root"], root, atol=1e-3)


TUNE_PARAMS = """
model: {variant: lstm_autoencoder, hidden_size: 16, layers: 1, code_size: 8, mlp_hidden: 16}
train: {batch_size: 32, threads: 1}
tune:
  n_trials: N_TRIALS
  epochs: 2
  pruner: none
  storage: STORAGE
  heartbeat_s: 1
  study_name: NAME
  space:
    train.lr: {low: 0.0001, high: 0.01, log: true}
    model.hidden_size: {choices: [8, 16]}
"""


def _tune_params(tmp_path: Path, storage: str, name: str, n_trials: int) -> str:
    p = tmp_path / "params.yaml"
    p.write_text(TUNE_PARAMS.replace("STORAGE", storage).replace("NAME", name)
                 .replace("N_TRIALS", str(n_trials)))
    return str(p)


def test_three_optuna_workers_share_one_postgres_study(on_server, pg, tmp_path, tiny_features,
                                                       monkeypatch):
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    from melodance.tune.study import run_tune

    monkeypatch.chdir(tmp_path)
    storage = pg.create_database("optuna_three")
    params = _tune_params(tmp_path, storage, "team-three", n_trials=6)
    best = run_tune(tiny_features, tmp_path / "tune", params, workers=3, progress=False)

    study = optuna.load_study(study_name="team-three", storage=storage)
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers)) == best["n_trials"]
    assert sum(t.state == TrialState.COMPLETE for t in trials) >= 6
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # Several processes really shared the study (each tags its trials).
    per_worker = Counter(t.user_attrs["worker"] for t in trials)
    assert set(per_worker) <= {0, 1, 2} and len(per_worker) >= 2, per_worker
    assert best["value"] == pytest.approx(study.best_value)

    # One nested run per trial on the tracking server, under the study's parent run.
    client = MlflowClient(on_server)
    exp = client.get_experiment_by_name(os.environ["MLFLOW_EXPERIMENT_NAME"])
    (parent,) = client.search_runs([exp.experiment_id], "tags.`melodance.stage` = 'tune'")
    children = client.search_runs([exp.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(int(c.data.tags["melodance.trial"]) for c in children) == sorted(numbers)


def test_killed_worker_trial_is_failed_by_heartbeat_and_retried(on_server, pg, tmp_path,
                                                                tiny_features, monkeypatch):
    import optuna
    from optuna.storages import RetryFailedTrialCallback
    from optuna.trial import TrialState

    from melodance import tracking
    from melodance.params import load_section
    from melodance.tune.config import TuneConfig
    from melodance.tune.study import Setup, make_storage, run_worker

    monkeypatch.chdir(tmp_path)
    storage = pg.create_database("optuna_kill")
    params = _tune_params(tmp_path, storage, "team-kill", n_trials=3)
    cfg = load_section("tune", TuneConfig, params)
    study = optuna.create_study(study_name="team-kill", storage=make_storage(cfg))
    with tracking.stage_run("tune", run_name="parent") as parent:
        setup = Setup(str(tiny_features), params, "team-kill", parent.info.run_id)
        # A worker on "another machine": its own process, which dies without a word.
        proc = subprocess.Popen([sys.executable, "-m", "melodance.tune.worker",
                                 setup.to_json(), "0"])
        try:
            deadline = time.time() + 120
            while time.time() < deadline:
                running = study.get_trials(states=(TrialState.RUNNING,))
                # Kill only once every parameter is drawn: a trial killed between two
                # suggest calls is retried with the drawn ones and fresh draws for the rest.
                if (running and running[0].user_attrs.get("pid") == proc.pid
                        and len(running[0].params) == 2):
                    break
                time.sleep(0.2)
            else:
                pytest.fail("worker never started a trial")
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        killed = running[0].number
        # PostgreSQL cannot see a dead process; only the missing heartbeat tells.
        time.sleep(2 * cfg.heartbeat_s + 1)
        run_worker(setup, 1)
    trials = {t.number: t for t in study.get_trials()}
    assert trials[killed].state == TrialState.FAIL
    retries = [t for t in trials.values()
               if RetryFailedTrialCallback.retried_trial_number(t) == killed]
    assert len(retries) == 1 and retries[0].params == trials[killed].params
    assert sum(t.state == TrialState.COMPLETE for t in trials.values()) >= 3
    assert not [t for t in trials.values() if t.state == TrialState.RUNNING]


def _file_hashes(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_dvc_remote_on_s3_fresh_clone_pulls_identical_data(s3, tmp_path):
    from test_pipeline import make_repo_copy, run

    def credentials(repo: Path) -> None:
        # Each person keeps the keys in .dvc/config.local, which git never sees.
        run(["dvc", "remote", "modify", "--local", "team", "access_key_id",
             servers.S3_KEYS["AWS_ACCESS_KEY_ID"]], repo)
        run(["dvc", "remote", "modify", "--local", "team", "secret_access_key",
             servers.S3_KEYS["AWS_SECRET_ACCESS_KEY"]], repo)

    repo = make_repo_copy(tmp_path / "repo")
    run(["melodance", "data", "synth"], repo)
    run(["dvc", "add", "-q", "data"], repo)
    run(["dvc", "repro", "-q", "validate"], repo)  # a pipeline output to share as well
    run(["dvc", "remote", "add", "-d", "team", f"s3://{s3.bucket}/dvcstore"], repo)
    run(["dvc", "remote", "modify", "team", "endpointurl", s3.endpoint], repo)
    credentials(repo)
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "team remote"],
        repo)
    assert "access_key_id" not in (repo / ".dvc" / "config").read_text()

    # Targets: the stages not run here have no outputs to push.
    run(["dvc", "push", "-q", "data.dvc", "validate"], repo)
    out = yaml.safe_load((repo / "data.dvc").read_text())["outs"][0]
    keys = s3.keys("dvcstore/")
    # DVC 3 stores content under files/md5/xx/yyyy (the .dir manifest included).
    assert f"dvcstore/files/md5/{out['md5'][:2]}/{out['md5'][2:]}" in keys
    assert len(keys) >= out["nfiles"]

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    # data/ and outputs/ belong to DVC, not git, and there is no cache to restore from.
    assert not (clone / "data").exists() and not (clone / "outputs").exists()
    assert not (clone / ".dvc" / "cache").exists()
    credentials(clone)
    run(["dvc", "pull", "-q", "data.dvc", "validate"], clone)
    for folder in ("data", "outputs/validate"):
        assert _file_hashes(clone / folder) == _file_hashes(repo / folder), folder
    status = run(["dvc", "status", "data.dvc", "validate"], clone)
    assert "changed" not in status.stdout, status.stdout  # nothing to re-run
