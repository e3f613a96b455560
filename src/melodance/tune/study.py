"""An Optuna study over the training of one model variant.

Storage: a journal file (default; safe for several processes on one machine)
or a PostgreSQL URL (several machines; heartbeats mark a dead worker's trial
failed). Either way a trial whose worker died is marked FAIL and re-queued
with the same parameters (``tune.max_retry`` times).

MLflow: one parent run per study; every trial is a nested child run with its
parameters and per-epoch curves. Pruned trials end KILLED, failed ones FAILED.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import socket
import subprocess
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from melodance import tracking
from melodance.errors import InputError
from melodance.models import BASELINES, ModelConfig
from melodance.train.config import TrainConfig, apply_overrides
from melodance.tune.config import Dim, TuneConfig

PARENT_ATTR = "mlflow_parent_run_id"


@dataclass
class Setup:
    """Everything a worker needs, serialisable to JSON for worker processes."""

    features_dir: str
    params_path: str
    study_name: str
    parent_run_id: str

    def to_json(self) -> str:
        return json.dumps(self.__dict__)


# Optuna marks the journal file storage, the retry callback and its matplotlib plots as
# experimental and says so on every run; this project pins Optuna's version, so the notice
# tells a user nothing they can act on.
EXPERIMENTAL = r".* is experimental \(supported from v"
warnings.filterwarnings("ignore", message=EXPERIMENTAL, module="optuna")
warnings.filterwarnings("ignore", message=EXPERIMENTAL, module="melodance")


def is_url(storage: str) -> bool:
    return "://" in storage


def make_storage(cfg: TuneConfig):
    import optuna

    if is_url(cfg.storage):
        return optuna.storages.RDBStorage(
            cfg.storage, heartbeat_interval=cfg.heartbeat_s, grace_period=2 * cfg.heartbeat_s,
            failed_trial_callback=optuna.storages.RetryFailedTrialCallback(
                max_retry=cfg.max_retry),
        )
    path = Path(cfg.storage)
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def make_pruner(cfg: TuneConfig):
    import optuna

    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if cfg.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    return optuna.pruners.NopPruner()


def searched_space(cfg: TuneConfig, params_path, family: str = "lstm") -> tuple[dict[str, Dim], dict]:
    """The keys the study searches for ``family``, and the values it holds fixed.

    With ``train.use_tuned``, only the keys ``params.yaml`` leaves at ``auto`` are searched:
    a value the user set (``dvc exp run -S``) is what the train stage will use, so the study
    tunes the other keys for that value instead of searching it. Without ``auto`` keys (or
    without ``use_tuned``) the whole space is searched, for information.
    """
    from melodance.params import auto_keys, load_params, load_section

    space = cfg.search_space(family)
    if not load_section("train", TrainConfig, params_path).use_tuned:
        return space, {}
    auto = auto_keys(params_path)
    searched = {k: d for k, d in space.items() if k in auto}
    if not searched:
        return space, {}
    raw = load_params(params_path)
    fixed = {k: (raw.get(k.partition(".")[0]) or {}).get(k.partition(".")[2])
             for k in space if k not in searched}
    return searched, fixed


def default_study_name(model_cfg: ModelConfig, cfg: TuneConfig, data_hash: str | None,
                       fixed: dict | None = None) -> str:
    name = "vqgpt" if model_cfg.family == "vqgpt" else model_cfg.variant
    blob = json.dumps([name, model_cfg.vqgpt, cfg.model_dump(exclude={"workers", "timeout_s"}),
                       data_hash] + ([fixed] if fixed else []), sort_keys=True, default=str)
    return f"melodance-{name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


def suggest(trial, space: dict[str, Dim]) -> dict:
    out = {}
    for name, d in space.items():
        if d.choices is not None:
            out[name] = trial.suggest_categorical(name, d.choices)
        elif d.integer:
            out[name] = trial.suggest_int(name, int(d.low), int(d.high), log=d.log)
        else:
            out[name] = trial.suggest_float(name, d.low, d.high, log=d.log)
    return out


def fail_dead_local_trials(study, max_retry: int) -> int:
    """Journal storage has no heartbeat: a RUNNING trial whose worker process on this
    host is gone is marked FAIL and its parameters re-queued (once per ``max_retry``)."""
    import optuna
    from optuna.trial import TrialState

    host = socket.gethostname()
    now = datetime.datetime.now()
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "pid" not in t.user_attrs:
            # Just created by a live worker that has not written its pid yet; only a
            # trial left that way for long belongs to a worker that died at once.
            if t.datetime_start and (now - t.datetime_start).total_seconds() < 60:
                continue
        elif t.user_attrs.get("host") != host or tracking.pid_alive(t.user_attrs["pid"]):
            continue
        try:
            study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
            continue  # another worker got there first
        n += 1
        retries = int(t.user_attrs.get("retries", 0))
        if retries < max_retry:
            study.enqueue_trial(t.params, user_attrs={"retries": retries + 1,
                                                      "retried_from": t.number})
    return n


def run_worker(setup: Setup, worker_index: int = 0) -> None:
    """Run trials on the shared study until it holds ``n_trials`` finished trials."""
    import optuna
    from optuna.trial import TrialState

    from melodance.features.pipeline import load_features
    from melodance.params import load_section

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = load_section("tune", TuneConfig, setup.params_path)
    base_model = load_section("model", ModelConfig, setup.params_path)
    base_train = load_section("train", TrainConfig, setup.params_path)
    fs = load_features(setup.features_dir)
    storage = make_storage(cfg)
    sampler = optuna.samplers.TPESampler(seed=cfg.seed + worker_index)
    study = optuna.load_study(study_name=setup.study_name, storage=storage, sampler=sampler,
                              pruner=make_pruner(cfg))
    if not is_url(cfg.storage):
        fail_dead_local_trials(study, cfg.max_retry)
    space, _ = searched_space(cfg, setup.params_path, base_model.family)
    if base_model.family == "vqgpt":
        objective = _vqgpt_objective(setup, cfg, base_model, base_train, fs, space, worker_index)
    else:
        objective = _lstm_objective(setup, cfg, base_model, base_train, fs, space, worker_index)

    done_states = (TrialState.COMPLETE, TrialState.PRUNED)

    def enough(study, _trial) -> None:
        done = len(study.get_trials(deepcopy=False, states=done_states))
        failed = len(study.get_trials(deepcopy=False, states=(TrialState.FAIL,)))
        if done >= cfg.n_trials or failed > cfg.n_trials:
            study.stop()

    if len(study.get_trials(deepcopy=False, states=done_states)) >= cfg.n_trials:
        return
    study.optimize(objective, timeout=cfg.timeout_s, callbacks=[enough],
                   catch=(RuntimeError, ValueError, FloatingPointError))


def _start_trial(trial, space: dict, base_model: ModelConfig, base_train: TrainConfig,
                 worker_index: int):
    """Tag the trial with where it runs (the journal's dead-process check reads host and pid),
    draw its parameters and apply them: ``(params, model_cfg, train_cfg, window)``."""
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("worker", worker_index)
    params = suggest(trial, space)
    return (params, *apply_overrides(params, base_model, base_train))


def _vqgpt_objective(setup: Setup, cfg: TuneConfig, base_model: ModelConfig,
                     base_train: TrainConfig, fs, space: dict, worker_index: int):
    """A trial trains the generative family for ``tune.vqgpt_scale`` of its epochs; the value is
    the GPT's held-out token loss (validation split), reported every 50 steps for pruning."""
    from dataclasses import replace

    import optuna

    from melodance.models import vqgpt
    from melodance.models.generative import DEFAULT_LENGTH, resolve

    frames = int(sum(len(fs.sequences[n].motion) for n in fs.split["train"]))

    def objective(trial):
        params, m, t, _ = _start_trial(trial, space, base_model, base_train, worker_index)
        length = {k: float(m.vqgpt.get(k, d)) * cfg.vqgpt_scale for k, d in DEFAULT_LENGTH.items()}
        m = ModelConfig.model_validate({**m.model_dump(), "vqgpt": {**m.vqgpt, **length}})
        stored, vq_cfg = resolve(m, t.seed, frames)
        # The validation token loss is measured every 50 GPT steps: at least two readings.
        vq_cfg = replace(vq_cfg, gpt_steps=max(vq_cfg.gpt_steps, 100))
        with tracking.stage_run("tune-trial", params={"trial": params, "model": stored.model_dump()},
                                run_name=f"trial-{trial.number}",
                                parent_run_id=setup.parent_run_id,
                                tags={"melodance.trial": str(trial.number),
                                      "melodance.study": setup.study_name,
                                      "melodance.variant": "vqgpt", "melodance.family": "vqgpt"},
                                killed_on=(optuna.TrialPruned,)):
            curve: list[tuple[int, dict]] = []
            best = [float("inf")]

            def on_step(phase, step, elapsed_s, figures):
                curve.append((step if phase == "vq" else vq_cfg.vq_steps + step,
                              {f"{phase}_{k}": float(v) for k, v in figures.items()}))
                if phase == "gpt" and "val_loss" in figures:
                    best[0] = min(best[0], float(figures["val_loss"]))
                    trial.report(float(figures["val_loss"]), step)
                    if trial.should_prune():
                        tracking.set_tags({"melodance.pruned_at_step": step})
                        raise optuna.TrialPruned()

            try:
                vqgpt.fit(fs, vq_cfg, on_step=on_step)
            finally:
                tracking.log_history(curve)
            if best[0] == float("inf"):
                raise InputError("no validation token loss: validation songs shorter than the "
                                 "GPT's training window, or fewer than 50 GPT steps")
            tracking.log_metrics({"best_val_loss": best[0]})
        return best[0]

    return objective


def _lstm_objective(setup: Setup, cfg: TuneConfig, base_model: ModelConfig,
                    base_train: TrainConfig, fs, space: dict, worker_index: int):
    import optuna

    from melodance.train.loop import fit

    def objective(trial):
        params, m, t, window = _start_trial(trial, space, base_model, base_train, worker_index)
        t = TrainConfig.model_validate({**t.model_dump(), "epochs": cfg.epochs,
                                        "patience": cfg.epochs, "threads": 1})
        with tracking.stage_run("tune-trial", params={"trial": params, "model": m.model_dump(),
                                                      "train": t.model_dump()},
                                run_name=f"trial-{trial.number}",
                                parent_run_id=setup.parent_run_id,
                                tags={"melodance.trial": str(trial.number),
                                      "melodance.study": setup.study_name,
                                      "melodance.variant": m.variant},
                                killed_on=(optuna.TrialPruned,)):
            history = []

            def on_epoch(stats):
                history.append(stats)
                trial.report(stats.val_loss, stats.epoch)
                if trial.should_prune():
                    tracking.set_tags({"melodance.pruned_at_epoch": stats.epoch})
                    raise optuna.TrialPruned()

            try:
                result = fit(fs, m, t, on_epoch=on_epoch, progress=False, window=window)
            finally:
                # The curves go in one write per trial: per-epoch writes from several
                # workers contend for the tracking store's lock.
                tracking.log_history([(h.epoch, h.metrics()) for h in history])
            value = result.best.val_loss
            tracking.log_metrics({"best_val_loss": value})
        return value

    return objective


def run_tune(features_dir: Path, out_dir: Path, params_path: str = "params.yaml",
             workers: int | None = None, progress: bool = True) -> dict:
    """Create or join the study, run the workers, write ``best_params.json`` and plots."""
    import optuna

    from melodance import io
    from melodance.params import load_section

    cfg = load_section("tune", TuneConfig, params_path)
    model_cfg = load_section("model", ModelConfig, params_path)
    if model_cfg.variant in BASELINES:
        return baseline_tune(Path(out_dir), model_cfg.variant)
    if not cfg.search_space(model_cfg.family):
        return baseline_tune(Path(out_dir), model_cfg.family,
                             f"model.family {model_cfg.family}: tune.vqgpt_space is empty, "
                             "nothing to tune (the train stage uses params.yaml's values)")
    workers = workers or cfg.workers
    space, fixed = searched_space(cfg, params_path)
    if fixed:
        print("tune: searching " + ", ".join(space) + "; held at params.yaml's values: "
              + ", ".join(f"{k}={'default' if v is None else v}" for k, v in fixed.items()))
    name = cfg.study_name or default_study_name(model_cfg, cfg, tracking.data_hash(), fixed)
    storage = make_storage(cfg)
    optuna.logging.set_verbosity(optuna.logging.WARNING)   # this command prints its own summary
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize",
                                load_if_exists=True)
    tracking.setup()  # create the MLflow database once, before workers race for it
    parent_id = study.user_attrs.get(PARENT_ATTR)
    parent_params = {"tune": cfg.model_dump(mode="json"), "model": model_cfg.model_dump()}
    with tracking.stage_run("tune", params=None if parent_id else parent_params,
                            run_name=f"tune-{name}", run_id=parent_id,
                            tags={"melodance.study": name,
                                  "melodance.variant": model_cfg.variant}) as parent:
        if not parent_id:
            study.set_user_attr(PARENT_ATTR, parent.info.run_id)
        setup = Setup(str(features_dir), str(params_path), name, parent.info.run_id)
        if workers <= 1:
            run_worker(setup, 0)
        else:
            spawn_workers(setup, workers)
        best = summarise(study, cfg, Path(out_dir))
        tracking.log_params({f"best.{k}": v for k, v in best["params"].items()})
        tracking.log_metrics({"best_value": best["value"], "n_trials": best["n_trials"],
                              "n_pruned": best["n_pruned"], "n_failed": best["n_failed"]})
        tracking.log_artifacts(out_dir)
    io.write_json(Path(out_dir) / "best_params.json", best)
    return best


