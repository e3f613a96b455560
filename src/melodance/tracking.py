"""The one place that talks to MLflow.

Where runs go:
- ``MLFLOW_TRACKING_URI`` when set (a team server, see README "Running as a team");
- otherwise a SQLite database ``mlflow.db`` at the project root. Inside a DVC
  stage the root is ``DVC_ROOT``, so runs of ``dvc exp run --temp/--queue``
  (which execute in a copy under ``.dvc/tmp/exps``) land in the real project's
  database instead of a throw-away copy.

Every run is tagged with the git commit, the data hash from ``data.dvc``, the
DVC experiment name (when DVC runs the stage) and the pipeline stage.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from melodance.params import repo_root

DEFAULT_EXPERIMENT = "melodance"
DB_NAME = "mlflow.db"
# The MLflow UI opens an experiment of this kind on its runs (model training) view, not on
# the GenAI traces view.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"


def tracking_uri() -> str:
    """The tracking URI runs are logged to."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{(repo_root() / DB_NAME).as_posix()}"


def artifact_location() -> str | None:
    """Artifact root for newly created experiments (``mlartifacts/`` at the root)."""
    env = os.environ.get("MELODANCE_ARTIFACT_ROOT")
    if env:
        return env
    if tracking_uri().startswith("sqlite:"):
        return (repo_root() / "mlartifacts").as_uri()
    return None  # a tracking server decides


def experiment_name() -> str:
    return os.environ.get("MLFLOW_EXPERIMENT_NAME", DEFAULT_EXPERIMENT)


def _retry(fn, attempts: int = 8, delay_s: float = 0.25):
    """Retry on SQLite lock contention (several processes on one mlflow.db)."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - MLflow wraps sqlite errors in several types
            if "locked" not in str(e) and "duplicate column" not in str(e) or i == attempts - 1:
                raise
            time.sleep(delay_s * (2**i))


def setup() -> str:
    """Point MLflow at our tracking URI and experiment; return the experiment id."""
    import mlflow

    # MLflow copies artifacts between local folders here (logging, registering): a
    # progress bar for that is noise in every stage's log, --no-progress or not.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    mlflow.set_tracking_uri(tracking_uri())
    if os.environ.get("MLFLOW_RUN_ID") and os.environ.get("MLFLOW_EXPERIMENT_ID"):
        # Under `mlflow run`: the project's run already exists in the experiment that
        # `mlflow run --experiment-name` chose; the stage's run is that run.
        exp_id = os.environ["MLFLOW_EXPERIMENT_ID"]
        mlflow.set_experiment(experiment_id=exp_id)
        return exp_id
    name = experiment_name()

    def _ensure():
        exp = mlflow.get_experiment_by_name(name)
        if exp is None:
            try:
                return mlflow.create_experiment(name, artifact_location=artifact_location(),
                                                tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
            except Exception:  # noqa: BLE001 - created meanwhile by another process
                exp = mlflow.get_experiment_by_name(name)
                if exp is None:
                    raise
        if EXPERIMENT_KIND_TAG not in exp.tags:
            mlflow.tracking.MlflowClient().set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG,
                                                              EXPERIMENT_KIND)
        return exp.experiment_id

    exp_id = _retry(_ensure)
    _retry(_follow_moved_checkout)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


# (table, column) pairs of the MLflow SQLite schema that hold artifact locations.
_LOCATION_COLUMNS = (("experiments", "artifact_location"), ("runs", "artifact_uri"),
                     ("logged_models", "artifact_location"), ("model_versions", "storage_location"),
                     ("model_versions", "source"))


def _follow_moved_checkout() -> int:
    """Keep a moved or copied checkout self-contained.

    MLflow stores artifact locations as absolute URIs, so a checkout copied with its
    ``mlflow.db`` would write into, and read from, the original's ``mlartifacts/``. With the
    default store (``mlflow.db`` and ``mlartifacts/`` at the root), locations under another
    folder's ``mlartifacts/`` are rewritten to this root's. Returns the rows rewritten.
    """
    import sqlite3

    db = repo_root() / DB_NAME
    # (MLflow copies the URI it is given into MLFLOW_TRACKING_URI, so compare, don't test the env.)
    if tracking_uri() != f"sqlite:///{db.as_posix()}" or os.environ.get("MELODANCE_ARTIFACT_ROOT"):
        return 0   # a server or an explicit artifact root: nothing is relative to the checkout
    here = (repo_root() / "mlartifacts").as_uri()
    if not db.is_file():
        return 0
    with contextlib.closing(sqlite3.connect(db, timeout=30)) as con, con:
        rows = con.execute("SELECT artifact_location FROM experiments "
                           "WHERE artifact_location LIKE 'file://%/mlartifacts%'").fetchall()
        olds = {loc[:loc.index("/mlartifacts") + len("/mlartifacts")] for (loc,) in rows} - {here}
        tables = {t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        n = 0
        for old in olds:
            for table, col in _LOCATION_COLUMNS:
                if table in tables:
                    n += con.execute(f"UPDATE {table} SET {col} = ? || substr({col}, ?) "  # noqa: S608
                                     f"WHERE {col} = ? OR substr({col}, 1, ?) = ?",
                                     (here, len(old) + 1, old, len(old) + 1, old + "/")).rowcount
    return n


def _git_commit(root: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def data_hash(root: Path | None = None) -> str | None:
    """The md5 that ``data.dvc`` records for ``data/`` (None when absent)."""
    import yaml

    root = root or repo_root()
    # Prefer the working directory's data.dvc (the experiment's copy), then the root's.
    for p in (Path("data.dvc"), root / "data.dvc"):
        if p.is_file():
            with open(p) as f:
                d = yaml.safe_load(f) or {}
            outs = d.get("outs") or [{}]
            return outs[0].get("md5")
    return None


def standard_tags(stage: str | None = None) -> dict[str, str]:
    root = repo_root()
    commit = _git_commit(Path.cwd()) or _git_commit(root) or "unknown"
    tags = {
        "melodance.git_commit": commit,
        "mlflow.source.git.commit": commit,   # the standard tag: the UI links the commit
        "melodance.data_hash": data_hash(root) or "unknown",
        "melodance.pid": str(os.getpid()),
        **machine_tags(),
    }
    if stage:
        tags["melodance.stage"] = stage
    exp = os.environ.get("DVC_EXP_NAME")
    if exp:
        tags["melodance.dvc_exp"] = exp
    return tags


def boot_id() -> str:
    """This boot of this kernel (changes at every reboot); "unknown" off Linux."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def pid_namespace() -> str:
    """The pid namespace of this process (containers on one kernel differ); "unknown" off Linux."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return "unknown"


def machine_tags() -> dict[str, str]:
    """Where a run's process lives: its pid means something only on the same host, the
    same boot and in the same pid namespace (see :func:`close_stale_runs`)."""
    import socket

    return {"melodance.host": socket.gethostname(), "melodance.boot_id": boot_id(),
            "melodance.pid_ns": pid_namespace()}


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` for MLflow params."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, like KeyboardInterrupt, so that no library's
    ``except Exception`` swallows or re-wraps it on the way out."""


