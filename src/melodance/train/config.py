"""The ``train`` section of params.yaml."""

from __future__ import annotations

from typing import Literal

from melodance.errors import InputError
from melodance.params import Section

Device = Literal["auto", "cpu", "cuda"]


class TrainConfig(Section):
    seed: int = 0
    epochs: int = 30
    batch_size: int = 64          # windows per Adam step; throughput is flat past 64 on 2 cores
    lr: float = 1e-3              # seed: Adam, learning rate 1e-3
    weight_decay: float = 0.0
    recon_weight: float = 0.5     # autoencoder: loss = motion + recon_weight * reconstruction
    grad_clip: float = 1.0        # max gradient norm
    patience: int = 8             # early stopping: epochs without a better validation loss
    min_delta: float = 1e-5       # improvement that resets the patience counter
    threads: int = 1              # torch CPU threads (2 lose badly when the other core is busy)
    use_tuned: bool = False       # take model/train values from the tune stage's best_params.json
    checkpoint_dir: str = "outputs/checkpoints"
    device: Device = "auto"       # auto: a GPU when there is one (recorded; see resolve_device)


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one is an error.

    The generative family trains there (``vqgpt.fit(device=...)``, the GPT in bfloat16 on a
    GPU); the seed's LSTM loop stays on the CPU. The resolved device is recorded in the
    MLflow run (tag ``melodance.device``)."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("train.device is 'cuda' but torch sees no GPU (use auto or cpu)")
    return device


def apply_overrides(params: dict, model_cfg, train_cfg: TrainConfig):
    """Put ``{"model.x": v, "train.y": w, "features.window": n}`` (tuned values) onto the configs.

    Returns ``(model_cfg, train_cfg, window)``; ``window`` (frames) is None when not given.
    """
    over: dict[str, dict] = {"model": {}, "train": {}, "features": {}}
    nested: dict[str, dict] = {}   # model.vqgpt.lr -> {"vqgpt": {"lr": ...}}
    for key, value in params.items():
        section, _, name = key.partition(".")
        if section not in over:
            raise InputError(f"{key!r} is not a model.*, train.* or features.window setting")
        if section == "model" and "." in name:
            group, _, field = name.partition(".")
            nested.setdefault(group, {})[field] = value
            continue
        over[section][name] = value
    for group, values in nested.items():
        base = getattr(model_cfg, group, None)
        if not isinstance(base, dict):
            raise InputError(f"model.{group}.* cannot be tuned (model.{group} is not a settings group)")
        over["model"][group] = {**base, **values}
    unknown = set(over["features"]) - {"window"}
    if unknown:
        raise InputError(f"features.{unknown.pop()} cannot be tuned (only features.window)")
    m = type(model_cfg).model_validate({**model_cfg.model_dump(), **over["model"]})
    t = TrainConfig.model_validate({**train_cfg.model_dump(), **over["train"]})
    return m, t, over["features"].get("window")
