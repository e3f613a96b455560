"""The training loop: mini-batches of windows, Adam, early stopping, checkpoints.

Deterministic on CPU for a given seed: weights are seeded, each epoch's
shuffle comes from ``(seed, epoch)``, and the checkpoint stores the torch RNG
state (dropout), so a run resumed from a checkpoint reaches the same weights
as an uninterrupted one.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from melodance.errors import InputError
from melodance.models import ModelConfig, build_model
from melodance.models.lstm import DanceModel
from melodance.train.config import TrainConfig


@dataclass
class EpochStats:
    epoch: int
    train_loss: float
    train_motion_loss: float
    train_recon_loss: float
    val_loss: float
    val_motion_loss: float
    val_recon_loss: float
    val_metric_loss: float            # seed 4a: sum over frames of per-frame pose error, cm
    val_metric_loss_per_frame: float  # the same, mean per frame, cm
    frames_per_s: float               # training throughput (frames seen / s)

    def metrics(self) -> dict[str, float]:
        d = dict(self.__dict__)
        d.pop("epoch")
        return d


@dataclass
class TrainResult:
    model: DanceModel
    history: list[EpochStats]
    best_epoch: int
    stopped_early: bool
    resumed_from_epoch: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def best(self) -> EpochStats:
        return next(h for h in self.history if h.epoch == self.best_epoch)


def to_tensors(windows: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32))
            for k, v in windows.items()}


def batch_loss(model: DanceModel, batch: dict[str, torch.Tensor], recon_weight: float):
    """(total, motion, recon) mean-squared losses on normalised features."""
    temporal = batch["temporal"] if model.cfg.uses_temporal or model.cfg.uses_mask else None
    out = model(batch["music"], temporal)
    motion = torch.mean((out["motion"] - batch["motion"]) ** 2)
    if "recon" in out:
        recon = torch.mean((out["recon"] - out["target_recon"]) ** 2)
        return motion + recon_weight * recon, motion, recon
    zero = torch.zeros((), dtype=motion.dtype)
    return motion, motion, zero


@torch.no_grad()
def evaluate_windows(model: DanceModel, data: dict[str, torch.Tensor], batch_size: int,
                     recon_weight: float) -> tuple[float, float, float]:
    model.eval()
    n = next(iter(data.values())).shape[0]
    tot = np.zeros(3)
    for s in range(0, n, batch_size):
        batch = {k: v[s:s + batch_size] for k, v in data.items()}
        losses = batch_loss(model, batch, recon_weight)
        tot += np.array([float(x) for x in losses]) * batch["music"].shape[0]
    return tuple(tot / max(n, 1))


@torch.no_grad()
def metric_loss_on_sequences(model: DanceModel, sequences: list[dict], motion_norm) -> tuple:
    """Seed 4a on whole sequences generated from their music (not teacher-forced windows).

    sequences: dicts of normalised ``music``, ``temporal`` and raw ``motion_raw``.
    Returns (sum over all frames of the per-frame pose error, mean per frame), cm.
    """
    from melodance.evaluate.metrics import metric_loss
    from melodance.features.motion import motion_from_features

    total, frames = 0.0, 0
    origin = np.zeros(3, np.float32)
    for seq in sequences:
        temporal = torch.from_numpy(seq["temporal"]) if model.cfg.uses_temporal else None
        pred = model.generate(torch.from_numpy(seq["music"]), temporal).numpy()
        pred, _ = motion_from_features(motion_norm.inverse_transform(pred), origin)
        true, _ = motion_from_features(seq["motion_raw"], origin)
        total += metric_loss(pred, true)
        frames += len(true)
    return total, total / max(frames, 1)


def config_key(*parts: dict) -> str:
    """A short hash identifying a training setup (for checkpoint file names)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def fit(fs, model_cfg: ModelConfig, cfg: TrainConfig, *,
        checkpoint_path: Path | None = None,
        on_epoch: Callable[[EpochStats], None] | None = None,
        progress: bool = True, window: int | None = None,
        stride: int | None = None) -> TrainResult:
    """Train ``model_cfg`` on the feature set ``fs`` (a features.pipeline.FeatureSet).

    ``on_epoch`` is called after each epoch (MLflow logging, Optuna pruning;
    it may raise to stop). With ``checkpoint_path``, state is saved after every
    epoch and training resumes from it when the file exists. ``window`` and
    ``stride`` (frames) override the feature set's windows; a window alone keeps
    the features' overlap ratio.
    """
    from tqdm import tqdm

    torch.set_num_threads(cfg.threads)
    train, val, val_seqs = _training_data(fs, window, stride)
    dims = (train["music"].shape[-1], train["temporal"].shape[-1], train["motion"].shape[-1])
    model = build_model(model_cfg, *dims, seed=cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    history, best_val, best_epoch, best_state, bad, start_epoch = _resume(checkpoint_path, model, opt)
    resumed_from = start_epoch - 1
    if resumed_from == 0:
        torch.manual_seed(cfg.seed)

    n = train["music"].shape[0]
    stopped_early = bool(history) and bad >= cfg.patience
    bar = tqdm(range(start_epoch, cfg.epochs + 1), desc=f"train {model_cfg.variant}",
               unit="epoch", disable=not progress, leave=False)
    for epoch in bar:
        if stopped_early:
            break
        tr, elapsed = _train_epoch(model, opt, train, cfg, epoch)
        va = evaluate_windows(model, val, 256, cfg.recon_weight)
        ml_sum, ml_frame = metric_loss_on_sequences(model, val_seqs, fs.normalizers["motion"])
        stats = EpochStats(epoch, *map(float, tr), *map(float, va), float(ml_sum), float(ml_frame),
                           n * train["music"].shape[1] / max(elapsed, 1e-9))
        history.append(stats)
        if stats.val_loss < best_val - cfg.min_delta:
            best_val, best_epoch, bad = stats.val_loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            bad += 1
        stopped_early = bad >= cfg.patience
        bar.set_postfix(train=f"{stats.train_loss:.4f}", val=f"{stats.val_loss:.4f}",
                        cm=f"{stats.val_metric_loss_per_frame:.1f}")
        if checkpoint_path is not None:
            _save_checkpoint(checkpoint_path, model, opt, epoch, history, best_val, best_epoch,
                             best_state, bad)
        if on_epoch is not None:
            on_epoch(stats)
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return TrainResult(model, history, best_epoch, stopped_early, resumed_from)


def _training_data(fs, window: int | None, stride: int | None) -> tuple[dict, dict, list[dict]]:
    """Training and validation windows as tensors, and the whole validation sequences
    (normalised music and temporal indexes, raw motion) for the per-epoch metric_loss."""
    fcfg = fs.settings
    if window is not None and stride is None:  # keep the features' overlap ratio
        stride = max(1, round(window * fcfg.stride / fcfg.window))
    wkw = {"window": window, "stride": stride}
    streams = ("music", "temporal", "motion")
    train = to_tensors({k: v for k, v in fs.windows("train", **wkw).items() if k in streams})
    val = to_tensors({k: v for k, v in fs.windows("val", **wkw).items() if k in streams})
    if train["music"].shape[0] == 0:
        raise InputError("no training windows: sequences shorter than features.window?")
    if val["music"].shape[0] == 0:
        raise InputError("no validation windows: validation sequences shorter than features.window?")
    val_seqs = []
    for name in fs.split["val"]:
        norm = fs.normalized(name)
        val_seqs.append({"music": norm["music"], "temporal": norm["temporal"],
                         "motion_raw": fs.sequences[name].motion})
    return train, val, val_seqs


def _resume(checkpoint_path: Path | None, model, opt) -> tuple[list[EpochStats], float, int, dict | None,
                                                              int, int]:
    """(history, best_val, best_epoch, best_state, bad epochs, first epoch to run): from the
    checkpoint when there is one (model, optimizer and torch RNG restored in place)."""
    if checkpoint_path is None or not Path(checkpoint_path).is_file():
        return [], float("inf"), 0, None, 0, 1
    ck = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    torch.set_rng_state(ck["torch_rng"])
    return ([EpochStats(**h) for h in ck["history"]], ck["best_val"], ck["best_epoch"],
            ck["best_state"], ck["bad"], ck["epoch"] + 1)


def _train_epoch(model, opt, train: dict, cfg: TrainConfig, epoch: int) -> tuple[np.ndarray, float]:
    """One pass over the training windows in the epoch's seeded order; returns the mean
    (loss, motion loss, reconstruction loss) per window and the seconds it took."""
    import time

    model.train()
    n = train["music"].shape[0]
    order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
    tot, t0 = np.zeros(3), time.perf_counter()
    for s in range(0, n, cfg.batch_size):
        idx = torch.from_numpy(order[s:s + cfg.batch_size])
        batch = {k: v[idx] for k, v in train.items()}
        loss, motion, recon = batch_loss(model, batch, cfg.recon_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        tot += np.array([loss.item(), motion.item(), recon.item()]) * len(idx)
    return tot / n, time.perf_counter() - t0


def _save_checkpoint(path, model, opt, epoch, history, best_val, best_epoch, best_state, bad):
    from melodance import io

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": model.state_dict(), "optimizer": opt.state_dict(),
        "torch_rng": torch.get_rng_state(), "epoch": epoch,
        "history": [h.__dict__ for h in history], "best_val": best_val,
        "best_epoch": best_epoch, "best_state": best_state, "bad": bad,
    }
    with io.atomic_path(path) as tmp:
        torch.save(payload, tmp)