@contextlib.contextmanager
def stage_run(stage: str, params: dict | None = None, run_name: str | None = None,
              tags: dict[str, str] | None = None, nested: bool = False,
              run_id: str | None = None, parent_run_id: str | None = None,
              killed_on: tuple[type[BaseException], ...] = ()) -> Iterator[Any]:
    """Open an MLflow run for a pipeline step.

    The run ends FINISHED on success, KILLED on Ctrl-C or SIGTERM and FAILED
    on any other exception, so no run is left RUNNING by a dying process
    (SIGKILL aside: :func:`close_stale_runs` cleans those up).
    Pass ``run_id`` to resume an existing run, ``parent_run_id`` to nest the
    run under a run of another process (Optuna trials), ``killed_on`` for
    exceptions that mean "stopped on purpose" (a pruned trial) rather than failed.
    """
    import mlflow

    setup()
    if parent_run_id is not None and mlflow.active_run() is not None:
        nested = True  # a worker running inside the study's own process
    all_tags = {**standard_tags(stage), **(tags or {})}
    if (stage in FOLLOWS_TRAIN and run_id is None and parent_run_id is None and not nested
            and mlflow.active_run() is None and not os.environ.get("MLFLOW_RUN_ID")
            and os.environ.get("DVC_ROOT")):
        # Only as a DVC stage: then the model is the train stage's (dvc.yaml), whose run
        # outputs/train/run.json names; by hand, `--model` may be any other bundle.
        train = _train_run()
        if train is not None:
            # One pipeline run = one training run in the runs list, with its evaluation and
            # videos nested under it (and tagged, for searches).
            parent_run_id = train.info.run_id
            all_tags["melodance.train_run_id"] = parent_run_id
            variant = train.data.tags.get("melodance.variant")
            if variant:
                all_tags.setdefault("melodance.variant", variant)
    run_name = _run_name(run_name, all_tags, top_level=not nested and parent_run_id is None)
    run = _retry(lambda: mlflow.start_run(run_id=run_id, run_name=run_name, nested=nested,
                                          parent_run_id=parent_run_id,
                                          tags=all_tags if run_id is None else None))
    if run_id is not None:
        mlflow.set_tags(all_tags)
    if params:
        log_params(params)

    prev = signal.getsignal(signal.SIGTERM)

    def _on_term(signum, frame):
        raise Terminated()

    in_main = _is_main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _on_term)
    try:
        yield run
    except (KeyboardInterrupt, Terminated, *killed_on):
        _retry(lambda: mlflow.end_run(status="KILLED"))
        raise
    except BaseException:
        _retry(lambda: mlflow.end_run(status="FAILED"))
        raise
    else:
        _retry(lambda: mlflow.end_run(status="FINISHED"))
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, prev)


