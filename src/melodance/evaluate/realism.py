"""Realism metrics: how much a generated dance moves, holds together and resembles real dances.

The yardstick for every model family (``melodance.evaluate.realism`` is a
public API): pure functions, arrays in, numbers or arrays out, no I/O.

Conventions (as in :mod:`melodance.evaluate.metrics`):

- a dance is ``[T, 23, 3]`` joint positions in **world** coordinates, **cm**,
  **y up** (root trajectory added back), at ``fps`` frames per second;
- "body-centred" means relative to the hip midpoint (joints 7 and 16) of the
  same frame, so travel across the floor does not count as dancing and a
  figure that glides without moving its limbs scores 0;
- every duration is in seconds.

What is here, and why (definitions and measured values: ``docs/metrics.md``):

- :func:`motion_stats`: body-centred mean joint speed, the same after a short
  low-pass (speed alone rewards jitter), motion energy (mean squared low-passed
  speed), mean acceleration, root travel per minute. Compare with real dances
  as ratios.
- :func:`window_motion`, :func:`still_threshold`, :func:`still_fraction`: share
  of 1 s windows with less body-centred motion than any real dance has.
- :func:`bone_length_error`: how far bone lengths stray from the dataset's.
- :func:`kid` and :func:`distance_interval`: an unbiased kernel distance
  (KID, Bińkowski et al. 2018) with a bootstrap 95 % interval; FID gets the
  same interval. At 50 clips and 32-69 dimensions FID's point value moves by an
  order of magnitude between two real samples; KID is unbiased and its
  interval says how much a difference means.
- :func:`feature_scaler`: the standardisation rule that stops a dimension with
  near-zero real spread from dominating a distance.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy.ndimage import gaussian_filter1d

from melodance.data.skeleton import BONES, N_JOINTS
from melodance.evaluate.metrics import (
    HORIZONTAL,
    _check_feats,
    _check_fps,
    _check_joints,
    frechet_distance,
    windowed_derivatives,
)

HIPS = (7, 16)
DEFAULT_LOWPASS_HZ = 4.0
"""Low-pass cut-off for the "smoothed" motion statistics, Hz. Ballroom figures
move at up to ~3 steps per second; frame-to-frame jitter (12.5 Hz at 25 fps)
is attenuated ~150-fold."""
DEFAULT_WINDOW_S = 1.0
"""Window of the still rule, seconds."""
DEFAULT_FLOOR_FRAC = 0.1
"""Feature scaling floor: a dimension's scale is at least this fraction of the
median scale of all dimensions (see :func:`feature_scaler`)."""

REAL_BONES: tuple[tuple[int, int], ...] = tuple((a, b) for a, b in BONES
                                               if a < N_JOINTS and b < N_JOINTS)
"""Bones between the 23 recorded joints (the skeleton's virtual points left out)."""


# --------------------------------------------------------------------------- motion statistics


def body_centred(joints_world: np.ndarray) -> np.ndarray:
    """Joints relative to the hip midpoint of the same frame: ``[T, J, 3]`` cm."""
    x = _check_joints(joints_world, min_frames=1)
    return x - 0.5 * (x[:, HIPS[0]] + x[:, HIPS[1]])[:, None, :]


def lowpass(x: np.ndarray, fps: float, cutoff_hz: float = DEFAULT_LOWPASS_HZ) -> np.ndarray:
    """Gaussian low-pass along time (axis 0) with a -3 dB-like cut-off ``cutoff_hz``.

    The Gaussian's sigma is ``1 / (2 pi cutoff_hz)`` seconds; ends are extended
    by reflection. Returns an array of ``x``'s shape.
    """
    _check_fps(fps)
    if not cutoff_hz > 0:
        raise ValueError(f"cutoff_hz must be positive, got {cutoff_hz}")
    sigma_frames = fps / (2.0 * math.pi * cutoff_hz)
    return gaussian_filter1d(np.asarray(x, dtype=np.float64), sigma_frames, axis=0, mode="reflect")


def joint_speed(joints_world: np.ndarray, fps: float,
                lowpass_hz: float | None = DEFAULT_LOWPASS_HZ) -> np.ndarray:
    """Body-centred mean joint speed per frame, cm/s: ``[n]`` (``n`` frames where the
    difference window fits, :func:`~melodance.evaluate.metrics.windowed_derivatives`).

    ``lowpass_hz`` None: no low-pass (jitter counts as motion).
    """
    x = body_centred(joints_world)
    if lowpass_hz is not None:
        x = lowpass(x, fps, lowpass_hz)
    _, v, _ = windowed_derivatives(x, fps)
    return np.linalg.norm(v, axis=-1).mean(axis=1)


def motion_stats(joints_world: np.ndarray, fps: float,
                 lowpass_hz: float = DEFAULT_LOWPASS_HZ) -> dict[str, float]:
    """Readable motion statistics of one dance.

    Returns:
        ``speed_cm_s``: body-centred mean joint speed, cm/s;
        ``speed_lowpass_cm_s``: the same after :func:`lowpass`;
        ``energy_cm2_s2``: mean squared low-passed body-centred joint speed
        (kinetic energy per unit mass without the 1/2, as AIST++), cm²/s²;
        ``accel_cm_s2``: mean low-passed body-centred joint acceleration, cm/s²;
        ``root_travel_m_min``: horizontal path length of the hip midpoint per
        minute, m/min.
    """
    x = _check_joints(joints_world)
    _check_fps(fps)
    bc = body_centred(x)
    _, v_raw, _ = windowed_derivatives(bc, fps)
    _, v, a = windowed_derivatives(lowpass(bc, fps, lowpass_hz), fps)
    speed = np.linalg.norm(v, axis=-1)
    root = 0.5 * (x[:, HIPS[0]] + x[:, HIPS[1]])[:, list(HORIZONTAL)]
    travel_cm = float(np.linalg.norm(np.diff(lowpass(root, fps, lowpass_hz), axis=0), axis=1).sum())
    minutes = (len(x) - 1) / fps / 60.0
    return {
        "speed_cm_s": float(np.linalg.norm(v_raw, axis=-1).mean()),
        "speed_lowpass_cm_s": float(speed.mean()),
        "energy_cm2_s2": float((speed ** 2).mean()),
        "accel_cm_s2": float(np.linalg.norm(a, axis=-1).mean()),
        "root_travel_m_min": travel_cm / 100.0 / minutes if minutes > 0 else 0.0,
    }


def window_motion(joints_world: np.ndarray, fps: float, window_s: float = DEFAULT_WINDOW_S,
                  lowpass_hz: float = DEFAULT_LOWPASS_HZ) -> np.ndarray:
    """Mean low-passed body-centred joint speed in each window of ``window_s``, cm/s.

    Windows start every ``window_s / 2`` seconds; a dance shorter than one
    window is one window. Returns ``[n_windows]``.
    """
    if not window_s > 0:
        raise ValueError(f"window_s must be positive seconds, got {window_s}")
    s = joint_speed(joints_world, fps, lowpass_hz)
    w = max(1, int(round(window_s * fps)))
    hop = max(1, w // 2)
    if len(s) <= w:
        return np.array([s.mean()])
    c = np.concatenate([[0.0], np.cumsum(s)])
    starts = np.arange(0, len(s) - w + 1, hop)
    return (c[starts + w] - c[starts]) / w


def still_threshold(real_dances: list[np.ndarray], fps: float, window_s: float = DEFAULT_WINDOW_S,
                    lowpass_hz: float = DEFAULT_LOWPASS_HZ) -> float:
    """The least motion any real dance has in a window: min of :func:`window_motion`, cm/s.

    A generated window with less motion than this is "still": no real dancer
    in the data held that still for that long.
    """
    if not real_dances:
        raise ValueError("still_threshold needs at least one real dance")
    return float(min(window_motion(d, fps, window_s, lowpass_hz).min() for d in real_dances))


def still_fraction(joints_world: np.ndarray, fps: float, threshold_cm_s: float,
                   window_s: float = DEFAULT_WINDOW_S, lowpass_hz: float = DEFAULT_LOWPASS_HZ) -> float:
    """Share of windows (:func:`window_motion`) below ``threshold_cm_s``, in [0, 1]."""
    return float((window_motion(joints_world, fps, window_s, lowpass_hz) < threshold_cm_s).mean())


def bone_lengths(joints_world: np.ndarray) -> np.ndarray:
    """Length of each of :data:`REAL_BONES` in each frame: ``[T, n_bones]`` cm."""
    x = _check_joints(joints_world, min_frames=1)
    a, b = np.array(REAL_BONES).T
    return np.linalg.norm(x[:, a] - x[:, b], axis=-1)


def reference_bone_lengths(real_dances: list[np.ndarray]) -> np.ndarray:
    """The dataset's bone lengths: median over all frames of all real dances, ``[n_bones]`` cm."""
    if not real_dances:
        raise ValueError("reference_bone_lengths needs at least one real dance")
    return np.median(np.concatenate([bone_lengths(d) for d in real_dances]), axis=0)


def bone_length_error(joints_world: np.ndarray, reference_cm: np.ndarray) -> float:
    """Mean absolute difference of bone lengths from ``reference_cm`` over frames and bones, cm.

    Real dancers differ from the dataset median by a few cm (different people,
    marker placement): compare with the real reference's value.
    """
    lengths = bone_lengths(joints_world)
    ref = np.asarray(reference_cm, dtype=np.float64)
    if ref.shape != lengths.shape[1:]:
        raise ValueError(f"reference_cm must be [{lengths.shape[1]}], got {ref.shape}")
    return float(np.abs(lengths - ref).mean())


# --------------------------------------------------------------------------- distances


def feature_scaler(ref_feats: np.ndarray, floor_frac: float = DEFAULT_FLOOR_FRAC
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mean and scale to standardise features by a real reference set: ``(mean [D], scale [D])``.

    The rule: ``scale_d = max(std_d, floor_frac * median_d' std_d')``. A
    dimension with near-zero real spread (a relation that almost never holds
    in ballroom dance) would otherwise turn a small absolute difference into
    thousands of standard deviations and drown every other dimension; with the
    floor it weighs at most as much as a typical dimension moved ``1 /
    floor_frac`` times as far. Dimensions with no spread in any feature give
    scale 1.
    """
    r = _check_feats(ref_feats, "ref_feats", min_rows=2)
    if not 0 <= floor_frac:
        raise ValueError(f"floor_frac must be >= 0, got {floor_frac}")
    std = r.std(axis=0, ddof=1)
    floor = floor_frac * float(np.median(std))
    scale = np.maximum(std, floor)
    return r.mean(axis=0), np.where(scale > 0, scale, 1.0)


def polynomial_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """KID's kernel ``(a . b / D + 1)^3``: ``[N, D] x [M, D] -> [N, M]``."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _mmd2(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray,
          same_x: np.ndarray, same_y: np.ndarray) -> float:
    """Unbiased MMD² from kernel blocks; pairs flagged ``same_*`` (the diagonal, and
    bootstrap duplicates of one sample) are left out of the within-set means."""
    return float(kxx[~same_x].mean() + kyy[~same_y].mean() - 2.0 * kxy.mean())


def kid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Kernel Inception-style distance: unbiased squared MMD with :func:`polynomial_kernel`.

    ``mean_{i!=j} k(a_i, a_j) + mean_{i!=j} k(b_i, b_j) - 2 mean k(a_i, b_j)``.
    0 in expectation for two samples of one distribution (it can be slightly
    negative), unlike FID, whose bias depends on the sample size. Standardise
    the features first (:func:`feature_scaler`).

    Args:
        feats_a: ``[N, D]``, ``N >= 2``.
        feats_b: ``[M, D]``, ``M >= 2``.

    Returns:
        squared feature units (dimensionless for standardised features).
    """
    a = _check_feats(feats_a, "feats_a", min_rows=2)
    b = _check_feats(feats_b, "feats_b", min_rows=2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets differ in dimension: {a.shape[1]} vs {b.shape[1]}")
    return _mmd2(polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b),
                 np.eye(len(a), dtype=bool), np.eye(len(b), dtype=bool))


class Interval(NamedTuple):
    """A distance and its bootstrap interval (same units)."""

    value: float
    low: float
    high: float

    def covers(self, x: float) -> bool:
        return self.low <= x <= self.high


def distance_interval(feats_a: np.ndarray, feats_b: np.ndarray, kind: str = "kid",
                      n_boot: int = 500, level: float = 0.95, seed: int = 0) -> Interval:
    """A distance between two feature sets with a percentile bootstrap interval.

    Both sets are resampled with replacement ``n_boot`` times. For KID the
    unbiased estimator of each resample leaves out pairs of copies of one
    sample (they would be a zero-distance pair and bias the within-set means);
    for FID the resample is used as it is. Features are used as given:
    standardise them first (:func:`feature_scaler`).

    Args:
        feats_a, feats_b: ``[N, D]`` and ``[M, D]``.
        kind: ``kid`` or ``fid``.
        n_boot: bootstrap resamples.
        level: interval coverage.
        seed: resampling seed.

    Returns:
        :class:`Interval` (the value on the full sets, and the interval).
    """
    a = _check_feats(feats_a, "feats_a", min_rows=2)
    b = _check_feats(feats_b, "feats_b", min_rows=2)
    if kind not in ("kid", "fid"):
        raise ValueError(f"kind must be 'kid' or 'fid', got {kind!r}")
    if not 0 < level < 1 or n_boot < 10:
        raise ValueError("level must be in (0, 1) and n_boot >= 10")
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    if kind == "kid":
        value = kid(a, b)
        kaa, kbb, kab = polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b)
        for i in range(n_boot):
            ia, ib = rng.integers(0, len(a), len(a)), rng.integers(0, len(b), len(b))
            # A resample of copies of one sample has no pair to estimate the within-set
            # mean from (small sets: 2 clips give it 1 time in 2); draw it again.
            while len(np.unique(ia)) < 2:
                ia = rng.integers(0, len(a), len(a))
            while len(np.unique(ib)) < 2:
                ib = rng.integers(0, len(b), len(b))
            same_a, same_b = ia[:, None] == ia[None, :], ib[:, None] == ib[None, :]
            boots[i] = _mmd2(kaa[np.ix_(ia, ia)], kbb[np.ix_(ib, ib)], kab[np.ix_(ia, ib)],
                             same_a, same_b)
    else:
        value = frechet_distance(a, b)
        for i in range(n_boot):
            ia, ib = rng.integers(0, len(a), len(a)), rng.integers(0, len(b), len(b))
            boots[i] = frechet_distance(a[ia], b[ib])
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(boots, [tail, 100.0 - tail])
    return Interval(float(value), float(low), float(high))


# --------------------------------------------------------------------------- the champion gate


def gate_score(row: dict, weights: dict[str, float], floors: dict[str, tuple[float | None, float | None]]
               ) -> tuple[float, list[str]]:
    """A realism score (lower is better) and the hard floors a row fails.

    ``score = sum_k weights[k] * row[k]``; a row that breaks any floor
    (``floors[k] = (low, high)``, None: unbounded) scores ``inf``. Distances
    that can come out slightly negative (KID) are clipped at 0 first, so noise
    below zero does not win.

    Returns:
        ``(score, failed)``, ``failed`` a list of readable reasons.
    """
    failed = []
    for key, (low, high) in floors.items():
        if key not in row:
            raise KeyError(f"gate floor on {key!r}, but the scores lack it (have: {sorted(row)})")
        v = float(row[key])
        if not math.isfinite(v) or (low is not None and v < low) or (high is not None and v > high):
            failed.append(f"{key} {v:.3g} outside [{low}, {high}]")
    for key in weights:
        if key not in row:
            raise KeyError(f"gate weight on {key!r}, but the scores lack it (have: {sorted(row)})")
    score = float(sum(w * max(float(row[k]), 0.0) for k, w in weights.items()))
    return (math.inf if failed else score), failed
