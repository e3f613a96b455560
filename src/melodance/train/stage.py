"""The ``train`` stage: fit a model on the features, track it in MLflow, write DVC outputs.

Outputs (``out_dir``): ``model.pt`` (a :class:`~melodance.models.bundle.DanceBundle`),
``metrics.json`` (DVC metrics: the headline, :data:`HEADLINE`), ``summary.json`` (the whole
summary), ``history.csv`` (per-epoch curves),
``loss_curves.png`` and ``run.json`` (the MLflow run id and the sha256 of the
other files, which the run also carries as tags).

The folder is written as one unit: everything goes into a temporary folder
beside it, which then replaces ``out_dir`` in one atomic exchange
(:func:`melodance.io.atomic_dir`). A training killed at any moment leaves
either the previous outputs or the new ones, never a mix (``register``
checks the hashes anyway). Checkpoints for resuming live elsewhere
(``train.checkpoint_dir``).
"""

from __future__ import annotations

import csv
import io as _io
import os
import shutil
import signal
from pathlib import Path

from melodance import io, tracking
from melodance.errors import InputError, MissingInput
from melodance.models import ModelConfig
from melodance.train.config import TrainConfig
from melodance.train.loop import EpochStats, TrainResult, config_key, fit


def history_csv(history: list[EpochStats]) -> str:
    buf = _io.StringIO()
    fields = list(EpochStats.__dataclass_fields__)
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for h in history:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in h.__dict__.items()})
    return buf.getvalue()


def summary_metrics(result: TrainResult) -> dict:
    """The training's summary: the kept (best validation loss) epoch's figures, named ``best_*``.

    One name, one meaning: in MLflow ``val_loss`` (and every other ``EpochStats`` figure) is
    the per-epoch curve, whose last point is the last epoch; the summary of the epoch the
    bundle keeps is ``best_val_loss`` everywhere (``summary.json``, ``metrics.json``, the
    bundle, the MLflow run, the registry's ``metric.*`` tags)."""
    best = result.best
    return {
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "best_train_loss": round(best.train_loss, 6),
        "best_val_loss": round(best.val_loss, 6),
        "best_val_recon_loss": round(best.val_recon_loss, 6),
        "best_val_metric_loss": round(best.val_metric_loss, 3),
        "best_val_metric_loss_per_frame": round(best.val_metric_loss_per_frame, 4),
    }


HEADLINE = ("best_val_loss",                        # lstm: the kept epoch's validation loss
            "gpt_best_val_loss", "val_speed_ratio",  # vqgpt: token loss, does it move
            "val_metric_loss_per_frame")             # retrieval (no training curve)
"""What ``metrics.json`` (``dvc metrics show``, ``dvc exp show``) carries of a training's
summary, the keys present: one or two headline figures, so two experiments compare on one
screen. The whole summary: ``summary.json``, the bundle and the MLflow run."""


def headline(summary: dict) -> dict:
    return {k: summary[k] for k in HEADLINE if k in summary}


def run_training(features_dir: Path, out_dir: Path, model_cfg: ModelConfig, cfg: TrainConfig,
                 *, window: int | None = None, progress: bool = True, log_model: bool = True,
                 from_study: dict | None = None) -> dict:
    """Train the family ``model_cfg.family`` selects (models/families.py), log to MLflow,
    write the stage outputs; return the summary metrics.

    ``from_study``: the ``section.key`` values taken from the tune stage (tagged on the run
    and kept in the bundle, so nobody mistakes them for params.yaml's)."""
    from melodance.features.pipeline import load_features
    from melodance.models.families import train_function

    fs = load_features(features_dir)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    return train_function(model_cfg)(fs, out_dir, model_cfg, cfg, window=window,
                                     progress=progress, log_model=log_model, from_study=from_study)


