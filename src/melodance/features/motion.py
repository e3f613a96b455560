"""Motion features: root-relative joints plus the root's travel, and the inverse.

Layout of the 72 dims (coordinate-major, so that each coordinate group is one
contiguous slice for per-group normalisation, seed 1b):

    [0:23]   x of joints 0..22, relative to the root, cm
    [23:46]  y of joints 0..22 (y up), cm
    [46:69]  z of joints 0..22, cm
    [69:71]  horizontal root velocity (x, z), cm per frame; 0 at frame 0
    [71]     root height (world y), cm

The horizontal velocity lets the dancer travel: integrating it from a start
position gives the floor trajectory back. The height is kept absolute, not as
a velocity: integrated vertical velocity lets a generated dancer sink into the
floor or float away, since small errors add up over a song.
"""

from __future__ import annotations

import numpy as np

from melodance.data.skeleton import N_COORDS, N_JOINTS

N_JOINT_DIMS = N_JOINTS * N_COORDS
MOTION_DIM = N_JOINT_DIMS + N_COORDS  # 72

ROOT_VELOCITY = slice(N_JOINT_DIMS, N_JOINT_DIMS + 2)
"""Columns of the horizontal root velocity (x, z), cm per frame."""
ROOT_HEIGHT = N_JOINT_DIMS + 2
"""Column of the root height (world y), cm."""

MOTION_GROUPS: list[tuple[str, int, int]] = [
    ("joints_x", 0, N_JOINTS),
    ("joints_y", N_JOINTS, 2 * N_JOINTS),
    ("joints_z", 2 * N_JOINTS, 3 * N_JOINTS),
    ("root_velocity", N_JOINT_DIMS, N_JOINT_DIMS + 2),
    ("root_height", N_JOINT_DIMS + 2, MOTION_DIM),
]


def motion_features(joints: np.ndarray, root: np.ndarray) -> np.ndarray:
    """Motion feature vectors of one continuous sequence.

    Args:
        joints: [T, 23, 3] joint positions relative to the root, cm.
        root: [T, 3] root positions in world coordinates, cm.

    Returns:
        [T, 72] float32: see the module docstring for the layout.
    """
    joints = np.asarray(joints)
    root = np.asarray(root, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (N_JOINTS, N_COORDS):
        raise ValueError(f"joints must be [T, {N_JOINTS}, {N_COORDS}], got {joints.shape}")
    if root.shape != (joints.shape[0], N_COORDS):
        raise ValueError(f"root must be [{joints.shape[0]}, {N_COORDS}], got {root.shape}")
    T = joints.shape[0]
    out = np.empty((T, MOTION_DIM), dtype=np.float32)
    # [T, 23, 3] -> [T, 3, 23] -> [T, 69]: coordinate-major.
    out[:, :N_JOINT_DIMS] = joints.transpose(0, 2, 1).reshape(T, N_JOINT_DIMS)
    vel = np.zeros((T, N_COORDS))
    vel[1:] = np.diff(root, axis=0)
    out[:, N_JOINT_DIMS] = vel[:, 0]
    out[:, N_JOINT_DIMS + 1] = vel[:, 2]
    out[:, N_JOINT_DIMS + 2] = root[:, 1]
    return out


def motion_from_features(feats: np.ndarray, root_start) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`motion_features`.

    Args:
        feats: [T, 72] motion features (unnormalised).
        root_start: [3] world position of the root at frame 0, cm (its height is
            not used: the features carry the height).

    Returns:
        joints [T, 23, 3] root-relative, and root [T, 3] world trajectory, cm,
        both float32. Add them (``joints + root[:, None]``) for world positions.
    """
    feats = np.asarray(feats)
    if feats.ndim != 2 or feats.shape[1] != MOTION_DIM:
        raise ValueError(f"motion features must be [T, {MOTION_DIM}], got {feats.shape}")
    T = feats.shape[0]
    joints = feats[:, :N_JOINT_DIMS].reshape(T, N_COORDS, N_JOINTS).transpose(0, 2, 1)
    # The velocity at frame 0 is 0 by construction; ignoring it keeps a
    # generated frame-0 velocity from shifting the start position.
    vel = feats[:, N_JOINT_DIMS:N_JOINT_DIMS + 2].astype(np.float64)
    vel[:1] = 0.0
    start = np.asarray(root_start, dtype=np.float64).reshape(N_COORDS)
    root = np.empty((T, N_COORDS))
    root[:, 0] = start[0] + np.cumsum(vel[:, 0])
    root[:, 2] = start[2] + np.cumsum(vel[:, 1])
    root[:, 1] = feats[:, N_JOINT_DIMS + 2]
    return np.ascontiguousarray(joints, dtype=np.float32), root.astype(np.float32)


def find_segments(joints: np.ndarray, root: np.ndarray, max_jump_cm: float,
                  max_root_step_cm: float | None = None,
                  min_frames: int = 2) -> list[tuple[int, int]]:
    """Continuous pieces of a sequence, split where something jumps.

    A jump is a frame where any joint (in world coordinates) moves more than
    ``max_jump_cm``, or the root more than ``max_root_step_cm``, from the
    previous frame: a capture glitch or a cut, which a model must not learn as
    motion (seed 1d).

    Args:
        joints: [T, 23, 3] root-relative joints, cm.
        root: [T, 3] world root, cm.
        max_jump_cm: largest allowed per-frame joint displacement, cm.
        max_root_step_cm: largest allowed root step, cm (None: max_jump_cm).
        min_frames: pieces shorter than this are dropped.

    Returns:
        [(start, stop)] frame ranges, in order.
    """
    T = len(root)
    if T == 0:
        return []
    world = np.asarray(joints, dtype=np.float64) + np.asarray(root, dtype=np.float64)[:, None]
    step_joint = np.linalg.norm(np.diff(world, axis=0), axis=-1).max(axis=1, initial=0.0)
    step_root = np.linalg.norm(np.diff(np.asarray(root, dtype=np.float64), axis=0), axis=-1)
    if max_root_step_cm is None:
        max_root_step_cm = max_jump_cm
    cuts = np.flatnonzero((step_joint > max_jump_cm) | (step_root > max_root_step_cm)) + 1
    bounds = [0, *cuts.tolist(), T]
    return [(a, b) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b - a >= min_frames]
