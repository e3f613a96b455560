"""Overlapping training windows (seed 1c)."""

from __future__ import annotations

import numpy as np


def window_starts(n_frames: int, window: int, stride: int) -> np.ndarray:
    """Start frames of the windows of a clip.

    Windows of ``window`` frames every ``stride`` frames; none crosses the end,
    so a clip shorter than ``window`` has none. stride == window: no overlap.

    Returns:
        [n_windows] int64 start frames.
    """
    if window < 1 or stride < 1:
        raise ValueError(f"window and stride must be >= 1, got {window}, {stride}")
    if n_frames < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange(0, n_frames - window + 1, stride, dtype=np.int64)
