"""The generative family (``model.family: vqgpt``) behind the bundle's model interface.

:mod:`melodance.models.vqgpt` is the family itself (a motion VQ-VAE and a
music-conditioned GPT, ``fit(fs, cfg)``, ``VQGPTDancer.generate(cond_raw,
seed=...)``); this module only wraps its public API so that
:class:`~melodance.models.bundle.DanceBundle`, and through it evaluate, render,
the pyfunc, ``melodance dance`` and the page, use it unchanged:

- the bundle's interface (``cfg``, ``music_dim``, ``temporal_dim``,
  ``motion_dim``, ``state_dict``), with ``raw_io = True``: the family
  standardises its own inputs, so the bundle hands it raw music + temporal
  features and takes raw motion features back;
- the training length in params.yaml as passes over the training data
  (``vq_epochs``, ``gpt_epochs``), turned into step counts here, so training is
  deterministic for a seed (no wall-time budgets in the pipeline) and scales
  with the data: the 43 real sequences train longer than the embedded corpus.
"""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import torch
from torch import nn

from melodance.errors import InputError
from melodance.models.config import VQGPT_DERIVED_KEYS, VQGPT_LENGTH_KEYS, ModelConfig

NO_BUDGET_S = 1e12
"""Wall-time budgets handed to ``vqgpt.fit``: never reached, the step counts end training."""
DEFAULT_LENGTH = {"vq_epochs": 100.0, "gpt_epochs": 400.0, "vq_min_steps": 0.0, "gpt_min_steps": 0.0}
"""Training length when params.yaml leaves it out: passes over the training frames, and floors
on the step counts (a small corpus needs a minimum number of steps to learn anything at all:
the embedded one gets ~140 VQ-VAE steps from 60 epochs, and its dancer then stands still)."""


def vqgpt_config(model_cfg: ModelConfig):
    """The VQGPTConfig a (resolved, saved) ``model_cfg.vqgpt`` describes."""
    from melodance.models.vqgpt import saved_config

    return saved_config(model_cfg.vqgpt)


def training_steps(frames: int, vq_cfg, vq_epochs: float, gpt_epochs: float,
                   vq_min_steps: float = 0, gpt_min_steps: float = 0) -> tuple[int, int]:
    """Step counts for ``frames`` training frames: one epoch is one pass of random windows
    over them (``batch`` windows of ``vq_window`` frames for the VQ-VAE, of ``2 * context``
    tokens of ``down`` frames for the GPT), and at least the ``*_min_steps`` floors."""
    vq_per = frames / (vq_cfg.batch * vq_cfg.vq_window)
    gpt_per = frames / (vq_cfg.batch * 2 * vq_cfg.context * vq_cfg.down)
    return (max(1, math.ceil(vq_min_steps), math.ceil(vq_epochs * vq_per)),
            max(1, math.ceil(gpt_min_steps), math.ceil(gpt_epochs * gpt_per)))


def resolve(model_cfg: ModelConfig, seed: int, frames: int) -> tuple[ModelConfig, object]:
    """params.yaml's ``model`` section -> (the model config a bundle stores, the VQGPTConfig
    to train): steps from ``vq_epochs``/``gpt_epochs`` and ``frames``, seed from ``train.seed``."""
    from melodance.models.vqgpt import VQGPTConfig

    given = dict(model_cfg.vqgpt)
    derived = sorted(set(given) & set(VQGPT_DERIVED_KEYS))
    if derived:
        raise InputError(f"params.yaml model.vqgpt: {', '.join(derived)} cannot be set (the "
                         "steps come from vq_epochs/gpt_epochs, the seed from train.seed)")
    length = {**DEFAULT_LENGTH, **{k: float(given.pop(k)) for k in VQGPT_LENGTH_KEYS if k in given}}
    for k, v in length.items():
        if not (v > 0 or k.endswith("_min_steps") and v == 0):
            raise InputError(f"params.yaml model.vqgpt.{k}: must be positive, got {v}")
    base = VQGPTConfig(**given)
    vq_steps, gpt_steps = training_steps(frames, base, **length)
    cfg = VQGPTConfig(**{**asdict(base), "vq_steps": vq_steps, "gpt_steps": gpt_steps,
                         "vq_budget_s": NO_BUDGET_S, "gpt_budget_s": NO_BUDGET_S, "seed": int(seed)})
    stored = ModelConfig.model_validate({**model_cfg.model_dump(), "family": "vqgpt",
                                         "vqgpt": {**asdict(cfg), **length}})
    return stored, cfg


class VQGPTModel(nn.Module):
    """A :class:`~melodance.models.vqgpt.VQGPTDancer` with the bundle's model interface."""

    raw_io = True  # takes raw music/temporal features, gives raw motion features

    def __init__(self, cfg: ModelConfig, music_dim: int, temporal_dim: int, motion_dim: int,
                 dancer=None):
        from melodance.models.vqgpt import VQGPTDancer

        super().__init__()
        if cfg.family != "vqgpt":
            raise ValueError(f"VQGPTModel needs model.family 'vqgpt', got {cfg.family!r}")
        self.cfg = cfg
        self.music_dim, self.temporal_dim, self.motion_dim = music_dim, temporal_dim, motion_dim
        self.dancer = dancer if dancer is not None else VQGPTDancer(
            vqgpt_config(cfg), music_dim + temporal_dim, motion_dim)

    def generate_raw(self, music: np.ndarray, temporal: np.ndarray, seed: int = 0) -> np.ndarray:
        """Raw music [T, Dm] and temporal [T, Dt] -> raw motion features [T, Dmo]; the same
        ``seed`` gives the same dance."""
        cond = np.concatenate([music, temporal], axis=1).astype(np.float32)
        with torch.no_grad():
            return self.dancer.generate(cond, seed=int(seed))
