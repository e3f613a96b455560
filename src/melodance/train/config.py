"""The ``train`` section of params.yaml."""

from __future__ import annotations

from melodance.params import Section


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
    threads: int = 2              # torch CPU threads
    use_tuned: bool = False       # take model/train values from the tune stage's best_params.json
    checkpoint_dir: str = "outputs/checkpoints"
