"""The seed's four LSTM variants behind one constructor, :func:`build_model`; the retrieval
baseline in :mod:`melodance.models.retrieval`."""

from melodance.models.config import BASELINES, VARIANTS, ModelConfig
from melodance.models.lstm import DanceModel, build_model

__all__ = ["BASELINES", "VARIANTS", "ModelConfig", "DanceModel", "build_model"]
