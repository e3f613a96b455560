"""A trained model with everything needed to go from music features to motion.

The bundle holds the weights, the model config, the feature settings and the
normalisers fitted at training time, so generation (and serving) can never
disagree with training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from melodance.models.config import ModelConfig
from melodance.models.lstm import DanceModel


def model_class(variant: str | None):
    """The class that rebuilds a saved model: the dispatch point between model families."""
    if variant == "retrieval":
        from melodance.models.retrieval import RetrievalModel

        return RetrievalModel
    return DanceModel


@dataclass
class DanceBundle:
    model: DanceModel  # or any model with the same generate/dims interface (RetrievalModel)
    normalizers: dict            # "music", "temporal", "motion" -> features.normalize.Normalizer
    features_meta: dict          # features.pipeline.FeatureSet.meta (config, groups, fps, dims)
    extra: dict = field(default_factory=dict)  # e.g. the MLflow run id and metrics of training

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        from melodance import io

        payload = {
            "format": "melodance-bundle-1",
            "model_config": self.model.cfg.model_dump(),
            "dims": [self.model.music_dim, self.model.temporal_dim, self.model.motion_dim],
            "state_dict": self.model.state_dict(),
            "normalizers": {k: v.to_dict() for k, v in self.normalizers.items()},
            "features_meta": self.features_meta,
            "extra": {**self.extra, **(extra or {})},
        }
        with io.atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path) -> DanceBundle:
        from melodance.features.normalize import Normalizer

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no trained model here (run the train stage first)")
        payload = torch.load(path, map_location="cpu", weights_only=False)
        if payload.get("format") != "melodance-bundle-1":
            raise ValueError(f"{path}: not a melodance model bundle")
        model = model_class(payload["model_config"].get("variant"))(
            ModelConfig(**payload["model_config"]), *payload["dims"])
        model.load_state_dict(payload["state_dict"])
        model.eval()
        norms = {k: Normalizer.from_dict(v) for k, v in payload["normalizers"].items()}
        return cls(model, norms, payload["features_meta"], payload.get("extra") or {})

    def generate_features(self, music: np.ndarray, temporal: np.ndarray) -> np.ndarray:
        """Raw (unnormalised) music [T, Dm] and temporal [T, 3] -> raw motion features [T, Dmo]."""
        if music.ndim != 2 or music.shape[1] != self.model.music_dim:
            raise ValueError(f"music features must be [frames, {self.model.music_dim}], "
                             f"got {list(music.shape)}")
        if temporal.shape != (music.shape[0], self.model.temporal_dim):
            raise ValueError(f"temporal indexes must be [{music.shape[0]}, "
                             f"{self.model.temporal_dim}], got {list(temporal.shape)}")
        m = torch.from_numpy(self.normalizers["music"].transform(music).astype(np.float32))
        t = torch.from_numpy(self.normalizers["temporal"].transform(temporal).astype(np.float32))
        out = self.model.generate(m, t).numpy()
        return self.normalizers["motion"].inverse_transform(out)

    def generate(self, music: np.ndarray, temporal: np.ndarray,
                 root_start: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw music and temporal features -> (joints [T, 23, 3] root-relative cm, root [T, 3] cm)."""
        from melodance.features.motion import motion_from_features

        feats = self.generate_features(music, temporal)
        start = np.zeros(3, np.float32) if root_start is None else root_start
        return motion_from_features(feats, start)