FOLLOWS_TRAIN = ("evaluate", "render")   # stages that evaluate the train stage's model
TRAIN_RUN_FILE = Path("outputs/train/run.json")   # relative to where DVC runs the stage


def _train_run():
    """The MLflow run of the model this stage works on (``outputs/train/run.json``), or None."""
    import json

    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        run_id = json.loads(TRAIN_RUN_FILE.read_text())["run_id"]
        return MlflowClient(tracking_uri()).get_run(run_id)
    except (OSError, ValueError, KeyError, TypeError, MlflowException):
        return None   # no train stage output here, or its run is in another store


def _run_name(run_name: str | None, tags: dict[str, str], top_level: bool) -> str | None:
    """``evaluate-lstm_autoencoder [exp-1a2b3]``: the stage, the variant, the DVC experiment."""
    if run_name is None:
        return None
    variant = tags.get("melodance.variant")
    if variant and variant not in run_name:
        run_name = f"{run_name}-{variant}"
    exp = tags.get("melodance.dvc_exp")
    if exp and top_level or exp and tags.get("melodance.train_run_id"):
        run_name = f"{run_name} [{exp}]"
    return run_name


def _is_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def log_params(params: dict) -> None:
    import mlflow

    flat = {k: ("" if v is None else str(v)[:6000]) for k, v in flatten(params).items()}
    items = list(flat.items())
    for i in range(0, len(items), 100):
        _retry(lambda chunk=dict(items[i:i + 100]): mlflow.log_params(chunk))


def log_metrics(metrics: dict[str, float], step: int | None = None) -> None:
    import mlflow

    clean = {k: float(v) for k, v in flatten(metrics).items() if v is not None}
    _retry(lambda: mlflow.log_metrics(clean, step=step))


def log_history(history: list[tuple[int, dict[str, float]]]) -> None:
    """Log per-step metrics ``[(step, {name: value})]`` of the active run in one batch."""
    import time as _time

    import mlflow
    from mlflow.entities import Metric

    ts = int(_time.time() * 1000)
    ms = [Metric(k, float(v), ts, step) for step, d in history for k, v in flatten(d).items()
          if v is not None]
    run_id = mlflow.active_run().info.run_id
    c = mlflow.tracking.MlflowClient()
    for i in range(0, len(ms), 1000):
        _retry(lambda chunk=ms[i:i + 1000]: c.log_batch(run_id, metrics=chunk))


def set_tags(tags: dict[str, Any]) -> None:
    import mlflow

    _retry(lambda: mlflow.set_tags({k: str(v) for k, v in tags.items()}))


