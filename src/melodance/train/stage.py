"""The ``train`` stage: fit a model on the features, track it in MLflow, write DVC outputs.

Outputs (``out_dir``): ``model.pt`` (a :class:`~melodance.models.bundle.DanceBundle`),
``metrics.json`` (DVC metrics), ``history.csv`` (DVC plots: per-epoch curves),
``loss_curves.png``.
"""

from __future__ import annotations

import csv
import io as _io
from pathlib import Path

from melodance import io, tracking
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
    best = result.best
    return {
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "train_loss": round(best.train_loss, 6),
        "val_loss": round(best.val_loss, 6),
        "val_recon_loss": round(best.val_recon_loss, 6),
        "val_metric_loss": round(best.val_metric_loss, 3),
        "val_metric_loss_per_frame": round(best.val_metric_loss_per_frame, 4),
    }


def run_training(features_dir: Path, out_dir: Path, model_cfg: ModelConfig, cfg: TrainConfig,
                 *, window: int | None = None, progress: bool = True, log_model: bool = True,
                 from_study: dict | None = None) -> dict:
    """Train, log to MLflow, write the stage outputs; return the summary metrics.

    ``from_study``: the ``section.key`` values taken from the tune stage (tagged on the run
    and kept in the bundle, so nobody mistakes them for params.yaml's)."""
    from melodance.features.pipeline import load_features
    from melodance.models.bundle import DanceBundle
    from melodance.train.plots import loss_curves

    fs = load_features(features_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
        tracking.log_metrics({f"best_{k}": v for k, v in metrics.items()
                              if isinstance(v, (int, float)) and not isinstance(v, bool)})

        bundle = DanceBundle(result.model, fs.normalizers, fs.meta)
        bundle.save(out_dir / "model.pt", extra={"run_id": run.info.run_id, "metrics": metrics,
                                                   "train_config": cfg.model_dump(),
                                                   "from_study": dict(from_study or {})})
        io.write_json(out_dir / "metrics.json", metrics)
        io.write_text(out_dir / "history.csv", history_csv(result.history))
        fig = loss_curves(result.history, title=f"{model_cfg.variant}")
        with io.atomic_path(out_dir / "loss_curves.png") as tmp:
            fig.savefig(tmp, dpi=100)
        tracking.log_figure(fig, "loss_curves.png")
        tracking.log_artifact(out_dir / "history.csv")
        tracking.log_artifact(out_dir / "metrics.json")
        if log_model:
            tracking.log_dance_model(out_dir / "model.pt")
        io.write_json(out_dir / "run.json", {"run_id": run.info.run_id,
                                             "experiment_id": run.info.experiment_id})
    ckpt.unlink(missing_ok=True)
    return metrics


def load_configs(params_path, tuned_path: Path | None = None
                 ) -> tuple[ModelConfig, TrainConfig, int | None]:
    """The ``model`` and ``train`` sections with tuned values filled in (see :func:`resolve_configs`).
    Returns ``(model_cfg, train_cfg, window)``."""
    m, t, window, _ = resolve_configs(params_path, tuned_path)
    return m, t, window


def resolve_configs(params_path, tuned_path: Path | None = None
                    ) -> tuple[ModelConfig, TrainConfig, int | None, dict]:
    """The ``model`` and ``train`` sections of ``params.yaml``; with ``train.use_tuned``, a key
    set to ``auto`` takes the tune stage's best value. An explicit value (params.yaml or
    ``dvc exp run -S``) always wins over the study, so ``dvc exp show`` and the MLflow run
    agree on every explicit parameter.

    Returns ``(model_cfg, train_cfg, window, from_study)``: ``window`` is the tuned window
    length in frames (None: the features' own), ``from_study`` maps each ``section.key`` taken
    from the study to its value.
    """
    import json

    from melodance.params import auto_keys, load_params, load_section
    from melodance.train.config import apply_overrides

    model_cfg = load_section("model", ModelConfig, params_path)
    cfg = load_section("train", TrainConfig, params_path)
    auto = auto_keys(params_path)
    # An explicit features.window is the training window (the features stage's output does
    # not depend on it); auto: the study's, else the one the features were written with.
    window = (load_params(params_path).get("features") or {}).get("window")
    window = window if isinstance(window, int) else None
    if not cfg.use_tuned or not auto:
        return model_cfg, cfg, window, {}
    if tuned_path is None or not Path(tuned_path).is_file():
        raise FileNotFoundError(f"{tuned_path}: params.yaml sets {', '.join(sorted(auto))} to auto "
                                "and train.use_tuned is true, but there are no tuned parameters "
                                "(run the tune stage, or set those keys to values)")
    best = json.loads(Path(tuned_path).read_text()).get("params", {})
    from_study = {k: v for k, v in best.items() if k in auto}
    m, t, tuned_window = apply_overrides(from_study, model_cfg, cfg)
    return m, t, tuned_window or window, from_study
