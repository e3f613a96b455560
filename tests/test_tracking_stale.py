"""Stale-run cleanup judges only this host's runs (issue 22 item 9), on a real MLflow store."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_runs_are_tagged_with_host_boot_and_pid_namespace(mlflow_store):
    from mlflow.tracking import MlflowClient

    from melodance import tracking

    with tracking.stage_run("validate") as run:
        run_id = run.info.run_id
    tags = MlflowClient(mlflow_store).get_run(run_id).data.tags
    here = tracking.machine_tags()
    for k in ("melodance.host", "melodance.boot_id", "melodance.pid_ns", "melodance.pid"):
        assert tags[k], k
    assert tags["melodance.host"] == here["melodance.host"]
    assert tags["melodance.boot_id"] == here["melodance.boot_id"]


def test_close_stale_runs_leaves_other_hosts_and_namespaces_alone(mlflow_store):
    from mlflow.tracking import MlflowClient

    from melodance import tracking

    if tracking.boot_id() == "unknown":
        pytest.skip("no /proc/sys/kernel/random/boot_id (not Linux)")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = gone.pid  # exited and reaped: no process has this pid now
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    here = tracking.machine_tags()
    cases = {
        # name: (tags, expected status after the cleanup)
        "other host, dead pid": ({**here, "melodance.host": "another-machine",
                                  "melodance.pid": str(dead)}, "RUNNING"),
        "other pid namespace": ({**here, "melodance.pid_ns": "pid:[1]",
                                 "melodance.pid": str(dead)}, "RUNNING"),
        "untagged (older melodance)": ({"melodance.pid": str(dead)}, "RUNNING"),
        "this host, live pid": ({**here, "melodance.pid": str(live.pid)}, "RUNNING"),
        "this host, dead pid": ({**here, "melodance.pid": str(dead)}, "KILLED"),
        "this host, earlier boot": ({**here, "melodance.boot_id": "0" * 8 + "-old-boot",
                                     "melodance.pid": str(live.pid)}, "KILLED"),
    }
    try:
        exp_id = tracking.setup()
        client = MlflowClient(mlflow_store)
        ids = {}
        for name, (tags, _) in cases.items():
            run = client.create_run(exp_id, tags={**tags, "melodance.stage": "train"},
                                    run_name=name)
            ids[name] = run.info.run_id
        assert tracking.close_stale_runs("train") == 2
        for name, (_, want) in cases.items():
            assert client.get_run(ids[name]).info.status == want, name
    finally:
        live.kill()
        live.wait()
