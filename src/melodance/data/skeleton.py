"""The 23-joint skeleton of the Music-to-Dance dataset.

Joint indices follow ``shared/data/README.md``. Which arm/leg is anatomically
left or right is not documented by the dataset, so the two sides are called
``a`` (joints 3-11, 22) and ``b`` (joints 12-21).

Bones join joints or *virtual* points (midpoints of two joints). Virtual points
get indices 23.. in :func:`with_virtual_points`.
"""

from __future__ import annotations

import numpy as np

N_JOINTS = 23
N_COORDS = 3

JOINT_NAMES: tuple[str, ...] = (
    "head", "neck", "pelvis",
    "shoulder_a", "elbow_a", "wrist_a", "hand_a",
    "hip_a", "knee_a", "ankle_a", "foot_a1", "foot_a2",
    "shoulder_b", "elbow_b", "wrist_b", "hand_b",
    "hip_b", "knee_b", "ankle_b", "foot_b1", "foot_b2",
    "hand_dir_b", "hand_dir_a",
)
assert len(JOINT_NAMES) == N_JOINTS

# Virtual points: (index, joint i, joint j) -> midpoint of i and j.
VIRTUAL_POINTS: tuple[tuple[int, int, int], ...] = (
    (23, 0, 1),    # mid head-neck
    (24, 3, 12),   # mid shoulders (top of the spine)
    (25, 10, 11),  # mid foot a
    (26, 19, 20),  # mid foot b
)

# Bones over joints and virtual points, as in the dataset README.
BONES: tuple[tuple[int, int], ...] = (
    (0, 1), (23, 24), (3, 24), (12, 24),
    (3, 4), (4, 5), (5, 6),
    (12, 13), (13, 14), (14, 15),
    (2, 24),
    (2, 7), (7, 8), (8, 9), (9, 25), (10, 11),
    (2, 16), (16, 17), (17, 18), (18, 26), (19, 20),
    (14, 21), (6, 22),
)

SIDE_A = frozenset({3, 4, 5, 6, 7, 8, 9, 10, 11, 22, 25})
SIDE_B = frozenset({12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 26})

SHOULDERS: tuple[int, int] = (3, 12)
HIPS: tuple[int, int] = (7, 16)
UPPER_ARMS: tuple[tuple[int, int], ...] = ((3, 4), (12, 13))   # shoulder -> elbow, both sides
assert all(JOINT_NAMES[i].startswith("shoulder") for i in SHOULDERS)
assert all(JOINT_NAMES[i].startswith("hip") for i in HIPS)

FOOT_JOINTS: tuple[int, ...] = (10, 11, 19, 20)
HAND_JOINTS: tuple[int, ...] = (6, 15)

# Bones whose length is stable enough in the capture to check rigidity:
# legs, upper arms, forearms and spine (see the dataset README: 2-8 % CV).
RIGID_BONES: tuple[tuple[int, int], ...] = (
    (3, 4), (4, 5), (12, 13), (13, 14),
    (7, 8), (8, 9), (16, 17), (17, 18),
)


def bone_side(bone: tuple[int, int]) -> str:
    """'a', 'b' or 'centre' for a bone, used to colour limbs."""
    i, j = bone
    if i in SIDE_A or j in SIDE_A:
        return "a"
    if i in SIDE_B or j in SIDE_B:
        return "b"
    return "centre"


def with_virtual_points(joints: np.ndarray) -> np.ndarray:
    """Append the virtual midpoints.

    joints: [..., 23, 3] -> [..., 27, 3].
    """
    mids = [0.5 * (joints[..., i, :] + joints[..., j, :]) for _, i, j in VIRTUAL_POINTS]
    return np.concatenate([joints, np.stack(mids, axis=-2)], axis=-2)


def bone_lengths(joints: np.ndarray, bones=BONES) -> np.ndarray:
    """Bone lengths in the joints' units.

    joints: [frames, 23, 3] -> [frames, len(bones)].
    """
    pts = with_virtual_points(joints)
    idx = np.asarray(bones)
    return np.linalg.norm(pts[:, idx[:, 0]] - pts[:, idx[:, 1]], axis=-1)
