"""Model families (:mod:`melodance.models.families`): the seed's four LSTM variants behind
one constructor, :func:`build_model`; the retrieval baseline (:mod:`melodance.models.retrieval`);
the generative vqgpt family (:mod:`melodance.models.vqgpt`)."""

from melodance.models.config import BASELINES, VARIANTS, ModelConfig

__all__ = ["BASELINES", "VARIANTS", "ModelConfig", "DanceModel", "build_model"]


def __getattr__(name: str):
    # torch loads only when a model is used: `melodance --help` imports the CLI's
    # commands, which read the family and variant names from models.config.
    if name in ("DanceModel", "build_model"):
        from melodance.models import lstm

        return getattr(lstm, name)
    raise AttributeError(f"module 'melodance.models' has no attribute {name!r}")
