"""A trained model with everything needed to go from music features to motion.

The bundle holds the weights, the model config, the feature settings and the
normalisers fitted at training time, so generation (and serving) can never
disagree with training.

On disk it is plain data only: tensors, numbers, strings, lists and dicts (the
normalisers' statistics as float64 tensors), so it loads with
``torch.load(weights_only=True)`` and opening a model file never runs code
(PyTorch's restricted unpickler refuses any other object).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from melodance.errors import InputError, MissingInput
from melodance.models.config import ModelConfig
from melodance.models.families import model_class
from melodance.models.lstm import DanceModel

FORMAT = "melodance-bundle-2"
READABLE_FORMATS = ("melodance-bundle-1", FORMAT)
"""Format 1 held the normalisers' statistics as lists; both are plain data."""


def _plain(x, where: str):
    """``x`` as JSON-like data (dict, list, str, int, float, bool, None); numpy scalars and
    arrays become numbers and lists. Anything else is an error naming ``where``: it would
    need pickling, and the bundle must load with ``weights_only=True``."""
    if x is None or isinstance(x, (str, bool, int, float)):
        return x
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(x)]
    raise TypeError(f"{where}: a {type(x).__name__} cannot be stored in a model bundle "
                    "(plain data only: dicts, lists, strings, numbers)")


def _normalizer_payload(norm) -> dict:
    d = norm.to_dict()
    return {"method": d["method"], "groups": _plain(d["groups"], "groups"),
            "offset": torch.from_numpy(np.asarray(norm.offset, np.float64).copy()),
            "scale": torch.from_numpy(np.asarray(norm.scale, np.float64).copy())}


def _normalizer_dict(d: dict) -> dict:
    """A stored normaliser (tensors in format 2, lists in format 1) as ``Normalizer.from_dict`` input."""
    out = dict(d)
    for k in ("offset", "scale"):
        if isinstance(out.get(k), torch.Tensor):
            out[k] = out[k].numpy()
    return out


@dataclass
class DanceBundle:
    model: DanceModel  # or any family's model with the same interface (models/families.py)
    normalizers: dict            # "music", "temporal", "motion" -> features.normalize.Normalizer
    features_meta: dict          # features.pipeline.FeatureSet.meta (config, groups, fps, dims)
    extra: dict = field(default_factory=dict)  # e.g. the MLflow run id and metrics of training

    def save(self, path: str | Path, extra: dict | None = None) -> None:
        from melodance import io

        payload = {
            "format": FORMAT,
            "model_config": _plain(self.model.cfg.model_dump(), "model_config"),
            "dims": [int(self.model.music_dim), int(self.model.temporal_dim),
                     int(self.model.motion_dim)],
            "state_dict": {k: v.detach().cpu() for k, v in self.model.state_dict().items()},
            "normalizers": {k: _normalizer_payload(v) for k, v in self.normalizers.items()},
            "features_meta": _plain(self.features_meta, "features_meta"),
            "extra": _plain({**self.extra, **(extra or {})}, "extra"),
        }
        with io.atomic_path(path) as tmp:
            torch.save(payload, tmp)

    @classmethod
    def load(cls, path: str | Path) -> DanceBundle:
        """Read a bundle file with ``torch.load(weights_only=True)``: plain data and tensors
        only, so a file holding any other (pickled) object is refused without running it."""
        import pickle
        import zipfile

        from melodance.features.normalize import Normalizer

        path = Path(path)
        if not path.is_file():
            raise MissingInput(f"{path}: no trained model here (run the train stage first)")
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as e:
            # The restricted unpickler met an object that is not plain data: never load it.
            raise InputError(f"{path}: not a melodance model bundle (it holds objects other "
                             "than tensors and plain data, which are not loaded)") from e
        except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
            raise InputError(f"{path}: not a melodance model bundle (unreadable: "
                             f"{str(e).splitlines()[0][:200]})") from e
        if not isinstance(payload, dict) or payload.get("format") not in READABLE_FORMATS:
            raise InputError(f"{path}: not a melodance model bundle")
        try:
            cfg = ModelConfig(**payload["model_config"])
            model = model_class(cfg)(cfg, *payload["dims"])
            model.load_state_dict(payload["state_dict"])
            norms = {k: Normalizer.from_dict(_normalizer_dict(v))
                     for k, v in payload["normalizers"].items()}
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise InputError(f"{path}: a damaged melodance model bundle "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from e
        model.eval()
        return cls(model, norms, payload["features_meta"], payload.get("extra") or {})

    @property
    def feature_settings(self):
        """The typed feature settings of the features the model was trained on
        (a :class:`~melodance.features.config.FeaturesConfig`): what a new song is extracted with."""
        from melodance.features.config import FeaturesConfig

        return FeaturesConfig.model_validate(self.features_meta["config"])

    @property
    def family(self) -> str:
        return self.model.cfg.family

    def generate_features(self, music: np.ndarray, temporal: np.ndarray,
                          seed: int | None = None) -> np.ndarray:
        """Raw (unnormalised) music [T, Dm] and temporal [T, 3] -> raw motion features [T, Dmo].

        ``seed`` picks one of the dances a generative family can give (same seed, same
        dance; None: seed 0); deterministic families give their one dance for any seed."""
        if music.ndim != 2 or music.shape[1] != self.model.music_dim:
            raise InputError(f"music features must be [frames, {self.model.music_dim}], "
                             f"got {list(music.shape)}")
        if temporal.shape != (music.shape[0], self.model.temporal_dim):
            raise InputError(f"temporal indexes must be [{music.shape[0]}, "
                             f"{self.model.temporal_dim}], got {list(temporal.shape)}")
        if getattr(self.model, "raw_io", False):  # the family standardises its own inputs
            return self.model.generate_raw(np.asarray(music, np.float32),
                                           np.asarray(temporal, np.float32),
                                           seed=0 if seed is None else int(seed))
        m = torch.from_numpy(self.normalizers["music"].transform(music).astype(np.float32))
        t = torch.from_numpy(self.normalizers["temporal"].transform(temporal).astype(np.float32))
        out = self.model.generate(m, t).numpy()
        return self.normalizers["motion"].inverse_transform(out)

    def generate(self, music: np.ndarray, temporal: np.ndarray,
                 root_start: np.ndarray | None = None,
                 seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw music and temporal features -> (joints [T, 23, 3] root-relative cm, root [T, 3] cm);
        ``seed`` as in :meth:`generate_features`."""
        from melodance.features.motion import motion_from_features

        feats = self.generate_features(music, temporal, seed=seed)
        start = np.zeros(3, np.float32) if root_start is None else root_start
        return motion_from_features(feats, start)
