"""The ``model`` section of params.yaml."""

from __future__ import annotations

from typing import Literal

from melodance.params import Section

Variant = Literal["naive_lstm", "naive_lstm_temporal", "masked_lstm", "lstm_autoencoder"]
VARIANTS: tuple[str, ...] = ("naive_lstm", "naive_lstm_temporal", "masked_lstm", "lstm_autoencoder")


class ModelConfig(Section):
    """Layer sizes of the LSTM models (seed section 2).

    variant:
        ``naive_lstm`` (a): music -> LSTM -> motion;
        ``naive_lstm_temporal`` (b): music + temporal indexes;
        ``masked_lstm`` (c): b with the beat mask;
        ``lstm_autoencoder`` (d): masked input -> encoder -> code -> (music reconstruction, motion).
    """

    variant: Variant = "lstm_autoencoder"
    hidden_size: int = 128       # LSTM units per layer
    layers: int = 2              # LSTM layers of the encoder / the naive LSTM / the motion decoder
    code_size: int = 32          # autoencoder code dimension per frame
    mlp_hidden: int = 128        # hidden units of the MLP head
    dropout: float = 0.1         # between LSTM layers and in the MLP head
    leaky_slope: float = 0.2     # LeakyReLU negative slope (seed: LeakyReLU, not ReLU)

    @property
    def uses_temporal(self) -> bool:
        return self.variant != "naive_lstm"

    @property
    def uses_mask(self) -> bool:
        return self.variant in ("masked_lstm", "lstm_autoencoder")