def log_artifact(path: str | Path, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifact(str(path), artifact_path=artifact_path)


def log_artifacts(path: str | Path, artifact_path: str | None = None) -> None:
    import mlflow

    mlflow.log_artifacts(str(path), artifact_path=artifact_path)


def log_dict(obj: dict, artifact_file: str) -> None:
    import mlflow

    mlflow.log_dict(obj, artifact_file)


def log_figure(fig, artifact_file: str) -> None:
    import mlflow

    mlflow.log_figure(fig, artifact_file)


def close_stale_runs(stage: str, status: str = "KILLED") -> int:
    """Mark RUNNING runs of ``stage`` whose process died (e.g. SIGKILL) as ``status``.

    Only runs started on this host are judged (the tracking store may be a
    team's server): a run of an earlier boot of this host is dead; a run of
    this boot is dead when its pid, in the same pid namespace, is gone. Runs
    of other hosts, of another pid namespace (a container) or without these
    tags (older melodance versions) are left alone.
    Call this before starting a stage's new run. Returns how many were closed.
    """
    from mlflow.tracking import MlflowClient

    exp_id = setup()
    client = MlflowClient(tracking_uri())
    runs = client.search_runs(
        [exp_id],
        filter_string=f"attributes.status = 'RUNNING' and tags.`melodance.stage` = '{stage}'",
    )
    here = machine_tags()
    n = 0
    for r in runs:
        if run_is_alive(r.data.tags, here):
            continue
        client.set_terminated(r.info.run_id, status=status)
        n += 1
    return n


def run_is_alive(tags: dict[str, str], here: dict[str, str] | None = None) -> bool:
    """Whether a RUNNING run may still be running, judged from its tags; True when unsure."""
    here = here or machine_tags()
    if tags.get("melodance.host") != here["melodance.host"] or "unknown" in (
            here["melodance.boot_id"], tags.get("melodance.boot_id", "unknown")):
        return True  # another machine's run, or no way to tell
    if tags["melodance.boot_id"] != here["melodance.boot_id"]:
        return False  # started before this host rebooted
    if tags.get("melodance.pid_ns") != here["melodance.pid_ns"]:
        return True  # another container's pids are not ours to test
    pid = tags.get("melodance.pid", "")
    if not pid.isdigit():
        return True
    # This very process starts its new run after the cleanup: a RUNNING run with its
    # pid is a leftover of an earlier run in the same process.
    return int(pid) != os.getpid() and pid_alive(int(pid))


def pid_alive(pid: int) -> bool:
    """Whether a process of this host with this id is running."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def log_metrics_to_run(run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    """Add metrics to another (finished) run, e.g. test metrics onto the training run."""
    import time as _time

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    setup()
    ts = int(_time.time() * 1000)
    ms = [Metric(k, float(v), ts, step or 0) for k, v in flatten(metrics).items() if v is not None]
    client = MlflowClient(tracking_uri())
    for i in range(0, len(ms), 500):
        _retry(lambda chunk=ms[i:i + 500]: client.log_batch(run_id, metrics=chunk))


def log_dance_model(bundle_path: str | Path, name: str = "model"):
    """Log a trained bundle as the run's MLflow pyfunc model (see serve.pyfunc)."""
    from melodance.serve.pyfunc import log_model

    return _retry(lambda: log_model(Path(bundle_path), name=name))


# ----------------------------------------------------------------------------- model registry

REGISTERED_MODEL = "melodance"
CHAMPION = "champion"


def client():
    from mlflow.tracking import MlflowClient

    setup()
    return MlflowClient(tracking_uri())


def run_model_uri(run_id: str, name: str = "model") -> str:
    """The URI of the pyfunc model logged in a run."""
    return f"runs:/{run_id}/{name}"


def logged_model_uri(run_id: str, name: str = "model") -> str:
    """The URI of the model the run logged as ``name``: ``models:/<model id>`` (MLflow 3's
    logged model), else ``runs:/<run id>/<name>``."""
    c = client()
    run = c.get_run(run_id)
    found = c.search_logged_models(experiment_ids=[run.info.experiment_id],
                                   filter_string=f"source_run_id = '{run_id}' AND name = '{name}'")
    return f"models:/{found[0].model_id}" if found else run_model_uri(run_id, name)


def register_version(run_id: str, tags: dict[str, str]) -> str:
    """Register the run's model as a new version of ``melodance``; return the version.

    The version carries the run's variant and DVC experiment as tags and a description
    saying what it is, so the registry's list and the page's model picker tell versions apart.
    """
    import mlflow

    setup()
    c = client()
    run = c.get_run(run_id)
    variant = run.data.tags.get("melodance.variant", "unknown")
    exp = run.data.tags.get("melodance.dvc_exp")
    tags = {"variant": variant, **({"dvc_exp": exp} if exp else {}), **tags}
    metric = tags.get("metric.best_val_metric_loss_per_frame", tags.get("metric.val_metric_loss_per_frame"))
    commit = str(tags.get("git_commit", "?"))[:8]
    description = (f"{variant}" + (f", DVC experiment {exp}" if exp else "")
                   + f", trained in run {run.info.run_name or run_id} (git {commit})"
                   + (f"; validation metric_loss {float(metric):.2f} cm/frame" if metric else ""))
    uri = logged_model_uri(run_id)
    mv = _retry(lambda: mlflow.register_model(uri, REGISTERED_MODEL,
                                              tags={k: str(v) for k, v in tags.items()}))
    _retry(lambda: c.update_model_version(REGISTERED_MODEL, mv.version, description=description))
    return str(mv.version)


def champion_version() -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(REGISTERED_MODEL, CHAMPION).version)
    except MlflowException:
        return None


def model_version_tags(version: str) -> dict[str, str]:
    return dict(client().get_model_version(REGISTERED_MODEL, version).tags)


def set_champion(version: str) -> None:
    c = client()
    _retry(lambda: c.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version))


def set_registered_model_tag(key: str, value: str) -> None:
    c = client()
    _retry(lambda: c.set_registered_model_tag(REGISTERED_MODEL, key, value))


def registered_model_tags() -> dict[str, str]:
    return dict(client().get_registered_model(REGISTERED_MODEL).tags)


def model_versions() -> list[dict]:
    vs = client().search_model_versions(f"name = '{REGISTERED_MODEL}'")
    return sorted(({"version": str(v.version), "run_id": v.run_id, "tags": dict(v.tags),
                    "aliases": list(v.aliases), "description": v.description or ""} for v in vs),
                  key=lambda d: int(d["version"]))
