"""The ``model`` section of params.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from melodance.params import Section

Variant = Literal["naive_lstm", "naive_lstm_temporal", "masked_lstm", "lstm_autoencoder", "retrieval"]
VARIANTS: tuple[str, ...] = ("naive_lstm", "naive_lstm_temporal", "masked_lstm", "lstm_autoencoder")
"""The seed's four LSTM variants (the ablations compare these)."""
BASELINES: tuple[str, ...] = ("retrieval",)
"""Variants fitted without training (:mod:`melodance.models.retrieval`)."""


class ModelConfig(Section):
    """Layer sizes of the LSTM models (seed section 2).

    variant:
        ``naive_lstm`` (a): music -> LSTM -> motion;
        ``naive_lstm_temporal`` (b): music + temporal indexes;
        ``masked_lstm`` (c): b with the beat mask;
        ``lstm_autoencoder`` (d): masked input -> encoder -> code -> (music reconstruction, motion);
        ``retrieval``: no learning, pieces of training dances chosen by their music
        (:mod:`melodance.models.retrieval`); uses only the ``retrieval_*`` fields.
    """

    variant: Variant = "lstm_autoencoder"
    hidden_size: int = 128       # LSTM units per layer
    layers: int = 2              # LSTM layers of the encoder / the naive LSTM / the motion decoder
    code_size: int = 32          # autoencoder code dimension per frame
    mlp_hidden: int = 128        # hidden units of the MLP head
    dropout: float = 0.1         # between LSTM layers and in the MLP head
    leaky_slope: float = 0.2     # LeakyReLU negative slope (seed: LeakyReLU, not ReLU)
    retrieval_beats: int = Field(2, ge=1)           # retrieval: beats per retrieved piece (chosen on val)
    retrieval_blend_s: float = Field(0.24, ge=0)    # retrieval: seam blend, seconds
    retrieval_tempo_weight: float = Field(1.0, ge=0)  # retrieval: cost of a 25 % tempo change
    retrieval_pose_weight: float = Field(3.0, ge=0)   # retrieval: cost of a seam (median = 1; chosen on val)
    retrieval_songs: int = Field(0, ge=0)  # retrieval: only the dances of the n nearest songs (0: all)

    @property
    def uses_temporal(self) -> bool:
        return self.variant != "naive_lstm"

    @property
    def uses_mask(self) -> bool:
        return self.variant in ("masked_lstm", "lstm_autoencoder")
