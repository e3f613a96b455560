"""Feature normalisation fitted on the training split (seed 1b).

- ``per_feature``: one min-max per feature group (5 for the 16 music dims):
  every dimension of a group shares one offset and one scale, so the ratios
  between the dimensions of a feature survive.
- ``per_dim``: one min-max per dimension.
- ``zscore``: one mean and standard deviation per feature group.
- ``identity``: no change (used for raw temporal counters, seed 1e ablation).

All map ``x -> (x - offset) / scale`` with per-dimension vectors, so the
statistics are two arrays that travel with the features and the model.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

Method = Literal["per_feature", "per_dim", "zscore", "identity"]
METHODS = ("per_feature", "per_dim", "zscore", "identity")
Groups = list[tuple[str, int, int]]


def check_groups(groups, dim: int) -> list[tuple[str, int, int]]:
    """Groups as (name, start, stop) tuples that tile [0, dim) in order."""
    groups = [(str(n), int(a), int(b)) for n, a, b in groups]
    pos = 0
    for name, a, b in groups:
        if a != pos or b <= a:
            raise ValueError(
                f"feature groups must tile the dimensions in order; bad {name} [{a}:{b}]"
            )
        pos = b
    if pos != dim:
        raise ValueError(f"feature groups cover {pos} dims, the features have {dim}")
    return groups


class Normalizer:
    """Per-dimension affine map ``(x - offset) / scale`` fitted by one method."""

    def __init__(self, method: str, groups: Groups, offset, scale):
        if method not in METHODS:
            raise ValueError(f"unknown normalisation {method!r} (expected one of {METHODS})")
        self.method = method
        self.offset = np.asarray(offset, dtype=np.float64)
        self.scale = np.asarray(scale, dtype=np.float64)
        if self.offset.shape != self.scale.shape or self.offset.ndim != 1:
            raise ValueError("offset and scale must be vectors of the same length")
        if not (self.scale > 0).all():
            raise ValueError("normaliser scale must be positive")
        self.groups = check_groups(groups, len(self.offset))

    @property
    def dim(self) -> int:
        return len(self.offset)

    @classmethod
    def fit(cls, x: np.ndarray, groups: Groups, method: str) -> Normalizer:
        """Fit on training data.

        Args:
            x: [N, D] feature rows (all training frames).
            groups: (name, start, stop) feature groups tiling [0, D).
            method: ``per_feature``, ``per_dim``, ``zscore`` or ``identity``.
        """
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[0] == 0:
            raise ValueError(f"fit needs [N, D] data with N > 0, got {x.shape}")
        groups = check_groups(groups, x.shape[1])
        if not np.isfinite(x).all():
            raise ValueError("fit data holds NaN or infinite values")
        D = x.shape[1]
        offset, scale = np.zeros(D), np.ones(D)
        if method == "per_dim":
            offset = x.min(axis=0)
            scale = x.max(axis=0) - offset
        elif method in ("per_feature", "zscore"):
            for _, a, b in groups:
                g = x[:, a:b]
                if method == "per_feature":
                    lo, span = g.min(), g.max() - g.min()
                else:
                    lo, span = g.mean(), g.std()
                offset[a:b], scale[a:b] = lo, span
        elif method != "identity":
            raise ValueError(f"unknown normalisation {method!r} (expected one of {METHODS})")
        # A constant feature stays constant (shifted to 0) rather than dividing by 0.
        scale = np.where(scale > 1e-12, scale, 1.0)
        return cls(method, groups, offset, scale)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """[..., D] -> [..., D] float32, normalised."""
        x = np.asarray(x)
        self._check(x)
        return ((x - self.offset) / self.scale).astype(np.float32)

    def inverse_transform(self, x: np.ndarray) -> np.ndarray:
        """[..., D] normalised -> [..., D] float32 in the original units."""
        x = np.asarray(x)
        self._check(x)
        return (x * self.scale + self.offset).astype(np.float32)

    def _check(self, x: np.ndarray) -> None:
        if x.shape[-1:] != (self.dim,):
            raise ValueError(f"expected features with last dimension {self.dim}, got {x.shape}")

    def to_dict(self) -> dict:
        return {
            "method": self.method,
            "groups": [list(g) for g in self.groups],
            "offset": self.offset.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> Normalizer:
        try:
            return cls(d["method"], [tuple(g) for g in d["groups"]], d["offset"], d["scale"])
        except KeyError as e:
            raise ValueError(f"normaliser is missing {e}") from e

    def __repr__(self) -> str:
        return f"Normalizer({self.method!r}, dim={self.dim}, groups={[g[0] for g in self.groups]})"
