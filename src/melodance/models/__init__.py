"""The seed's four LSTM variants behind one constructor, :func:`build_model`."""

from melodance.models.config import VARIANTS, ModelConfig
from melodance.models.lstm import DanceModel, build_model

__all__ = ["VARIANTS", "ModelConfig", "DanceModel", "build_model"]