def baseline_tune(out_dir: Path, variant: str, note: str | None = None) -> dict:
    """A baseline without training (retrieval), or a family without a search space, has
    nothing to tune: empty outputs that say so."""
    from melodance import io

    info = {"study": None, "trial": None, "value": None, "params": {}, "n_trials": 0,
            "n_complete": 0, "n_pruned": 0, "n_failed": 0,
            "note": note or f"model.variant {variant} is fitted without training: nothing to tune"}
    with io.atomic_dir(out_dir / "plots") as tmp:
        io.write_text(tmp / "README.txt", info["note"] + "\n")
    io.write_json(out_dir / "trials.json", [])
    io.write_json(out_dir / "best_params.json", info)
    return info


def spawn_workers(setup: Setup, workers: int) -> None:
    """N worker processes on the one study; each is ``python -m melodance.tune.worker``."""
    procs = [subprocess.Popen([sys.executable, "-m", "melodance.tune.worker", setup.to_json(),
                               str(i)]) for i in range(workers)]
    codes = [p.wait() for p in procs]
    bad = [i for i, c in enumerate(codes) if c != 0]
    if len(bad) == workers:
        raise RuntimeError(f"all {workers} tuning workers failed (exit codes {codes})")


def summarise(study, cfg: TuneConfig, out_dir: Path) -> dict:
    """Best trial and Optuna's plots (optimisation history, parameter importances)."""
    from optuna.trial import TrialState

    from melodance import io

    out_dir.mkdir(parents=True, exist_ok=True)
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if not complete:
        raise RuntimeError(f"study {study.study_name}: no trial completed "
                           f"({len(trials)} trials; see the MLflow runs)")
    best = study.best_trial
    info = {
        "study": study.study_name, "trial": best.number, "value": best.value,
        "params": best.params, "n_trials": len(trials),
        "n_complete": len(complete),
        "n_pruned": sum(t.state == TrialState.PRUNED for t in trials),
        "n_failed": sum(t.state == TrialState.FAIL for t in trials),
    }
    _plots(study, out_dir / "plots")
    io.write_json(out_dir / "trials.json", [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": t.params}
        for t in trials])
    return info


def _plots(study, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization.matplotlib as ovm

    from melodance import io

    out_dir.mkdir(parents=True, exist_ok=True)
    for name, fn in (("optimization_history", ovm.plot_optimization_history),
                     ("param_importances", ovm.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=EXPERIMENTAL)
                ax = fn(study)
        except (ValueError, RuntimeError, ZeroDivisionError) as e:  # e.g. too few trials
            print(f"tune: no {name} plot ({e})", file=sys.stderr)
            continue
        fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        with io.atomic_path(out_dir / f"{name}.png") as tmp:
            fig.savefig(tmp, dpi=100)
        plt.close(fig)