def train_lstm(fs, out_dir: Path, model_cfg: ModelConfig, cfg: TrainConfig, *,
               window: int | None = None, progress: bool = True, log_model: bool = True,
               from_study: dict | None = None) -> dict:
    """The LSTM family's train stage: epochs with checkpoints and exact resume."""
    from melodance.models.bundle import DanceBundle
    from melodance.train.plots import loss_curves

    key = config_key(model_cfg.model_dump(), cfg.model_dump(exclude={"threads"}), fs.meta,
                     window, tracking.data_hash())
    ckpt = Path(cfg.checkpoint_dir) / f"train-{key}.pt"
    tracking.close_stale_runs("train")
    features_params = dict(fs.meta.get("config", {}))
    if window is not None:
        features_params["window"] = window
    params = {"model": model_cfg.model_dump(), "train": cfg.model_dump(),
              "features": features_params}
    tags = {"melodance.variant": model_cfg.variant, "melodance.checkpoint": str(ckpt)}
    if from_study:
        import json

        tags["melodance.from_study"] = json.dumps(from_study, sort_keys=True)
    resumed = ckpt.is_file()
    if resumed:
        tags["melodance.resumed"] = "true"

    with tracking.stage_run("train", params=params, run_name=f"train-{model_cfg.variant}",
                            tags=tags) as run:
        if resumed:
            import torch

            # Replay the epochs the interrupted attempt finished, so this run's curves are whole.
            ck = torch.load(ckpt, map_location="cpu", weights_only=False)
            for h in ck["history"]:
                tracking.log_metrics(EpochStats(**h).metrics(), step=h["epoch"])
            tracking.set_tags({"melodance.resumed_from_epoch": ck["epoch"]})
            del ck

        def on_epoch(stats: EpochStats) -> None:
            tracking.log_metrics(stats.metrics(), step=stats.epoch)

        result = fit(fs, model_cfg, cfg, checkpoint_path=ckpt, on_epoch=on_epoch,
                     progress=progress, window=window)
        metrics = summary_metrics(result)
        # The summary under the names metrics.json and summary.json use (best_*: the kept epoch).
        tracking.log_metrics({k: v for k, v in metrics.items()
                              if isinstance(v, (int, float)) and not isinstance(v, bool)})

        fig = loss_curves(result.history, title=f"{model_cfg.variant}")
        write_outputs(out_dir, run, DanceBundle(result.model, fs.normalizers, fs.meta), metrics,
                      history_csv(result.history), fig, log_model=log_model,
                      extra={"train_config": cfg.model_dump(), "from_study": dict(from_study or {})})
    ckpt.unlink(missing_ok=True)
    return metrics


def write_outputs(out_dir: Path, run, bundle, metrics: dict, history_text: str, fig, *,
                  log_model: bool = True, extra: dict | None = None) -> None:
    """Write the stage's outputs as one unit and log them to the active MLflow run.

    Everything goes into a temporary folder that replaces ``out_dir`` in one
    rename, and ``run.json`` records the sha256 of each output, so ``register``
    can tell a folder mixed from two trainings (a kill between two writes can
    no longer leave one).
    """
    run_id = run.info.run_id
    with io.atomic_dir(out_dir) as tmp:
        _carry_foreign_files(out_dir, tmp)
        bundle.save(tmp / "model.pt", extra={"run_id": run_id, "metrics": metrics, **(extra or {})})
        _fault("model.pt")
        io.write_json(tmp / "metrics.json", headline(metrics))
        _fault("metrics.json")
        io.write_json(tmp / "summary.json", metrics)
        _fault("summary.json")
        io.write_text(tmp / "history.csv", history_text)
        _fault("history.csv")
        with io.atomic_path(tmp / "loss_curves.png") as png:
            fig.savefig(png, dpi=100)
        _fault("loss_curves.png")
        tracking.log_figure(fig, "loss_curves.png")
        tracking.log_artifact(tmp / "history.csv")
        tracking.log_artifact(tmp / "metrics.json")
        tracking.log_artifact(tmp / "summary.json")
        if log_model:
            from melodance.serve.pyfunc import log_dance_model

            log_dance_model(tmp / "model.pt")
        _fault("logged")
        hashes = {name: io.sha256_file(tmp / name) for name in OUTPUT_FILES}
        tracking.set_tags({f"melodance.sha256.{name}": h for name, h in hashes.items()})
        io.write_json(tmp / "run.json", {"run_id": run_id,
                                         "experiment_id": run.info.experiment_id,
                                         "sha256": hashes})
        _fault("run.json")
    _fault("swapped")


OUTPUT_FILES = ("model.pt", "metrics.json", "summary.json", "history.csv", "loss_curves.png")
"""The stage's outputs that run.json records by sha256 (run.json itself aside)."""
FAULT_ENV = "MELODANCE_FAULT_AT"


def _fault(point: str) -> None:
    """Kill this process (SIGKILL: no cleanup at all) when ``MELODANCE_FAULT_AT`` names
    ``point``: the tests kill training at each write and check ``out_dir`` is never mixed."""
    if os.environ.get(FAULT_ENV) == point:
        os.kill(os.getpid(), signal.SIGKILL)


def _carry_foreign_files(old: Path, new: Path) -> None:
    """Keep files that are not this stage's (a user's notes) when the folder is replaced."""
    if not old.is_dir():
        return
    ours = {*OUTPUT_FILES, "run.json"}
    for p in old.iterdir():
        if p.name in ours or p.name.startswith("."):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.copytree(p, new / p.name, symlinks=True)
        else:
            shutil.copy2(p, new / p.name, follow_symlinks=False)


