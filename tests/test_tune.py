"""Optuna tuning: parallel workers on one journal-file study, nested MLflow runs,
pruned trials KILLED, a killed worker's trial failed and retried."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from melodance.tune.study import Setup

TUNE_PARAMS = """
model: {variant: lstm_autoencoder, hidden_size: 16, layers: 1, code_size: 8, mlp_hidden: 16, dropout: 0.0}
train: {batch_size: 32, threads: 1}
tune:
  n_trials: 6
  epochs: 3
  pruner: median
  storage: STORAGE
  space:
    train.lr: {low: 0.0001, high: 0.01, log: true}
    model.hidden_size: {choices: [8, 16]}
"""


def _params(tmp_path, storage) -> str:
    p = tmp_path / "params.yaml"
    p.write_text(TUNE_PARAMS.replace("STORAGE", str(storage)))
    return str(p)


@pytest.mark.slow
def test_two_workers_one_study(tmp_path, tiny_features, mlflow_store, monkeypatch):
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.trial import TrialState

    from melodance.tune.study import run_tune

    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path, tmp_path / "journal.log")
    best = run_tune(tiny_features, tmp_path / "tune", params, workers=2)

    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "journal.log")))
    study = optuna.load_study(study_name=best["study"], storage=storage)
    trials = study.get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) >= 6
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert {t.user_attrs["worker"] for t in trials} == {0, 1}  # both workers ran trials

    client = MlflowClient(mlflow_store)
    exp = client.get_experiment_by_name("melodance")
    parents = client.search_runs([exp.experiment_id], "tags.`melodance.stage` = 'tune'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    children = client.search_runs([exp.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    by_trial = {}
    for c in children:
        by_trial.setdefault(int(c.data.tags["melodance.trial"]), []).append(c)
    assert sorted(by_trial) == sorted(numbers)  # exactly one nested run per trial
    assert all(len(v) == 1 for v in by_trial.values())
    states = {t.number: t.state for t in trials}
    for number, (run,) in by_trial.items():
        expected = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED",
                    TrialState.FAIL: "FAILED"}[states[number]]
        assert run.info.status == expected
        assert len(client.get_metric_history(run.info.run_id, "val_loss")) >= 1
    # The parent carries the best trial's parameters and value, and Optuna's plots.
    assert parent.data.params["best.train.lr"] == str(best["params"]["train.lr"])
    assert parent.data.metrics["best_value"] == pytest.approx(study.best_value)
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/optimization_history.png" in arts
    saved = json.loads((tmp_path / "tune" / "best_params.json").read_text())
    assert saved["params"] == study.best_params


@pytest.mark.slow
def test_killed_worker_trial_fails_and_study_continues(tmp_path, tiny_features, mlflow_store,
                                                       monkeypatch):
    import optuna
    from optuna.trial import TrialState

    from melodance import tracking
    from melodance.params import load_section
    from melodance.tune.config import TuneConfig
    from melodance.tune.study import make_storage, run_worker

    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path, tmp_path / "journal.log")
    cfg = load_section("tune", TuneConfig, params)
    study = optuna.create_study(study_name="kill-test", storage=make_storage(cfg))
    tracking.setup()
    with tracking.stage_run("tune", run_name="parent") as parent:
        setup = Setup(str(tiny_features), params, "kill-test", parent.info.run_id)
        env = dict(os.environ)
        proc = subprocess.Popen([sys.executable, "-m", "melodance.tune.worker", setup.to_json(), "0"],
                                env=env)
        deadline = time.time() + 120
        while time.time() < deadline:
            running = study.get_trials(states=(TrialState.RUNNING,))
            if running and running[0].user_attrs.get("pid") == proc.pid:
                break
            time.sleep(0.2)
        else:
            proc.kill()
            pytest.fail("worker never started a trial")
        killed_number = running[0].number
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # A new worker marks the dead worker's trial failed, retries it, finishes the study.
        run_worker(setup, 1)
    trials = study.get_trials()
    by_number = {t.number: t for t in trials}
    assert by_number[killed_number].state == TrialState.FAIL
    retried = [t for t in trials if t.user_attrs.get("retried_from") == killed_number]
    assert len(retried) == 1 and retried[0].params == by_number[killed_number].params
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) >= 6
    assert not study.get_trials(states=(TrialState.RUNNING,))
