"""The model families: one entry each, the only place that maps ``model.family`` to code.

A family is two functions named by dotted path (imported only when used, so
loading an LSTM bundle never imports the generative family's code):

- ``model``: the class that rebuilds a saved model from ``(ModelConfig,
  music_dim, temporal_dim, motion_dim)`` and then its ``state_dict``
  (:meth:`melodance.models.bundle.DanceBundle.load`). Its instances have the
  bundle's interface: ``cfg``, ``music_dim``, ``temporal_dim``, ``motion_dim``,
  plain-tensor ``state_dict``, and either ``generate(music, temporal)`` on
  normalised features or, with ``raw_io = True``, ``generate_raw(music,
  temporal, seed=)`` on raw features (a whole song of any length; the seed
  picks one of the dances a generative family can give);
- ``train``: the train stage for the family, ``train(fs, out_dir, model_cfg,
  train_cfg, *, window, progress, log_model) -> metrics``: fit from the
  FeatureSet, log to MLflow, write the outputs as one unit
  (:func:`melodance.train.stage.write_outputs`).

A new family is one new module and one entry here (and its name in the ``Family``
literal of :mod:`melodance.models.config`, which :data:`~melodance.models.config.FAMILIES` lists).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from melodance.errors import InputError
from melodance.models.config import FAMILIES, ModelConfig


@dataclass(frozen=True)
class Family:
    name: str
    model: str        # "module:Class" rebuilding a saved model
    train: str        # "module:function" running the train stage
    trained: bool     # False: fitted without training (nothing to tune)
    summary: str


REGISTRY: dict[str, Family] = {f.name: f for f in (
    Family("lstm", "melodance.models.lstm:DanceModel", "melodance.train.stage:train_lstm", True,
           "the seed's four LSTM variants (model.variant), deterministic regression"),
    Family("retrieval", "melodance.models.retrieval:RetrievalModel",
           "melodance.train.retrieval:run_retrieval", False,
           "pieces of training dances chosen by their music (a baseline, no learning)"),
    Family("vqgpt", "melodance.models.generative:VQGPTModel",
           "melodance.train.generative:run_vqgpt", True,
           "motion VQ-VAE + music-conditioned GPT over motion tokens (generative, seeded)"),
)}
assert tuple(REGISTRY) == FAMILIES, "models/config.py FAMILIES and the registry disagree"


MAX_SEED = 2**31 - 1
"""Largest sampling seed (torch generators take 64 bits; 31 keep every client's int type safe)."""


def check_seed(value, name: str = "seed") -> int:
    """A sampling seed: an integer in [0, MAX_SEED]; an integral float (3.0) is taken, booleans,
    text and fractions are refused (ValueError naming ``name``)."""
    import math

    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name}: expected an integer, got {type(value).__name__}")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise InputError(f"{name}: expected an integer, got {value:.6g}")
    v = int(value)
    if not 0 <= v <= MAX_SEED:
        raise InputError(f"{name}: must be in [0, {MAX_SEED}], got {v}")
    return v


def family(name: str) -> Family:
    try:
        return REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown model family {name!r} (families: {', '.join(REGISTRY)})") from None


def _resolve(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def model_class(cfg: ModelConfig):
    """The class that rebuilds a saved model of ``cfg.family``."""
    return _resolve(family(cfg.family).model)


def train_function(cfg: ModelConfig):
    """The train stage function of ``cfg.family``."""
    return _resolve(family(cfg.family).train)