def check_outputs(train_dir: str | Path) -> tuple[dict, dict]:
    """Check that a train folder's model, metrics and run id belong together.

    Returns ``(run, metrics)`` from ``run.json`` and ``summary.json`` (the whole summary;
    ``metrics.json`` where a folder has no summary). Raises
    ValueError naming the file when one is missing, unreadable, or differs
    from the sha256 its run recorded (a folder mixed from two trainings).
    """
    import json

    train_dir = Path(train_dir)
    for name in ("run.json", "metrics.json", "model.pt"):
        if not (train_dir / name).is_file():
            raise MissingInput(f"{train_dir / name}: missing (run the train stage first)")
    try:
        run = json.loads((train_dir / "run.json").read_text())
        metrics = json.loads((train_dir / "metrics.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"{train_dir}: run.json or metrics.json is not valid JSON ({e})") from e
    if not isinstance(run, dict) or not isinstance(run.get("run_id"), str):
        raise InputError(f"{train_dir / 'run.json'}: no run_id")
    hashes = run.get("sha256")
    if not isinstance(hashes, dict):
        raise InputError(f"{train_dir / 'run.json'}: records no sha256 of the outputs (written "
                         "by an older melodance); run the train stage again")
    # summary.json: the whole summary (metrics.json holds its headline); older folders lack it.
    checked = ("model.pt", "metrics.json", *(("summary.json",) if "summary.json" in hashes else ()))
    for name in checked:
        if not (train_dir / name).is_file():
            raise FileNotFoundError(f"{train_dir / name}: missing (run the train stage again)")
        if io.sha256_file(train_dir / name) != hashes.get(name):
            raise InputError(f"{train_dir / name}: does not belong to run {run['run_id']} (its "
                             "content differs from what the run recorded): the folder mixes two "
                             "trainings; run the train stage again")
    if "summary.json" in checked:
        metrics = {**json.loads((train_dir / "summary.json").read_text()), **metrics}
    return run, metrics


def load_configs(params_path, tuned_path: Path | None = None, use_tuned: bool | None = None
                 ) -> tuple[ModelConfig, TrainConfig, int | None]:
    """The ``model`` and ``train`` sections with tuned values filled in (see :func:`resolve_configs`).
    Returns ``(model_cfg, train_cfg, window)``."""
    m, t, window, _ = resolve_configs(params_path, tuned_path, use_tuned)
    return m, t, window


def resolve_configs(params_path, tuned_path: Path | None = None, use_tuned: bool | None = None
                    ) -> tuple[ModelConfig, TrainConfig, int | None, dict]:
    """The ``model`` and ``train`` sections of ``params.yaml``; with ``train.use_tuned``, a key
    set to ``auto`` takes the tune stage's best value. An explicit value (params.yaml or
    ``dvc exp run -S``) always wins over the study, so ``dvc exp show`` and the MLflow run
    agree on every explicit parameter. ``use_tuned`` overrides ``train.use_tuned`` (None:
    the file's).

    Returns ``(model_cfg, train_cfg, window, from_study)``: ``window`` is the tuned window
    length in frames (None: the features' own), ``from_study`` maps each ``section.key`` taken
    from the study to its value.
    """
    import json

    from melodance.params import auto_keys, load_params, load_section
    from melodance.train.config import apply_overrides

    model_cfg = load_section("model", ModelConfig, params_path)
    cfg = load_section("train", TrainConfig, params_path)
    if use_tuned is not None:
        cfg = TrainConfig.model_validate({**cfg.model_dump(), "use_tuned": use_tuned})
    auto = auto_keys(params_path)
    # An explicit features.window is the training window (the features stage's output does
    # not depend on it); auto: the study's, else the one the features were written with.
    window = (load_params(params_path).get("features") or {}).get("window")
    window = window if isinstance(window, int) else None
    if not cfg.use_tuned or not auto:
        return model_cfg, cfg, window, {}
    if tuned_path is None or not Path(tuned_path).is_file():
        raise MissingInput(f"{tuned_path}: params.yaml sets {', '.join(sorted(auto))} to auto "
                                "and train.use_tuned is true, but there are no tuned parameters "
                                "(run the tune stage, or set those keys to values)")
    best = json.loads(Path(tuned_path).read_text()).get("params", {})
    from_study = {k: v for k, v in best.items() if k in auto}
    m, t, tuned_window = apply_overrides(from_study, model_cfg, cfg)
    return m, t, tuned_window or window, from_study
