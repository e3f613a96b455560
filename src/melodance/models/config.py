"""The ``model`` section of params.yaml."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import Field, field_validator, model_validator

from melodance.errors import InputError
from melodance.params import Section

Variant = Literal["naive_lstm", "naive_lstm_temporal", "masked_lstm", "lstm_autoencoder", "retrieval"]
BASELINES: tuple[str, ...] = ("retrieval",)
"""Variants fitted without training (:mod:`melodance.models.retrieval`)."""
VARIANTS: tuple[str, ...] = tuple(v for v in get_args(Variant) if v not in BASELINES)
"""The seed's four LSTM variants a-d, in order (the ablations compare these)."""
Family = Literal["lstm", "retrieval", "vqgpt"]
FAMILIES: tuple[str, ...] = get_args(Family)
"""The model families (:mod:`melodance.models.families` maps each to its code)."""
VQGPT_LENGTH_KEYS = ("vq_epochs", "gpt_epochs", "vq_min_steps", "gpt_min_steps")
"""``model.vqgpt`` keys that are not VQGPTConfig fields: the training length in passes over
the training frames and floors on the step counts, turned into step counts by
:mod:`melodance.models.generative`."""
VQGPT_DERIVED_KEYS = ("vq_steps", "gpt_steps", "vq_budget_s", "gpt_budget_s", "seed")
"""VQGPTConfig fields params.yaml does not set: steps come from ``vq_epochs``/``gpt_epochs``
(deterministic; no wall-time budgets in the pipeline), the seed from ``train.seed``."""


class ModelConfig(Section):
    """The model family and its settings (seed section 2 for the LSTM variants).

    family:
        ``lstm`` (the seed's four variants, chosen by ``variant``), ``retrieval`` (the
        baseline), ``vqgpt`` (the generative family, :mod:`melodance.models.vqgpt`, set by
        ``vqgpt``). Absent: ``retrieval`` when ``variant`` is ``retrieval``, else ``lstm``
        (so params files and bundles written before families load unchanged).
    variant:
        ``naive_lstm`` (a): music -> LSTM -> motion;
        ``naive_lstm_temporal`` (b): music + temporal indexes;
        ``masked_lstm`` (c): b with the beat mask;
        ``lstm_autoencoder`` (d): masked input -> encoder -> code -> (music reconstruction, motion);
        ``retrieval``: no learning, pieces of training dances chosen by their music
        (:mod:`melodance.models.retrieval`); uses only the ``retrieval_*`` fields.
    """

    family: Family = "lstm"
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

    vqgpt: dict[str, Any] = {}   # vqgpt: VQGPTConfig fields + vq_epochs, gpt_epochs (models/generative.py)

    @model_validator(mode="before")
    @classmethod
    def _family_from_variant(cls, data):
        if not isinstance(data, dict):
            return data
        data = dict(data)
        variant, family = data.get("variant"), data.get("family")
        if family is None:
            data["family"] = "retrieval" if variant == "retrieval" else "lstm"
        elif family == "retrieval" and variant is None:
            data["variant"] = "retrieval"
        elif (family == "retrieval") != (variant == "retrieval") and variant is not None \
                and family != "vqgpt":
            raise InputError(f"model.family {family!r} and model.variant {variant!r} disagree "
                             "(variant 'retrieval' is the retrieval family)")
        return data

    @field_validator("vqgpt")
    @classmethod
    def _known_vqgpt_keys(cls, v: dict) -> dict:
        if not v:
            return v
        from dataclasses import fields

        from melodance.models.vqgpt import VQGPTConfig

        # A saved bundle holds the resolved VQGPTConfig (derived keys included); the train
        # stage refuses derived keys in params.yaml (models/generative.py).
        known = {f.name for f in fields(VQGPTConfig)} | set(VQGPT_LENGTH_KEYS)
        bad = sorted(set(v) - known)
        if bad:
            raise InputError(f"model.vqgpt: unknown key(s) {', '.join(bad)} (known: "
                             f"{', '.join(sorted(known - set(VQGPT_DERIVED_KEYS)))})")
        return v

    @property
    def uses_temporal(self) -> bool:
        return self.variant != "naive_lstm"

    @property
    def uses_mask(self) -> bool:
        return self.variant in ("masked_lstm", "lstm_autoencoder")
