"""The train stage for ``model.family: vqgpt``: both phases, their curves, the same outputs.

Trains :func:`melodance.models.vqgpt.fit` for the step counts that
``model.vqgpt.vq_epochs`` / ``gpt_epochs`` give on this training split (no
wall-time budget: ``dvc repro`` gives the same model for the same seed), logs
both phases' curves to MLflow (``vq_*`` and ``gpt_*`` metrics per step), scores
a sampled dance of every validation song against the real one (body-centred
speed ratio, still fraction), and writes what the train stage always writes
through :func:`melodance.train.stage.write_outputs` (one unit, sha256 in
run.json) with the pyfunc model.
"""

from __future__ import annotations

import csv
import io as _io
import sys
import time
from pathlib import Path

import numpy as np

from melodance import tracking
from melodance.models import ModelConfig
from melodance.train.config import TrainConfig, resolve_device

HISTORY_FIELDS = ("epoch", "phase", "step", "elapsed_s", "train_loss", "val_loss",
                  "val_metric_loss_per_frame")
"""history.csv columns: ``epoch`` is the running step over both phases (DVC plots' x axis),
``train_loss`` the phase's training loss, ``val_loss`` the GPT's held-out token loss."""


def validation_motion(bundle, fs, seed: int = 0) -> dict:
    """Sampled dances of the validation songs against the real ones: the ratio of body-centred
    joint speed (generated / real, raw and low-passed) and the still fraction (1 s windows
    under the real dances' 1st percentile)."""
    from melodance import FPS
    from melodance.evaluate.realism import motion_stats, still_fraction, still_threshold
    from melodance.features.motion import motion_from_features

    names = fs.split.get("val") or []
    if not names:
        return {}
    fps = float(fs.meta.get("fps", FPS))
    gen, real = [], []
    for n in names:
        seq = fs.sequences[n]
        j, r = bundle.generate(seq.music, seq.temporal, seq.root_start, seed=seed)
        gen.append(j + r[:, None, :])
        jr, rr = motion_from_features(seq.motion, seq.root_start)
        real.append(jr + rr[:, None, :])
    g = [motion_stats(x, fps) for x in gen]
    t = [motion_stats(x, fps) for x in real]
    thr = still_threshold(real, fps)

    def ratio(key: str) -> float:
        return float(np.mean([a[key] for a in g]) / max(np.mean([b[key] for b in t]), 1e-9))

    return {"val_speed_ratio": round(ratio("speed_cm_s"), 4),
            "val_speed_lowpass_ratio": round(ratio("speed_lowpass_cm_s"), 4),
            "val_accel_ratio": round(ratio("accel_cm_s2"), 4),
            "val_still_fraction": round(float(np.mean([still_fraction(x, fps, thr) for x in gen])), 4)}


def history_text(rows: list[dict]) -> str:
    buf = _io.StringIO()
    w = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def curves_figure(rows: list[dict]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for ax, phase, title in ((axes[0], "vq", "VQ-VAE (motion tokens)"),
                             (axes[1], "gpt", "GPT (next token given the music)")):
        r = [x for x in rows if x["phase"] == phase]
        ax.plot([x["step"] for x in r], [x["train_loss"] for x in r], label="train")
        v = [x for x in r if x.get("val_loss") is not None]
        if v:
            ax.plot([x["step"] for x in v], [x["val_loss"] for x in v], label="validation")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.legend()
    fig.tight_layout()
    return fig


def run_vqgpt(fs, out_dir: Path, model_cfg: ModelConfig, cfg: TrainConfig, *,
              window: int | None = None, progress: bool = True, log_model: bool = True,
              from_study: dict | None = None) -> dict:
    """Fit, log to MLflow, write the stage outputs; return the summary metrics (``window`` is
    the LSTM's and unused here: the family cuts its own windows)."""
    import matplotlib.pyplot as plt
    import torch

    from melodance.models import vqgpt
    from melodance.models.bundle import DanceBundle
    from melodance.models.generative import VQGPTModel, resolve
    from melodance.train.stage import write_outputs

    train_names = fs.split.get("train") or []
    frames = int(sum(len(fs.sequences[n].motion) for n in train_names))
    stored, vq_cfg = resolve(model_cfg, cfg.seed, frames)
    device = resolve_device(cfg.device)
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    tracking.close_stale_runs("train")
    params = {"model": stored.model_dump(), "train": cfg.model_dump(),
              "features": dict(fs.meta.get("config", {}))}
    tags = {"melodance.variant": "vqgpt", "melodance.family": "vqgpt",
            "melodance.device": device, "melodance.device_requested": cfg.device}
    rows: list[dict] = []
    offset = {"vq": 0, "gpt": vq_cfg.vq_steps}
    t_start = time.perf_counter()

    def on_step(phase: str, step: int, elapsed_s: float, figures: dict) -> None:
        tracking.log_metrics({f"{phase}_{k}": float(v) for k, v in figures.items()
                              if np.isfinite(v)}, step=step)
        rows.append({"epoch": offset[phase] + step, "phase": phase, "step": step,
                     "elapsed_s": float(elapsed_s), "train_loss": float(figures["loss"]),
                     "val_loss": figures.get("val_loss")})
        if progress:
            total = vq_cfg.vq_steps if phase == "vq" else vq_cfg.gpt_steps
            val = f", val {figures['val_loss']:.3f}" if "val_loss" in figures else ""
            print(f"train vqgpt: {phase} step {step}/{total}, loss {figures['loss']:.4f}{val}, "
                  f"{time.perf_counter() - t_start:.0f} s", file=sys.stderr, flush=True)

    try:
        with tracking.stage_run("train", params=params, run_name="train-vqgpt", tags=tags) as run:
            t0 = time.perf_counter()
            dancer = vqgpt.fit(fs, vq_cfg, on_step=on_step, device=device)
            fit_s = time.perf_counter() - t0
            dims = (fs.sequences[train_names[0]].music.shape[1],
                    fs.sequences[train_names[0]].temporal.shape[1],
                    fs.sequences[train_names[0]].motion.shape[1])
            bundle = DanceBundle(VQGPTModel(stored, *dims, dancer=dancer), fs.normalizers, fs.meta)
            last = {p: [r for r in rows if r["phase"] == p] for p in ("vq", "gpt")}
            vals = [r["val_loss"] for r in last["gpt"] if r.get("val_loss") is not None]
            metrics = {"fit_s": round(fit_s, 1), "vq_steps": vq_cfg.vq_steps,
                       "gpt_steps": vq_cfg.gpt_steps, "train_frames": frames,
                       "vq_loss": round(last["vq"][-1]["train_loss"], 5) if last["vq"] else None,
                       "gpt_loss": round(last["gpt"][-1]["train_loss"], 5) if last["gpt"] else None,
                       "gpt_val_loss": round(vals[-1], 5) if vals else None,
                       "gpt_best_val_loss": round(min(vals), 5) if vals else None,
                       **validation_motion(bundle, fs, seed=0)}
            metrics = {k: v for k, v in metrics.items() if v is not None}
            tracking.log_metrics({k: float(v) for k, v in metrics.items()})
            fig = curves_figure(rows)
            write_outputs(out_dir, run, bundle, metrics, history_text(rows), fig,
                          log_model=log_model)
            plt.close(fig)
    finally:
        torch.set_num_threads(threads)
    return metrics
