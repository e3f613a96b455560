"""Dance metrics: the seed's metric loss, FID_k / FID_g, diversity, foot skating, jitter.

Pure functions: arrays in, floats or arrays out, no I/O. Conventions:

- motion is ``[T, 23, 3]`` joint positions in **world** coordinates, cm, y up
  (``Sequence.world_joints``), unless a docstring says otherwise;
- every rate is in seconds, every duration parameter is in seconds (never
  frames) and ``fps`` is always an argument, so 25 fps and 60 fps versions of a
  motion score alike.

Beat alignment lives in :mod:`melodance.evaluate.beats`. Definitions, units and
where we differ from the public implementations: ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import linalg
from scipy.ndimage import minimum_filter1d
from scipy.spatial.distance import pdist

from melodance.data.skeleton import FOOT_JOINTS, HIPS, SHOULDERS, UPPER_ARMS

UP = 1
"""Index of the vertical axis (y up)."""
HORIZONTAL = (0, 2)

GRAVITY_CM_S2 = 981.0
DEFAULT_VEL_WINDOW_S = 5.0 / 60.0
"""Finite-difference span for velocities, seconds: AIST++'s 5 frames at 60 fps."""


# --------------------------------------------------------------------------- metric loss


def metric_loss(pred: np.ndarray, true: np.ndarray) -> float:
    """The seed paper's metric loss: sum over frames of the pose-vector distance.

    ``sum_t sqrt(sum_i (pred[t, i] - true[t, i])^2)``, with ``i`` running over
    all coordinates of all joints of frame ``t``. Grows with the sequence
    length; :func:`metric_loss_per_frame` is the length-free version.

    Args:
        pred, true: ``[T, J, 3]`` (or ``[T, D]``) poses, cm.

    Returns:
        cm (summed over frames).
    """
    return float(_pose_distances(pred, true).sum())


def metric_loss_per_frame(pred: np.ndarray, true: np.ndarray) -> float:
    """:func:`metric_loss` divided by the number of frames: mean pose-vector distance, cm."""
    return float(_pose_distances(pred, true).mean())


