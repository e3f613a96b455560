"""The train stage for ``model.family: retrieval``: fit the database, write the same outputs.

The retrieval baseline (:mod:`melodance.models.retrieval`) is fitted in well
under a second from the training split; this writes what the train stage
always writes (``model.pt``, ``metrics.json``, ``history.csv``,
``loss_curves.png``, ``run.json``) and logs the same MLflow run and pyfunc
model, so evaluate, render, register, serve and dance take it like any model.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from melodance import tracking
from melodance.models import ModelConfig
from melodance.train.config import TrainConfig


def run_retrieval(fs, out_dir: Path, model_cfg: ModelConfig, cfg: TrainConfig, *,
                  window: int | None = None, progress: bool = True, log_model: bool = True,
                  from_study: dict | None = None) -> dict:
    """Fit, log to MLflow, write the stage outputs; return the summary metrics (``window`` and
    ``progress`` are unused: nothing is trained)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from melodance.models.bundle import DanceBundle
    from melodance.models.retrieval import RetrievalModel
    from melodance.train.loop import metric_loss_on_sequences
    from melodance.train.stage import write_outputs

    tracking.close_stale_runs("train")
    params = {"model": model_cfg.model_dump(), "train": cfg.model_dump(),
              "features": dict(fs.meta.get("config", {}))}
    with tracking.stage_run("train", params=params, run_name=f"train-{model_cfg.variant}",
                            tags={"melodance.variant": model_cfg.variant}) as run:
        t0 = time.perf_counter()
        model = RetrievalModel.fit(fs, model_cfg)
        fit_s = time.perf_counter() - t0
        val = []
        for name in fs.split.get("val") or []:
            norm = fs.normalized(name)
            val.append({"music": norm["music"], "temporal": norm["temporal"],
                        "motion_raw": fs.sequences[name].motion})
        threads = torch.get_num_threads()
        torch.set_num_threads(cfg.threads)
        try:
            ml, ml_frame = metric_loss_on_sequences(model, val, fs.normalizers["motion"]) if val \
                else (float("nan"), float("nan"))
        finally:
            torch.set_num_threads(threads)
        metrics = {"fit_s": round(fit_s, 3), "database_beats": int(len(model.cand_row)),
                   "database_frames": int(len(model.motion)),
                   "val_metric_loss": round(float(ml), 3),
                   "val_metric_loss_per_frame": round(float(ml_frame), 4)}
        tracking.log_metrics({k: v for k, v in metrics.items() if np.isfinite(v)})
        fig, ax = plt.subplots(figsize=(6, 2))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{model_cfg.variant}: fitted in {fit_s:.2f} s, no training curve",
                ha="center", va="center")
        write_outputs(out_dir, run, DanceBundle(model, fs.normalizers, fs.meta), metrics,
                      "epoch,train_loss,val_loss,val_metric_loss_per_frame\n", fig,
                      log_model=log_model)
        plt.close(fig)
    return metrics
