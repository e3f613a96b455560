"""Temporal indexes per frame: where the frame sits in the beat and in the clip.

Three columns (TEMPORAL_NAMES):

- ``frames_since_beat``: frames since the last beat; normalised (seed 1e), the
  beat phase in [0, 1): frames since the last beat over the length of the
  current beat interval.
- ``beat_flag``: 1 on a beat frame, else 0.
- ``frame_index``: frames since the first frame; normalised, t / (T - 1) in [0, 1].

Before the first and after the last beat the beat grid is extended with the
median beat period, so the phase keeps running through intros and outros.
"""

from __future__ import annotations

import numpy as np

TEMPORAL_NAMES = ("frames_since_beat", "beat_flag", "frame_index")
TEMPORAL_DIM = len(TEMPORAL_NAMES)
BEAT_FLAG = TEMPORAL_NAMES.index("beat_flag")
"""Column of the beat flag (1 on a beat frame) in the temporal indexes."""
TEMPORAL_GROUPS: list[tuple[str, int, int]] = [
    (name, i, i + 1) for i, name in enumerate(TEMPORAL_NAMES)
]


def flagged_beats(temporal: np.ndarray) -> np.ndarray:
    """Frame indexes whose beat flag is set, of ``[T, TEMPORAL_DIM]`` temporal indexes."""
    return np.flatnonzero(np.asarray(temporal)[:, BEAT_FLAG] > 0.5)


def temporal_indexes(n_frames: int, beat_frames, normalize: bool) -> np.ndarray:
    """Temporal index features of a clip.

    Args:
        n_frames: T, frames in the clip.
        beat_frames: beat positions in frames relative to the clip's frame 0;
            may include beats outside [0, T) (from audio context), which place
            the grid but are not flagged.
        normalize: beat phase and relative position instead of raw counters.

    Returns:
        [T, 3] float32, columns as in TEMPORAL_NAMES.
    """
    T = int(n_frames)
    if T < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    t = np.arange(T, dtype=np.float64)
    beats = np.unique(np.round(np.asarray(beat_frames, dtype=np.float64)).astype(np.int64))
    out = np.zeros((T, TEMPORAL_DIM), dtype=np.float32)
    if T == 0:
        return out

    if len(beats) >= 2:
        period = float(np.median(np.diff(beats)))
        # Index of the last beat at or before t (-1: before the first beat).
        k = np.searchsorted(beats, t, side="right") - 1
        since = np.empty(T)
        interval = np.empty(T)
        inside = (k >= 0) & (k < len(beats) - 1)
        since[inside] = t[inside] - beats[k[inside]]
        interval[inside] = beats[k[inside] + 1] - beats[k[inside]]
        before, after = k < 0, k >= len(beats) - 1
        since[before] = np.mod(t[before] - beats[0], period)
        since[after] = np.mod(t[after] - beats[-1], period)
        interval[before | after] = period
    elif len(beats) == 1:
        # No period known: count from the beat, or from the clip start before it.
        since = np.where(t >= beats[0], t - beats[0], t)
        interval = np.full(T, float(T))
    else:
        since = t.copy()
        interval = np.full(T, float(T))

    flagged = beats[(beats >= 0) & (beats < T)]
    out[flagged, 1] = 1.0
    if normalize:
        out[:, 0] = np.clip(since / interval, 0.0, np.nextafter(1.0, 0.0))
        out[:, 2] = t / max(T - 1, 1)
    else:
        out[:, 0] = since
        out[:, 2] = t
    return out