def metric_loss_per_joint(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Mean Euclidean error of each joint over frames.

    Args:
        pred, true: ``[T, J, 3]`` joint positions, cm.

    Returns:
        ``[J]`` cm.
    """
    p, t = _same_shape(pred, true)
    if p.ndim != 3 or p.shape[-1] != 3:
        raise ValueError(f"per-joint error needs [frames, joints, 3], got shape {p.shape}")
    return np.linalg.norm(p - t, axis=-1).mean(axis=0)


def _pose_distances(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    p, t = _same_shape(pred, true)
    if p.ndim < 2:
        raise ValueError(f"poses must be [frames, ...], got shape {p.shape}")
    return np.linalg.norm((p - t).reshape(len(p), -1), axis=1)


def _same_shape(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"prediction and ground truth differ in shape: {a.shape} vs {b.shape}")
    if a.shape[0] == 0:
        raise ValueError("empty sequence")
    return a, b


# --------------------------------------------------------------------------- derivatives


def windowed_derivatives(
    x: np.ndarray, fps: float, window_s: float = DEFAULT_VEL_WINDOW_S
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Velocity and acceleration by central differences over a span in seconds.

    With ``h = window_s / 2``: ``v(t) = (x(t+h) - x(t-h)) / (2h)`` and
    ``a(t) = (x(t+h) - 2 x(t) + x(t-h)) / c``. Positions between frames are
    linearly interpolated, so the span is exactly ``window_s`` at any frame
    rate; ``c = h^2 + f (1 - f) / fps^2``, ``f`` the fractional part of
    ``h * fps``, removes the bias that interpolation adds to the second
    difference. Both are exact for motion of constant acceleration. Only
    frames whose whole window lies inside the sequence are returned.

    Args:
        x: ``[T, ...]`` positions, cm.
        fps: frames per second.
        window_s: difference span, seconds.

    Returns:
        ``(frames [n], v [n, ...] cm/s, a [n, ...] cm/s^2)``, ``frames`` the
        indices into ``x`` where they are evaluated.
    """
    x = np.asarray(x, dtype=np.float64)
    _check_fps(fps)
    if not window_s > 0:
        raise ValueError(f"window_s must be positive seconds, got {window_s}")
    n = len(x)
    d = 0.5 * window_s * fps  # half-window in frames, may be fractional
    first, last = math.ceil(d - 1e-9), math.floor(n - 1 - d + 1e-9)
    if last < first:
        raise ValueError(
            f"sequence of {n} frames at {fps} fps is shorter than the {window_s:.3f} s window"
        )
    frames = np.arange(first, last + 1)
    xp, xm = _lerp(x, frames + d), _lerp(x, frames - d)
    x0 = x[frames]
    # Interpolating a parabola linearly at fraction f between frames
    # overshoots by a f (1-f) / (2 fps^2), the same at t+h and t-h: it cancels
    # in v but adds a f (1-f) / fps^2 to the second difference, so c includes it.
    f = d - math.floor(d)
    c = (0.5 * window_s) ** 2 + f * (1.0 - f) / fps**2
    return frames, (xp - xm) / window_s, (xp - 2.0 * x0 + xm) / c


def _lerp(x: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``x`` at fractional frame positions ``pos`` (within ``[0, T-1]``)."""
    i0 = np.clip(np.floor(pos + 1e-9).astype(int), 0, len(x) - 1)
    f = np.clip(pos - i0, 0.0, 1.0)
    i1 = np.minimum(i0 + 1, len(x) - 1)
    f = f.reshape((-1,) + (1,) * (x.ndim - 1))
    return x[i0] * (1.0 - f) + x[i1] * f


# --------------------------------------------------------------------------- kinetic features


def kinetic_features(
    joints_world: np.ndarray, fps: float, vel_window_s: float = DEFAULT_VEL_WINDOW_S
) -> np.ndarray:
    """Kinetic features of a dance (FID_k, Div_k), in the spirit of AIST++.

    Per joint, in this order: mean horizontal kinetic energy ``|v_xz|^2``
    (cm^2/s^2), mean vertical kinetic energy ``v_y^2`` (cm^2/s^2) and mean
    acceleration magnitude ``|a|`` (cm/s^2). Energies are per unit mass and
    **without the 1/2** (``v^2``, as in the AIST++ code), so a joint moving at
    constant horizontal speed ``v`` has horizontal energy exactly ``v^2``.
    Velocity and acceleration come from :func:`windowed_derivatives` over
    ``vel_window_s`` seconds.

    Differences from the public AIST++ code (``extract_kinetic_features``):

    - its acceleration has an operator-precedence bug,
      ``v1 = (p[i] - p[i-1] / frame_time)`` divides only ``p[i-1]`` by the frame
      time, so its "acceleration" mixes positions into velocities and is not an
      acceleration; here ``a`` is the true second derivative, 0 for constant
      velocity;
    - its window is in frames (±2 frames) and its frame time is fixed; here the
      window is in seconds and ``fps`` is an argument;
    - it averages the acceleration vector over the window before taking the
      norm; here the norm of the (windowed) acceleration is averaged over frames.

    Args:
        joints_world: ``[T, J, 3]`` positions, cm, y up.
        fps: frames per second.
        vel_window_s: finite-difference span, seconds.

    Returns:
        ``[J * 3]``: ``[h_0, v_0, a_0, h_1, v_1, a_1, ...]``.
    """
    x = _check_joints(joints_world)
    _, v, a = windowed_derivatives(x, fps, vel_window_s)
    e_h = (v[..., list(HORIZONTAL)] ** 2).sum(-1).mean(0)
    e_v = (v[..., UP] ** 2).mean(0)
    acc = np.linalg.norm(a, axis=-1).mean(0)
    return np.stack([e_h, e_v, acc], axis=1).reshape(-1)


# --------------------------------------------------------------------------- geometric features

# Joints of the Music-to-Dance skeleton used below (see shared/data/README.md).
_NECK, _SPINE_BASE = 1, 2
_ARM = {"a": (3, 4, 5), "b": (12, 13, 14)}  # shoulder, elbow, wrist
_LEG = {"a": (7, 8, 9, 10, 11), "b": (16, 17, 18, 19, 20)}  # hip, knee, ankle, heel, toe


class BodyLengths(NamedTuple):
    """Body measures that scale the geometric features' thresholds, cm."""

    humerus: float
    shoulder_width: float
    hip_width: float


def body_lengths(joints_world: np.ndarray) -> BodyLengths:
    """Humerus length (mean of both sides), shoulder width and hip width, cm.

    Medians over frames: bone lengths in this capture vary by a few percent
    within a sequence, and the median ignores glitch frames.
    """
    x = _check_joints(joints_world, min_frames=1)

    def length(i: int, j: int) -> np.ndarray:
        return np.linalg.norm(x[:, i] - x[:, j], axis=-1)

    humerus = 0.5 * (length(*UPPER_ARMS[0]) + length(*UPPER_ARMS[1]))
    return BodyLengths(
        humerus=float(np.median(humerus)),
        shoulder_width=float(np.median(length(*SHOULDERS))),
        hip_width=float(np.median(length(*HIPS))),
    )


def _side_names(s: str) -> list[str]:
    return [
        f"wrist_{s}_fast_forward",
        f"wrist_{s}_above_neck",
        f"wrist_{s}_fast_up",
        f"elbow_{s}_bent",
        f"wrist_{s}_fast",
        f"arm_{s}_raised",
        f"wrist_{s}_low",
        f"wrist_{s}_fast_outward",
        f"foot_{'b' if s == 'a' else 'a'}_in_front_of_leg_{s}",
        f"foot_{s}_raised",
        f"knee_{s}_bent",
        f"ankle_{s}_fast",
        f"leg_{s}_raised",
    ]


GEOMETRIC_FEATURE_NAMES: tuple[str, ...] = tuple(
    _side_names("a")
    + _side_names("b")
    + [
        "hands_apart",
        "wrists_separating_fast",
        "feet_apart",
        "hips_behind_neck_ankle_plane",
        "torso_leaning",
        "root_fast",
    ]
)
"""Names of :func:`geometric_features`' outputs, in order (see ``docs/metrics.md``)."""


def geometric_features(
    joints_world: np.ndarray,
    fps: float,
    vel_window_s: float = DEFAULT_VEL_WINDOW_S,
    lengths: BodyLengths | None = None,
) -> np.ndarray:
    """Boolean relational features of body parts, averaged over time (FID_g, Div_g).

    32 features in the spirit of Müller et al. (2005) and AIST++'s
    ``extract_manual_features``, mapped onto this 23-joint skeleton; each is
    the fraction of frames in which a relation holds (names and order:
    :data:`GEOMETRIC_FEATURE_NAMES`, definitions: ``docs/metrics.md``).
    Thresholds are multiples of this skeleton's own humerus length ``hl``,
    shoulder width ``sw`` and hip width ``hw`` (:func:`body_lengths`,
    measured on ``joints_world`` unless ``lengths`` is given); speeds are in
    ``hl`` per second.

    Body frame per frame: up is +y; "lateral" is the horizontal direction from
    hip ``a`` to hip ``b``; "forward" is horizontal and perpendicular to it,
    its sign chosen once per sequence so that the feet (heel to toe, joints
    10->11 and 19->20) point forward on average, because the dataset does not
    say which side is left. The root is the midpoint of the hips; the floor in
    a frame is the lowest joint of that frame.

    Differences from AIST++: its thresholds use a fixed SMPL template's
    lengths and its velocities a fixed 1/120 s frame time (applied to 60 fps
    data, doubling every speed); here lengths come from the data, speeds use
    the true ``fps`` and a window in seconds, and "front/back" relations use
    the explicit forward direction instead of triangle normals of unknown
    handedness. ``torso_leaning`` (spine more than 20 degrees from vertical)
    replaces AIST++'s "torso horizontal", which never holds in ballroom dance.

    Args:
        joints_world: ``[T, 23, 3]`` positions, cm, y up.
        fps: frames per second.
        vel_window_s: finite-difference span for the speed features, seconds.
        lengths: body measures to use instead of measuring ``joints_world``.

    Returns:
        ``[32]`` fractions in ``[0, 1]``.
    """
    x = _check_joints(joints_world)
    if x.shape[1] < 23:
        raise ValueError(f"geometric features need the 23-joint skeleton, got {x.shape[1]} joints")
    lengths = lengths or body_lengths(x)
    hl, sw, hw = lengths
    if min(lengths) <= 0:
        raise ValueError(f"body lengths must be positive, got {lengths}")
    frames, vel, _ = windowed_derivatives(x, fps, vel_window_s)
    p = x[frames]
    up = np.array([0.0, 1.0, 0.0])

    root = 0.5 * (p[:, 7] + p[:, 16])
    v_root = 0.5 * (vel[:, 7] + vel[:, 16])
    neck, v_neck = p[:, _NECK], vel[:, _NECK]
    spine_base, v_spine_base = p[:, _SPINE_BASE], vel[:, _SPINE_BASE]
    chest = 0.5 * (p[:, 3] + p[:, 12])
    floor_y = p[..., UP].min(axis=1)
    down = root - neck  # the body's own "down" direction

    lateral = _unit(_horizontal(p[:, 16] - p[:, 7]))
    forward = _unit(np.cross(lateral, up))
    toes = _horizontal(p[:, 11] - p[:, 10] + p[:, 20] - p[:, 19])
    if np.sum(forward * toes) < 0:
        forward = -forward

    def along(v: np.ndarray, direction: np.ndarray) -> np.ndarray:
        return np.sum(v * direction, axis=-1)

    def oriented_normal(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
        """Unit normal of the plane through a, b, c, pointing forward."""
        n = _unit(np.cross(b - a, c - a))
        return n * np.where(along(n, forward) < 0, -1.0, 1.0)[:, None]

    feats: list[np.ndarray] = []
    for s, o in (("a", "b"), ("b", "a")):
        shoulder, elbow, wrist = (p[:, j] for j in _ARM[s])
        v_wrist = vel[:, _ARM[s][2]]
        hip, knee, ankle, heel, toe = (p[:, j] for j in _LEG[s])
        v_ankle = vel[:, _LEG[s][2]]
        other_ankle = p[:, _LEG[o][2]]
        feats += [
            along(v_wrist - v_neck, forward) > 1.8 * hl,
            along(wrist - neck, _unit(neck - chest)) > 0.2 * hl,
            along(v_wrist - v_spine_base, _unit(chest - spine_base)) > 1.8 * hl,
            _angle_deg(shoulder - elbow, wrist - elbow) < 110.0,
            np.linalg.norm(v_wrist, axis=-1) > 2.5 * hl,
            _angle_deg(down, elbow - shoulder) > 25.0,
            wrist[:, UP] - floor_y < 1.2 * hl,
            along(v_wrist - v_root, _unit(wrist - root)) > 1.4 * hl,
            along(other_ankle - hip, oriented_normal(root, hip, 0.5 * (heel + toe))) > 0.38 * hl,
            ankle[:, UP] - floor_y > 1.2 * hl,
            _angle_deg(hip - knee, ankle - knee) < 110.0,
            np.linalg.norm(v_ankle, axis=-1) > 2.5 * hl,
            _angle_deg(down, knee - hip) > 50.0,
        ]
    wrist_a, wrist_b = p[:, 5], p[:, 14]
    ankle_a, ankle_b = p[:, 9], p[:, 18]
    feats += [
        along(wrist_b - wrist_a, _unit(p[:, 12] - p[:, 3])) > 2.5 * sw,
        along(vel[:, 14] - vel[:, 5], _unit(wrist_b - wrist_a)) > 1.4 * hl,
        along(ankle_b - ankle_a, _unit(p[:, 16] - p[:, 7])) > 2.1 * hw,
        along(root - neck, oriented_normal(ankle_a, neck, ankle_b)) < -0.5 * hl,
        _angle_deg(neck - root, np.broadcast_to(up, root.shape)) > 20.0,
        np.linalg.norm(v_root, axis=-1) > 2.3 * hl,
    ]
    return np.stack(feats, axis=1).mean(axis=0)


def _horizontal(v: np.ndarray) -> np.ndarray:
    v = np.array(v, dtype=np.float64)
    v[..., UP] = 0.0
    return v


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-9)


def _angle_deg(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    cos = np.sum(_unit(u) * _unit(v), axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


# --------------------------------------------------------------------------- FID and diversity


def frechet_distance(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets.

    ``|mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr(sqrt(S_a S_b))`` with sample
    covariances (``ddof = 1``). ``tr(sqrt(S_a S_b))`` is computed as the sum of the
    square roots of the eigenvalues of the symmetric ``S_a^1/2 S_b S_a^1/2`` (the same
    eigenvalues as ``S_a S_b``), rounding's small negative ones set to 0: always real,
    also for the singular covariances of fewer samples than dimensions, which is the
    normal case here. (``scipy.linalg.sqrtm`` of the product, as pytorch-fid does,
    returns complex roots there and has to be given up on.) Rounding can leave the
    result a few 1e-6 below zero for identical sets.

    Args:
        feats_a: ``[N, D]`` features, ``N >= 2``.
        feats_b: ``[M, D]`` features, ``M >= 2``.

    Returns:
        squared feature units.
    """
    a = _check_feats(feats_a, "feats_a", min_rows=2)
    b = _check_feats(feats_b, "feats_b", min_rows=2)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets differ in dimension: {a.shape[1]} vs {b.shape[1]}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a = np.atleast_2d(np.cov(a, rowvar=False))
    s_b = np.atleast_2d(np.cov(b, rowvar=False))
    w, v = linalg.eigh(s_a)
    half_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    ev = linalg.eigvalsh(half_a @ s_b @ half_a)
    tr_covmean = float(np.sqrt(np.clip(ev, 0.0, None)).sum())
    diff = mu_a - mu_b
    return float(diff @ diff + np.trace(s_a) + np.trace(s_b) - 2.0 * tr_covmean)


def normalize_by_reference(
    feats: np.ndarray, ref_feats: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Standardise ``feats`` and ``ref_feats`` with the reference set's mean and std.

    Dimensions where the reference has zero spread (std 0, e.g. a relation
    that never holds in the ground truth) are only centred, not scaled, so one
    constant dimension cannot blow up the distance (AIST++ divides by
    ``std + 1e-10`` there).

    Returns:
        ``(feats_normalised, ref_normalised)``, same shapes as the inputs.
    """
    f = _check_feats(feats, "feats", min_rows=1)
    r = _check_feats(ref_feats, "ref_feats", min_rows=1)
    if f.shape[1] != r.shape[1]:
        raise ValueError(f"feature sets differ in dimension: {f.shape[1]} vs {r.shape[1]}")
    mean, std = r.mean(0), r.std(0)
    scale = np.where(std > 1e-12 * np.maximum(np.abs(mean), 1.0), std, 1.0)
    return (f - mean) / scale, (r - mean) / scale


def fid(gen_feats: np.ndarray, gt_feats: np.ndarray) -> float:
    """FID of generated against ground-truth features, both standardised by the ground truth.

    Use it with :func:`kinetic_features` (FID_k) or :func:`geometric_features`
    (FID_g), one feature vector per sequence.

    Args:
        gen_feats: ``[N, D]``, ``N >= 2``.
        gt_feats: ``[M, D]``, ``M >= 2``.

    Returns:
        dimensionless (features are in ground-truth standard deviations).
    """
    g, r = normalize_by_reference(gen_feats, gt_feats)
    return frechet_distance(g, r)


def diversity(feats: np.ndarray, ref_feats: np.ndarray | None = None) -> float:
    """Mean pairwise Euclidean distance between feature vectors (Div_k, Div_g).

    With ``ref_feats`` (the ground truth) both are standardised by the
    reference's mean and std first, as for :func:`fid`; pass the ground truth
    as both arguments for its own reference diversity.

    Args:
        feats: ``[N, D]``, ``N >= 2``.
        ref_feats: ``[M, D]`` or None (no standardisation).

    Returns:
        feature units (ground-truth standard deviations when ``ref_feats`` is given).
    """
    f = _check_feats(feats, "feats", min_rows=2)
    if ref_feats is not None:
        f, _ = normalize_by_reference(f, ref_feats)
    return float(pdist(f).mean())


def _check_feats(f: np.ndarray, name: str, min_rows: int) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"{name} must be [samples, dims], got shape {f.shape}")
    if len(f) < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} samples, got {len(f)}")
    if not np.all(np.isfinite(f)):
        raise ValueError(f"{name} holds non-finite values")
    return f


# --------------------------------------------------------------------------- feet and jitter

DEFAULT_HEIGHT_TOL_CM = 5.0
DEFAULT_FLOOR_WINDOW_S = 1.0


def foot_contact(
    joints_world: np.ndarray,
    fps: float,
    height_tol_cm: float = DEFAULT_HEIGHT_TOL_CM,
    floor_window_s: float = DEFAULT_FLOOR_WINDOW_S,
    foot_joints: tuple[int, ...] = FOOT_JOINTS,
) -> np.ndarray:
    """Which foot points touch the floor in each frame.

    A foot point is in contact when it is less than ``height_tol_cm`` above
    the local floor level. The floor level at frame ``t`` is the lowest foot
    point within ``floor_window_s`` seconds centred on ``t`` (a running
    minimum), because the capture's floor drifts: in the real data the feet's
    lowest height rises by up to 40 cm over one sequence. Consequence: a
    generated dance that floats above the floor still "touches" it; this
    measures sliding, not floating. Contact does not depend on speed, so a
    sliding foot counts as in contact.

    Args:
        joints_world: ``[T, J, 3]`` positions, cm, y up.
        fps: frames per second.
        height_tol_cm: contact height tolerance, cm.
        floor_window_s: span of the running floor minimum, seconds.
        foot_joints: the foot points (default: heel and toe of both feet).

    Returns:
        ``[T, len(foot_joints)]`` booleans.
    """
    x = _check_joints(joints_world, min_frames=1)
    _check_fps(fps)
    if not height_tol_cm > 0 or not floor_window_s > 0:
        raise ValueError("height_tol_cm and floor_window_s must be positive")
    h = x[:, list(foot_joints), UP]
    size = max(1, int(round(floor_window_s * fps)))
    floor = minimum_filter1d(h.min(axis=1), size=size, mode="nearest")
    return (h - floor[:, None]) < height_tol_cm


def foot_sliding_speed(
    joints_world: np.ndarray,
    fps: float,
    height_tol_cm: float = DEFAULT_HEIGHT_TOL_CM,
    floor_window_s: float = DEFAULT_FLOOR_WINDOW_S,
    vel_window_s: float = DEFAULT_VEL_WINDOW_S,
) -> float:
    """Mean horizontal speed of the foot points while in contact (foot skating), cm/s.

    Averaged over all (frame, foot point) pairs in contact
    (:func:`foot_contact`); a stationary planted foot scores 0. ``nan`` when no
    foot point is ever in contact. Ballroom dancers slide their feet on
    purpose, so the ground truth is not 0 here: compare with it.
    """
    x = _check_joints(joints_world)
    contact = foot_contact(x, fps, height_tol_cm, floor_window_s)
    frames, v, _ = windowed_derivatives(x[:, list(FOOT_JOINTS)], fps, vel_window_s)
    contact = contact[frames]
    if not contact.any():
        return float("nan")
    speed = np.linalg.norm(v[..., list(HORIZONTAL)], axis=-1)
    return float(speed[contact].mean())


def physical_foot_contact(
    joints_world: np.ndarray, fps: float, vel_window_s: float = DEFAULT_VEL_WINDOW_S
) -> float:
    """Physical foot contact score (EDGE's PFC idea), lower is more plausible.

    A body can only accelerate (except downwards, which gravity does) while a
    foot pushes against the floor, i.e. while at least one foot is still. Per
    frame: ``(|a_root| / g) * s_a * s_b``, where ``a_root`` is the root's
    acceleration with its downward component set to 0, ``g = 981 cm/s^2``,
    and ``s_a``, ``s_b`` are each foot's horizontal speed, the slower of its
    two points (heel or toe may pivot). Averaged over frames.

    Differences from EDGE: speeds are in cm/s, not per frame, and the root
    acceleration is measured in g instead of being divided by its maximum over
    the sequence, so one glitch frame does not rescale a whole dance and the
    score does not depend on the frame rate. The root is the hip midpoint.

    Returns:
        cm^2/s^2 (per g of root acceleration).
    """
    x = _check_joints(joints_world)
    root = 0.5 * (x[:, 7] + x[:, 16])
    _, _, a = windowed_derivatives(root, fps, vel_window_s)
    a[:, UP] = np.maximum(a[:, UP], 0.0)
    weight = np.linalg.norm(a, axis=-1) / GRAVITY_CM_S2
    _, v, _ = windowed_derivatives(x[:, list(FOOT_JOINTS)], fps, vel_window_s)
    speed = np.linalg.norm(v[..., list(HORIZONTAL)], axis=-1)
    s_a = speed[:, :2].min(axis=1)
    s_b = speed[:, 2:].min(axis=1)
    return float(np.mean(weight * s_a * s_b))


def foot_skating(
    joints_world: np.ndarray,
    fps: float,
    height_tol_cm: float = DEFAULT_HEIGHT_TOL_CM,
    floor_window_s: float = DEFAULT_FLOOR_WINDOW_S,
    vel_window_s: float = DEFAULT_VEL_WINDOW_S,
) -> dict[str, float]:
    """Foot metrics of one dance.

    Returns:
        ``foot_sliding_cm_s`` (:func:`foot_sliding_speed`),
        ``foot_contact_fraction`` (share of (frame, foot point) pairs in
        contact) and ``pfc`` (:func:`physical_foot_contact`, cm^2/s^2).
    """
    x = _check_joints(joints_world)
    contact = foot_contact(x, fps, height_tol_cm, floor_window_s)
    return {
        "foot_sliding_cm_s": foot_sliding_speed(
            x, fps, height_tol_cm, floor_window_s, vel_window_s
        ),
        "foot_contact_fraction": float(contact.mean()),
        "pfc": physical_foot_contact(x, fps, vel_window_s),
    }


def jitter(joints_world: np.ndarray, fps: float) -> float:
    """Mean joint jerk magnitude, cm/s^3.

    Third forward difference times ``fps^3``, norm per joint and frame,
    averaged. 0 for motion of constant velocity or constant acceleration. For
    smooth motion it does not depend on the frame rate; for frame-to-frame
    noise it grows with ``fps^3``, so compare dances at the same frame rate.
    """
    x = _check_joints(joints_world, min_frames=4)
    _check_fps(fps)
    return float(np.linalg.norm(np.diff(x, n=3, axis=0), axis=-1).mean() * fps**3)


def _check_joints(x: np.ndarray, min_frames: int = 3) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"joints must be [frames, joints, 3], got shape {x.shape}")
    if x.shape[0] < min_frames:
        raise ValueError(f"need at least {min_frames} frames, got {x.shape[0]}")
    if not np.all(np.isfinite(x)):
        raise ValueError("joints hold non-finite values")
    return x


def _check_fps(fps: float) -> None:
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
