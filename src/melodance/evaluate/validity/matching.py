"""A learned music-motion matching score: two small encoders trained with InfoNCE.

A motion window and a music window of the same length (``window_s``) are
embedded by two 1-D convolutional encoders into one unit sphere; training
pulls each motion window towards the music it was danced to and pushes it
away from the other music windows of the batch (symmetric InfoNCE, CLIP
style). The encoders keep the time axis to the end (strided convolutions,
then a linear layer over the flattened result) rather than pooling it away,
so *when* things happen can matter, not only what.

Inputs, per frame, are rhythm only, and blind to where the dancer stands and
faces (which says nothing about the music):

- motion ``[T, 4]``: mean speed of the foot points, of all joints and of the
  hands (cm/s), and the pelvis's vertical velocity (cm/s);
- music ``[T, 6]``: the seed16 tempogram bands and onset strength.

With only 26 training dances, richer inputs (all joints; MFCCs and chroma)
let the encoders memorise which song goes with which dance: on the real data
that model reached a training ROC AUC of 0.99 and 0.53 on test windows.

Both are standardised with the training windows' mean and std (stored with
the model). The score of a dance under some music
(:func:`matching_score`) is the mean cosine similarity of their embeddings
over windows; :func:`roc_auc` measures how well it separates matched from
mismatched window pairs.

Training is seeded and single-process; everything that touches MLflow goes
through :mod:`melodance.tracking` in :func:`train_and_track`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from melodance.data.skeleton import FOOT_JOINTS, N_JOINTS
from melodance.errors import InputError
from melodance.evaluate.validity.music import MusicInfo, ScoreFn
from melodance.params import Section

STAGE = "matching"
PELVIS = 2


class MatchingConfig(Section):
    """The learned matching model (``validity.matching`` in ``params.yaml``)."""

    window_s: float = Field(5.12, gt=0.0)      # window length, seconds (128 frames at 25 fps)
    channels: int = Field(16, ge=4)            # conv channels of both encoders
    embed_dim: int = Field(32, ge=2)
    temperature: float = Field(0.1, gt=0.0)    # InfoNCE softmax temperature
    steps: int = Field(800, ge=1)              # optimiser steps
    steps_per_epoch: int = Field(100, ge=1)    # loss curve resolution (one MLflow step each)
    batch_size: int = Field(64, ge=2)
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    eval_stride_s: float = Field(2.56, gt=0.0)  # window hop when scoring and for the ROC AUC
    seed: int = 0
    threads: int = Field(2, ge=1)


HAND_JOINTS = (5, 6, 14, 15)  # wrists and hands


def motion_inputs(joints_world: np.ndarray, fps: float) -> np.ndarray:
    """Per-frame motion inputs of the matching model.

    Args:
        joints_world: ``[T, 23, 3]`` world joint positions, cm, y up.
        fps: frames per second.

    Returns:
        ``[T, 4]`` float32: mean speed of the foot points, of all joints and of
        the hands (cm/s), and the pelvis's vertical velocity (cm/s, up > 0);
        central differences.
    """
    x = np.asarray(joints_world, dtype=np.float64)
    if x.ndim != 3 or x.shape[1:] != (N_JOINTS, 3) or len(x) < 2:
        raise ValueError(f"joints must be [frames >= 2, {N_JOINTS}, 3], got shape {x.shape}")
    v = np.gradient(x, axis=0) * fps
    speed = np.linalg.norm(v, axis=-1)
    return np.stack([speed[:, list(FOOT_JOINTS)].mean(1), speed.mean(1),
                     speed[:, list(HAND_JOINTS)].mean(1), v[:, PELVIS, 1]], axis=1).astype(np.float32)


def music_inputs(music: MusicInfo) -> np.ndarray:
    """Per-frame music inputs: the seed16 tempogram bands and onset strength, ``[T, 6]`` float32."""
    from melodance.features.music import SEED16_GROUPS

    if music.features is None or music.features.ndim != 2 or music.features.shape[1] != 16:
        shape = None if music.features is None else music.features.shape
        raise ValueError(f"the matching model needs seed16 music features [T, 16], got {shape}")
    spans = {name: (lo, hi) for name, lo, hi in SEED16_GROUPS}
    lo, hi = spans["tempogram"][0], spans["onset_strength"][1]
    return np.asarray(music.features[:, lo:hi], dtype=np.float32)


def _torch():
    import torch

    return torch


def _encoder(in_dim: int, channels: int, window: int, embed_dim: int):
    """Conv encoder ``[B, T, in_dim] -> [B, embed_dim]``, unit length."""
    nn = _torch().nn

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            c = channels
            self.net = nn.Sequential(
                nn.Conv1d(in_dim, c, 5, padding=2), nn.GELU(),
                nn.Conv1d(c, c, 5, stride=2, padding=2), nn.GELU(),
                nn.Conv1d(c, c, 5, stride=2, padding=2), nn.GELU(),
                nn.Conv1d(c, c, 5, stride=2, padding=2), nn.GELU(),
            )
            t = window
            for _ in range(3):
                t = (t - 1) // 2 + 1
            self.head = nn.Linear(c * t, embed_dim)

        def forward(self, x):
            h = self.net(x.transpose(1, 2)).flatten(1)
            return nn.functional.normalize(self.head(h), dim=-1)

    return Encoder()


class MatchingModel:
    """The two encoders, their input standardisation and config (CPU only)."""

    def __init__(self, cfg: MatchingConfig, fps: float, motion_dim: int, music_dim: int,
                 norm: dict[str, np.ndarray] | None = None):
        torch = _torch()
        self.cfg, self.fps = cfg, float(fps)
        self.window = int(round(cfg.window_s * fps))
        if self.window < 8:
            raise ValueError(f"window_s {cfg.window_s} s is under 8 frames at {fps} fps")
        self.motion_dim, self.music_dim = motion_dim, music_dim
        torch.manual_seed(cfg.seed)
        self.motion_enc = _encoder(motion_dim, cfg.channels, self.window, cfg.embed_dim)
        self.music_enc = _encoder(music_dim, cfg.channels, self.window, cfg.embed_dim)
        self.norm = norm or {
            "motion_mean": np.zeros(motion_dim, np.float32), "motion_std": np.ones(motion_dim, np.float32),
            "music_mean": np.zeros(music_dim, np.float32), "music_std": np.ones(music_dim, np.float32),
        }

    def parameters(self):
        return [*self.motion_enc.parameters(), *self.music_enc.parameters()]

    def train(self, mode: bool = True) -> None:
        self.motion_enc.train(mode)
        self.music_enc.train(mode)

    def _norm(self, x: np.ndarray, key: str) -> np.ndarray:
        return (x - self.norm[f"{key}_mean"]) / self.norm[f"{key}_std"]

    def embed(self, motion_windows: np.ndarray, music_windows: np.ndarray):
        """Embeddings of standardised-on-the-fly windows ``[B, W, D]`` -> two ``[B, E]`` tensors."""
        torch = _torch()
        zm = self.motion_enc(torch.from_numpy(self._norm(motion_windows, "motion").astype(np.float32)))
        za = self.music_enc(torch.from_numpy(self._norm(music_windows, "music").astype(np.float32)))
        return zm, za

    def window_starts(self, n_frames: int) -> np.ndarray:
        """Starts of the scoring windows: every ``eval_stride_s``, the last one flush with the end."""
        W = self.window
        if n_frames < W:
            return np.zeros(0, dtype=np.int64)
        stride = max(int(round(self.cfg.eval_stride_s * self.fps)), 1)
        starts = np.arange(0, n_frames - W + 1, stride)
        if starts[-1] != n_frames - W:
            starts = np.r_[starts, n_frames - W]
        return starts.astype(np.int64)

    def similarities(self, motion: np.ndarray, music: np.ndarray) -> np.ndarray:
        """Cosine similarity per scoring window of per-frame inputs ``[T, Dm]``, ``[T, Da]``."""
        torch = _torch()
        T = min(len(motion), len(music))
        starts = self.window_starts(T)
        if starts.size == 0:
            return np.zeros(0)
        idx = starts[:, None] + np.arange(self.window)
        self.train(False)
        with torch.no_grad():
            zm, za = self.embed(motion[idx], music[idx])
        return (zm * za).sum(-1).numpy().astype(np.float64)

    def save(self, path: str | Path) -> None:
        torch = _torch()
        from melodance.io import atomic_path

        state = {"config": self.cfg.model_dump(), "fps": self.fps, "motion_dim": self.motion_dim,
                 "music_dim": self.music_dim, "norm": {k: v.tolist() for k, v in self.norm.items()},
                 "motion_enc": self.motion_enc.state_dict(), "music_enc": self.music_enc.state_dict()}
        with atomic_path(path) as tmp:
            torch.save(state, tmp)

    @classmethod
    def load(cls, path: str | Path) -> MatchingModel:
        torch = _torch()
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no matching model (run `melodance validity`)")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - torch raises several types for bad files
            raise InputError(f"{path}: not a matching model ({e})") from e
        norm = {k: np.asarray(v, np.float32) for k, v in state["norm"].items()}
        m = cls(MatchingConfig(**state["config"]), state["fps"], state["motion_dim"],
                state["music_dim"], norm)
        m.motion_enc.load_state_dict(state["motion_enc"])
        m.music_enc.load_state_dict(state["music_enc"])
        return m


def matching_score(model: MatchingModel) -> ScoreFn:
    """The model as a metric ``score(joints_world, fps, music)``: mean window cosine similarity.

    In ``[-1, 1]``, higher is better; ``nan`` for a dance shorter than one window.
    """

    def score(joints_world: np.ndarray, fps: float, music: MusicInfo) -> float:
        if abs(fps - model.fps) > 1e-6 or abs(music.fps - model.fps) > 1e-6:
            raise InputError(f"matching model trained at {model.fps} fps, got motion at {fps}, "
                             f"music at {music.fps}")
        sims = model.similarities(motion_inputs(joints_world, fps), music_inputs(music))
        return float(sims.mean()) if sims.size else float("nan")

    return score


def info_nce(zm, za, temperature: float, ignore=None):
    """Symmetric InfoNCE of matched rows ``zm[k] <-> za[k]`` (unit vectors ``[B, E]``).

    ``ignore``: ``[B, B]`` bool, off-diagonal pairs left out of the softmax
    (e.g. overlapping windows of one dance, which are not true negatives).
    """
    torch = _torch()
    logits = zm @ za.T / temperature
    if ignore is not None:
        logits = logits.masked_fill(ignore, float("-inf"))
    target = torch.arange(len(zm))
    ce = torch.nn.functional.cross_entropy
    return 0.5 * (ce(logits, target) + ce(logits.T, target))


class _Windows:
    """Random same-position motion/music windows from a set of sequences."""

    def __init__(self, motions: Sequence[np.ndarray], musics: Sequence[np.ndarray], window: int):
        self.motions, self.musics, self.W = list(motions), list(musics), window
        self.lengths = np.array([min(len(a), len(b)) for a, b in zip(motions, musics, strict=True)])
        n_win = np.maximum(self.lengths - window + 1, 0)
        if n_win.sum() == 0:
            raise InputError(f"no sequence is {window} frames long")
        self.p = n_win / n_win.sum()

    def sample(self, rng: np.random.Generator, batch: int):
        seq = rng.choice(len(self.p), size=batch, p=self.p)
        start = np.array([rng.integers(0, self.lengths[s] - self.W + 1) for s in seq])
        mo = np.stack([self.motions[s][a:a + self.W] for s, a in zip(seq, start, strict=True)])
        mu = np.stack([self.musics[s][a:a + self.W] for s, a in zip(seq, start, strict=True)])
        # Overlapping windows of one sequence share music and motion: not negatives.
        ignore = (seq[:, None] == seq[None, :]) & (np.abs(start[:, None] - start[None, :]) < self.W)
        np.fill_diagonal(ignore, False)
        return mo, mu, ignore


def train_matching(motions: Sequence[np.ndarray], musics: Sequence[MusicInfo], fps: float,
                   cfg: MatchingConfig, val: tuple[Sequence, Sequence] | None = None,
                   on_epoch=None) -> tuple[MatchingModel, list[dict]]:
    """Train the two encoders on random windows of the given dances.

    Args:
        motions: training dances, ``[T, J, 3]`` world joints, cm.
        musics: their music (with ``features``).
        fps: frames per second.
        cfg: model and training settings.
        val: optional (motions, musics) whose InfoNCE loss is reported each
            epoch (a fixed, seeded set of windows); never used for training.
        on_epoch: optional callback ``(epoch, record)`` after every epoch.

    Returns:
        The model and one record per epoch: ``epoch``, ``train_loss`` (mean
        over the epoch's steps) and ``val_loss`` when ``val`` is given.
    """
    torch = _torch()
    prev_threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        mo = [motion_inputs(x, fps) for x in motions]
        mu = [music_inputs(m) for m in musics]
        allm, alla = np.concatenate(mo), np.concatenate(mu)
        norm = {"motion_mean": allm.mean(0), "motion_std": np.maximum(allm.std(0), 1e-6),
                "music_mean": alla.mean(0), "music_std": np.maximum(alla.std(0), 1e-6)}
        model = MatchingModel(cfg, fps, allm.shape[1], alla.shape[1],
                              {k: v.astype(np.float32) for k, v in norm.items()})
        rng = np.random.default_rng(cfg.seed)
        windows = _Windows(mo, mu, model.window)
        val_batch = None
        if val is not None and len(val[0]):
            vw = _Windows([motion_inputs(x, fps) for x in val[0]], [music_inputs(m) for m in val[1]],
                          model.window)
            val_batch = vw.sample(np.random.default_rng(cfg.seed + 1), cfg.batch_size)
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        history, losses = [], []
        for step in range(1, cfg.steps + 1):
            model.train(True)
            a, b, ignore = windows.sample(rng, cfg.batch_size)
            zm, za = model.embed(a, b)
            loss = info_nce(zm, za, cfg.temperature, torch.from_numpy(ignore))
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if step % cfg.steps_per_epoch == 0 or step == cfg.steps:
                rec = {"epoch": len(history) + 1, "train_loss": float(np.mean(losses))}
                losses = []
                if val_batch is not None:
                    model.train(False)
                    with torch.no_grad():
                        zm, za = model.embed(val_batch[0], val_batch[1])
                        rec["val_loss"] = float(info_nce(zm, za, cfg.temperature,
                                                         torch.from_numpy(val_batch[2])))
                history.append(rec)
                if on_epoch is not None:
                    on_epoch(rec["epoch"], rec)
        model.train(False)
        return model, history
    finally:
        torch.set_num_threads(prev_threads)


def roc_auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve: P(a positive scores above a negative), ties count 1/2.

    The Mann-Whitney statistic over all pairs; ``nan`` if either set is empty.
    """
    from scipy.stats import rankdata

    pos = np.asarray(positive, dtype=np.float64).ravel()
    neg = np.asarray(negative, dtype=np.float64).ravel()
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    ranks = rankdata(np.r_[pos, neg])
    return float((ranks[: pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def pair_auc(model: MatchingModel, motions: Sequence[np.ndarray], musics: Sequence[MusicInfo],
             styles: Sequence[str], fps: float, min_shift_s: float = 2.0) -> dict[str, float]:
    """ROC AUC of matched against mismatched window pairs of a held-out set.

    Matched: a motion window with the music window it was danced to.
    Mismatched, three kinds: the same stretch of every other song of the set
    (``auc``), of the songs of the same style only (``auc_within_style``), and
    the dance's own song shifted by at least ``min_shift_s`` seconds
    (``auc_shifted``: only timing differs, not the song).

    Returns:
        ``auc``, ``auc_within_style``, ``auc_shifted`` and the pair counts.
    """
    import torch

    mo = [motion_inputs(x, fps) for x in motions]
    mu = [music_inputs(m) for m in musics]
    W = model.window
    model.train(False)
    emb_m, emb_a, starts = [], [], []
    with torch.no_grad():
        for a, b in zip(mo, mu, strict=True):
            T = min(len(a), len(b))
            s = model.window_starts(T)
            idx = s[:, None] + np.arange(W)
            zm, za = model.embed(a[idx], b[idx]) if s.size else (torch.zeros(0), torch.zeros(0))
            emb_m.append(zm.numpy())
            emb_a.append(za.numpy())
            starts.append(s)
    pos, neg, neg_w, neg_s = [], [], [], []
    shift = int(round(min_shift_s * fps))
    for i in range(len(mo)):
        pos.append((emb_m[i] * emb_a[i]).sum(-1))
        for j in range(len(mo)):
            if j == i:
                continue
            # Windows at the same start in both sequences.
            common, ii, jj = np.intersect1d(starts[i], starts[j], return_indices=True)
            if common.size == 0:
                continue
            sims = (emb_m[i][ii] * emb_a[j][jj]).sum(-1)
            neg.append(sims)
            if styles[i] == styles[j]:
                neg_w.append(sims)
        far = np.abs(starts[i][:, None] - starts[i][None, :]) >= shift
        neg_s.append((emb_m[i] @ emb_a[i].T)[far])
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0)  # noqa: E731
    pos, neg, neg_w, neg_s = cat(pos), cat(neg), cat(neg_w), cat(neg_s)
    return {"auc": roc_auc(pos, neg), "auc_within_style": roc_auc(pos, neg_w),
            "auc_shifted": roc_auc(pos, neg_s), "n_matched": int(pos.size),
            "n_mismatched": int(neg.size), "n_mismatched_within_style": int(neg_w.size),
            "n_shifted": int(neg_s.size)}


def train_and_track(train: tuple[Sequence, Sequence], val: tuple[Sequence, Sequence] | None,
                    test: tuple[Sequence, Sequence, Sequence], fps: float, cfg: MatchingConfig,
                    out_path: str | Path | None = None, log_mlflow: bool = True,
                    extra_params: dict | None = None) -> tuple[MatchingModel, dict]:
    """Train, score the test windows and track it all as one MLflow run (stage ``matching``).

    Args:
        train: (motions, musics) of the training split.
        val: (motions, musics) for the per-epoch validation loss, or None.
        test: (motions, musics, styles) for the ROC AUC.
        fps: frames per second.
        cfg: the model's settings (logged as params).
        out_path: where to save the model (also logged as an artifact).
        log_mlflow: False trains without MLflow (tests, dry runs).
        extra_params: more params to log (e.g. which sequences).

    Returns:
        The model and ``{"history": [...], "test": pair_auc(...), "run_id": ...}``.
    """
    from melodance import tracking

    def fit(on_epoch=None):
        model, history = train_matching(train[0], train[1], fps, cfg, val=val, on_epoch=on_epoch)
        aucs = pair_auc(model, test[0], test[1], test[2], fps)
        if out_path is not None:
            model.save(out_path)
        return model, history, aucs

    if not log_mlflow:
        model, history, aucs = fit()
        return model, {"history": history, "test": aucs, "run_id": None}
    params = {**cfg.model_dump(), "n_train_dances": len(train[0]), "n_test_dances": len(test[0]),
              **(extra_params or {})}
    with tracking.stage_run(STAGE, params=params, run_name="music-motion-matching") as run:
        model, history, aucs = fit(lambda epoch, rec: tracking.log_metrics(
            {k: v for k, v in rec.items() if k != "epoch"}, step=epoch))
        tracking.log_metrics({f"test_roc_{k}" if k.startswith("auc") else f"test_{k}": v
                              for k, v in aucs.items()})
        if out_path is not None:
            tracking.log_artifact(out_path)
        run_id = run.info.run_id
    return model, {"history": history, "test": aucs, "run_id": run_id}
