"""BVH export of a dance (for Blender and other animation tools), and a BVH reader.

The skeleton hierarchy is built from the 23 joints plus two midpoints:

- root ``hips``: the midpoint of the two hips (7, 16), with position channels.
  (The dataset's ``center`` trajectory is not a point of the body: it wanders
  2 to 6 cm around the hips from frame to frame, so it cannot be a bone end.)
- ``hips`` -> ``hip_a`` -> ``knee_a`` -> ``ankle_a`` -> ``foot_a1`` -> ``foot_a2``, same for b;
- ``hips`` -> ``pelvis`` -> ``chest`` (midpoint of the shoulders 3, 12);
- ``chest`` -> ``shoulder_a`` -> ``elbow_a`` -> ``wrist_a`` -> ``hand_a`` -> ``hand_dir_a``;
- ``chest`` -> ``shoulder_b`` -> ``elbow_b`` -> ``wrist_b`` -> ``hand_b`` and ``hand_dir_b``;
- ``chest`` -> ``neck`` -> ``head``.

Rotations are solved from joint positions, parents first:

- a joint with one child turns by the smallest rotation (a swing, no twist)
  that points its bone from the rest direction to the current one;
- a joint with several children (``hips``, ``chest``, ``wrist_b``) gets the
  full rotation of a frame built from two of them (TRIAD): the first child's
  direction exactly, the second's plane. The hips and shoulders sit on a
  line through their midpoint, so both of each pair are exact.

The rest pose takes bone directions from a reference frame and each bone's
median length. What cannot round-trip exactly, since BVH bones are rigid and
this capture's are not (bone lengths vary 2-18 %, see the dataset README):

- each joint lands at the solved direction but at the rest length of its
  bone, so a bone's length change in a frame moves the joint (and everything
  below it) by that change;
- the angle between two children of a joint is fixed in BVH: ``pelvis`` (from
  ``hips``), ``neck`` (from ``chest``) and ``hand_dir_b`` (from ``wrist_b``)
  land off by how far that angle differs from its median in a frame.

A motion with rigid bones (constant lengths and branch angles) round-trips to
float precision; ``tests/test_bvh.py`` measures both cases.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melodance.data.skeleton import JOINT_NAMES, N_JOINTS
from melodance.errors import InputError, MissingInput

# (name, parent, source): source is a joint index or a pair whose midpoint it is.
HIERARCHY: tuple[tuple[str, str | None, int | tuple[int, int]], ...] = (
    ("hips", None, (7, 16)),
    ("hip_a", "hips", 7), ("knee_a", "hip_a", 8), ("ankle_a", "knee_a", 9),
    ("foot_a1", "ankle_a", 10), ("foot_a2", "foot_a1", 11),
    ("hip_b", "hips", 16), ("knee_b", "hip_b", 17), ("ankle_b", "knee_b", 18),
    ("foot_b1", "ankle_b", 19), ("foot_b2", "foot_b1", 20),
    ("pelvis", "hips", 2), ("chest", "pelvis", (3, 12)),
    ("shoulder_a", "chest", 3), ("elbow_a", "shoulder_a", 4), ("wrist_a", "elbow_a", 5),
    ("hand_a", "wrist_a", 6), ("hand_dir_a", "hand_a", 22),
    ("shoulder_b", "chest", 12), ("elbow_b", "shoulder_b", 13), ("wrist_b", "elbow_b", 14),
    ("hand_b", "wrist_b", 15), ("hand_dir_b", "wrist_b", 21),
    ("neck", "chest", 1), ("head", "neck", 0),
)
# Joints with several children: (child whose direction is exact, child fixing the twist).
BRANCH_AXES = {"hips": ("hip_a", "pelvis"), "chest": ("shoulder_a", "neck"),
               "wrist_b": ("hand_b", "hand_dir_b")}
ROTATION_ORDER = "ZXY"  # channels Zrotation Xrotation Yrotation: R = Rz @ Rx @ Ry
END_SITE_CM = 5.0
EPS = 1e-9

assert {s for _, _, s in HIERARCHY if isinstance(s, int)} == set(range(N_JOINTS))


def _points(world: np.ndarray) -> np.ndarray:
    """World joints [T, 23, 3] -> positions of the BVH joints [T, len(HIERARCHY), 3]."""
    cols = []
    for _, _, src in HIERARCHY:
        cols.append(world[:, src] if isinstance(src, int)
                    else 0.5 * (world[:, src[0]] + world[:, src[1]]))
    return np.stack(cols, axis=1)


def _unit(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, EPS), n[..., 0]


def swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotations taking unit vectors a to unit vectors b: [..., 3] -> [..., 3, 3]."""
    v = np.cross(a, b)
    c = np.einsum("...i,...i->...", a, b)
    K = np.zeros(v.shape[:-1] + (3, 3))
    K[..., 0, 1], K[..., 0, 2] = -v[..., 2], v[..., 1]
    K[..., 1, 0], K[..., 1, 2] = v[..., 2], -v[..., 0]
    K[..., 2, 0], K[..., 2, 1] = -v[..., 1], v[..., 0]
    eye = np.broadcast_to(np.eye(3), K.shape)
    opposite = c < -1.0 + 1e-9
    R = eye + K + (K @ K) / np.maximum(1.0 + c, 1e-9)[..., None, None]
    if opposite.any():
        # Half turn about any axis perpendicular to a.
        ao = a[opposite]
        helper = np.where(np.abs(ao[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
        axis, _ = _unit(np.cross(ao, helper))
        R[opposite] = 2.0 * axis[:, :, None] * axis[:, None, :] - np.eye(3)
    return R


def triad(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal frames [..., 3, 3] (columns) with axis 1 along u and axis 2 normal to (u, v).

    Returns the frames and a mask of where u and v were (nearly) parallel.
    """
    e1, _ = _unit(u)
    e2, n = _unit(np.cross(u, v))
    degenerate = n < 1e-6 * np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1),
                                       EPS)
    e3 = np.cross(e1, e2)
    return np.stack([e1, e2, e3], axis=-1), degenerate


@dataclass
class Skeleton:
    """A BVH skeleton: joint names, parent indices, rest offsets (cm, parent frame)."""

    names: list[str]
    parents: list[int]  # -1 for the root
    offsets: np.ndarray  # [J, 3]
    end_sites: dict[int, np.ndarray]  # joint index -> End Site offset

    def children(self, j: int) -> list[int]:
        return [c for c, p in enumerate(self.parents) if p == j]


def rest_skeleton(world: np.ndarray, ref_frame: int = 0) -> Skeleton:
    """Rest pose of a motion: bone directions of ``ref_frame``, median bone lengths, and
    at branch joints the median angles between children.

    world: [T, 23, 3] world joint positions, cm.
    """
    pts = _points(np.asarray(world, dtype=np.float64))
    names = [n for n, _, _ in HIERARCHY]
    index = {n: i for i, n in enumerate(names)}
    parents = [-1 if p is None else index[p] for _, p, _ in HIERARCHY]
    J = len(names)
    offsets = np.zeros((J, 3))
    ref = pts[ref_frame]
    for j in range(J):
        kids = [c for c in range(J) if parents[c] == j]
        if not kids:
            continue
        vecs = pts[:, kids] - pts[:, j:j + 1]  # [T, k, 3]
        lengths = np.median(np.linalg.norm(vecs, axis=-1), axis=0)
        if names[j] in BRANCH_AXES:
            a, b = (index[n] for n in BRANCH_AXES[names[j]])
            F, _ = triad(pts[:, a] - pts[:, j], pts[:, b] - pts[:, j])  # [T, 3, 3]
            local, _ = _unit(np.einsum("tji,tkj->tki", F, vecs))  # children in the joint frame
            local, _ = _unit(np.median(local, axis=0))
            F_ref, _ = triad(ref[a] - ref[j], ref[b] - ref[j])
            dirs = local @ F_ref.T
        else:
            dirs, _ = _unit(ref[kids] - ref[j])
        offsets[kids] = dirs * lengths[:, None]
    # Children of a midpoint sit symmetric about it: give the pair the same rest length.
    for x, y in (("hip_a", "hip_b"), ("shoulder_a", "shoulder_b")):
        i, k = index[x], index[y]
        half = 0.5 * (np.linalg.norm(offsets[i]) + np.linalg.norm(offsets[k]))
        d, _ = _unit(offsets[i] - offsets[k])
        offsets[i], offsets[k] = d * half, -d * half
    end_sites = {}
    for j in range(J):
        if j and not any(p == j for p in parents):
            d, _ = _unit(offsets[j])
            end_sites[j] = d * END_SITE_CM
    return Skeleton(names, parents, offsets, end_sites)


def solve_rotations(world: np.ndarray, skel: Skeleton) -> tuple[np.ndarray, np.ndarray]:
    """Local joint rotations that pose ``skel`` like ``world``.

    Args:
        world: [T, 23, 3] world joint positions, cm.
        skel: the rest skeleton (:func:`rest_skeleton`).

    Returns:
        root position [T, 3] (cm) and local rotations [T, J, 3, 3]
        (parent frame <- joint frame; the root's is global).
    """
    pts = _points(np.asarray(world, dtype=np.float64))
    T, J = pts.shape[:2]
    index = {n: i for i, n in enumerate(skel.names)}
    G = np.zeros((T, J, 3, 3))
    local = np.zeros((T, J, 3, 3))
    eye = np.broadcast_to(np.eye(3), (T, 3, 3))
    for j in range(J):  # HIERARCHY lists parents before children
        p = skel.parents[j]
        Gp = eye if p < 0 else G[:, p]
        kids = skel.children(j)
        if skel.names[j] in BRANCH_AXES:
            a, b = (index[n] for n in BRANCH_AXES[skel.names[j]])
            E, _ = triad(skel.offsets[a], skel.offsets[b])
            F, bad = triad(pts[:, a] - pts[:, j], pts[:, b] - pts[:, j])
            Gj = F @ E.T
            if bad.any():  # the two children line up: keep the first child's direction only
                d, _ = _unit(pts[bad, a] - pts[bad, j])
                rest = np.einsum("tij,j->ti", Gp[bad], _unit(skel.offsets[a])[0])
                Gj[bad] = swing(rest, d) @ Gp[bad]
        elif kids:
            c = kids[0]
            rest = np.einsum("tij,j->ti", Gp, _unit(skel.offsets[c])[0])
            d, n = _unit(pts[:, c] - pts[:, j])
            d = np.where((n > EPS)[:, None], d, rest)  # a zero-length bone keeps its parent's turn
            Gj = swing(rest, d) @ Gp
        else:
            Gj = Gp.copy()
        G[:, j] = Gj
        local[:, j] = Gj if p < 0 else np.swapaxes(Gp, -1, -2) @ Gj
    return pts[:, 0], local


def forward_kinematics(root_pos: np.ndarray, local: np.ndarray, skel: Skeleton) -> np.ndarray:
    """BVH joint positions [T, J, 3] from root positions [T, 3] and local rotations [T, J, 3, 3]."""
    T, J = local.shape[:2]
    G = np.zeros_like(local)
    pos = np.zeros((T, J, 3))
    for j in range(J):
        p = skel.parents[j]
        if p < 0:
            G[:, j] = local[:, j]
            pos[:, j] = root_pos
        else:
            G[:, j] = G[:, p] @ local[:, j]
            pos[:, j] = pos[:, p] + G[:, p] @ skel.offsets[j]
    return pos


def _euler_deg(R: np.ndarray) -> np.ndarray:
    """Rotation matrices [..., 3, 3] -> ZXY Euler angles [..., 3] in degrees, unwrapped in time."""
    from scipy.spatial.transform import Rotation

    shape = R.shape[:-2]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # gimbal lock: still the same rotation
        e = Rotation.from_matrix(R.reshape(-1, 3, 3)).as_euler(ROTATION_ORDER, degrees=True)
    return np.unwrap(e.reshape(*shape, 3), period=360.0, axis=0)


def motion_to_bvh(joints: np.ndarray, root: np.ndarray, fps: float, ref_frame: int = 0) -> str:
    """A dance as BVH text.

    Args:
        joints: [T, 23, 3] joint positions relative to the root, cm.
        root: [T, 3] root trajectory, world cm.
        fps: frames per second.
        ref_frame: frame whose bone directions make the rest pose.

    Returns:
        BVH text: centimetres, y up, rotation channels Z X Y.
    """
    joints = np.asarray(joints, dtype=np.float64)
    root = np.asarray(root, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (N_JOINTS, 3) or root.shape != (len(joints), 3):
        raise InputError(f"expected joints [T, 23, 3] and root [T, 3], got {list(joints.shape)} "
                         f"and {list(root.shape)}")
    if len(joints) == 0:
        raise InputError("no frames to export")
    if not (np.isfinite(joints).all() and np.isfinite(root).all()):
        raise InputError("joints or root hold NaN or infinite values")
    world = joints + root[:, None, :]
    skel = rest_skeleton(world, ref_frame)
    root_pos, local = solve_rotations(world, skel)
    angles = _euler_deg(local)  # [T, J, 3] as (z, x, y)
    lines = ["HIERARCHY"]

    def emit(j: int, depth: int) -> None:
        ind = "  " * depth
        off = " ".join(f"{v:.4f}" for v in skel.offsets[j])
        if skel.parents[j] < 0:
            lines.extend([f"ROOT {skel.names[j]}", "{", f"  OFFSET {off}",
                          "  CHANNELS 6 Xposition Yposition Zposition "
                          "Zrotation Xrotation Yrotation"])
        else:
            lines.extend([f"{ind}JOINT {skel.names[j]}", f"{ind}{{", f"{ind}  OFFSET {off}",
                          f"{ind}  CHANNELS 3 Zrotation Xrotation Yrotation"])
        for c in skel.children(j):
            emit(c, depth + 1)
        if j in skel.end_sites:
            e = " ".join(f"{v:.4f}" for v in skel.end_sites[j])
            lines.extend([f"{ind}  End Site", f"{ind}  {{", f"{ind}    OFFSET {e}", f"{ind}  }}"])
        lines.append(f"{ind}}}")

    emit(0, 0)
    order = []

    def walk(j: int) -> None:
        order.append(j)
        for c in skel.children(j):
            walk(c)

    walk(0)
    T = len(world)
    rows = np.concatenate([root_pos, angles[:, order].reshape(T, -1)], axis=1)
    lines += ["MOTION", f"Frames: {T}", f"Frame Time: {1.0 / fps:.8f}"]
    fmt = " ".join(["%.4f"] * 3 + ["%.5f"] * (rows.shape[1] - 3))
    lines += [fmt % tuple(r) for r in rows]
    return "\n".join(lines) + "\n"


def write_bvh(path: str | Path, joints: np.ndarray, root: np.ndarray, fps: float) -> None:
    """Write a dance as a BVH file (atomically)."""
    from melodance.io import write_text

    write_text(path, motion_to_bvh(joints, root, fps))


# ----------------------------------------------------------------------------- reading

@dataclass
class Bvh:
    """A parsed BVH file: skeleton, channels per joint, frame time and motion rows."""

    skeleton: Skeleton
    channels: list[list[str]]
    frame_time: float
    motion: np.ndarray  # [T, total channels]

    @property
    def fps(self) -> float:
        return 1.0 / self.frame_time

    def positions(self) -> np.ndarray:
        """World positions of every joint, [T, J, 3] (forward kinematics)."""
        from scipy.spatial.transform import Rotation

        skel = self.skeleton
        T, J = len(self.motion), len(skel.names)
        local = np.broadcast_to(np.eye(3), (T, J, 3, 3)).copy()
        trans = np.broadcast_to(skel.offsets, (T, J, 3)).copy()
        col = 0
        for j, chans in enumerate(self.channels):
            vals = self.motion[:, col:col + len(chans)]
            col += len(chans)
            rot = [(c[0].upper(), vals[:, k]) for k, c in enumerate(chans) if c.endswith("rotation")]
            for k, c in enumerate(chans):
                if c.endswith("position"):
                    trans[:, j, "XYZ".index(c[0].upper())] = vals[:, k]
            if rot:
                seq = "".join(a for a, _ in rot)
                ang = np.stack([v for _, v in rot], axis=1)
                local[:, j] = Rotation.from_euler(seq, ang, degrees=True).as_matrix()
        G = np.zeros_like(local)
        pos = np.zeros((T, J, 3))
        for j in range(J):
            p = skel.parents[j]
            if p < 0:
                G[:, j], pos[:, j] = local[:, j], trans[:, j]
            else:
                G[:, j] = G[:, p] @ local[:, j]
                pos[:, j] = pos[:, p] + np.einsum("tij,tj->ti", G[:, p], trans[:, j])
        return pos

    def joints(self) -> np.ndarray:
        """World positions of the dataset's 23 joints, [T, 23, 3] (needs our joint names)."""
        pos = self.positions()
        index = {n: i for i, n in enumerate(self.skeleton.names)}
        missing = [n for n in JOINT_NAMES if n not in index]
        if missing:
            raise InputError(f"BVH lacks joint(s) {', '.join(missing)}: not a melodance export")
        return pos[:, [index[n] for n in JOINT_NAMES]]


def parse_bvh(text: str, source: str = "BVH") -> Bvh:
    """Parse BVH text (HIERARCHY and MOTION sections)."""
    head, sep, motion = text.partition("MOTION")
    if not sep:
        raise InputError(f"{source}: no MOTION section")
    tokens = re.findall(r"[{}]|[^\s{}]+", head)
    names, parents, offsets, channels, end_sites = [], [], [], [], {}
    stack: list[int] = []
    i = 0
    pending = None  # index of the joint whose '{' comes next, or 'end'
    try:
        while i < len(tokens):
            t = tokens[i]
            if t in ("ROOT", "JOINT"):
                names.append(tokens[i + 1])
                parents.append(stack[-1] if stack else -1)
                offsets.append(np.zeros(3))
                channels.append([])
                pending = len(names) - 1
                i += 2
            elif t == "End":
                pending = "end"
                i += 2
            elif t == "{":
                stack.append(pending if pending != "end" else -2 - stack[-1])
                i += 1
            elif t == "}":
                stack.pop()
                i += 1
            elif t == "OFFSET":
                v = np.array([float(x) for x in tokens[i + 1:i + 4]])
                if stack[-1] <= -2:
                    end_sites[-2 - stack[-1]] = v
                else:
                    offsets[stack[-1]] = v
                i += 4
            elif t == "CHANNELS":
                n = int(tokens[i + 1])
                channels[stack[-1]] = tokens[i + 2:i + 2 + n]
                i += 2 + n
            else:
                i += 1
        lines = [ln for ln in motion.strip().splitlines() if ln.strip()]
        n_frames = int(lines[0].split(":")[1])
        frame_time = float(lines[1].split(":")[1])
        rows = np.array([[float(x) for x in ln.split()] for ln in lines[2:2 + n_frames]])
    except (IndexError, ValueError) as e:
        raise InputError(f"{source}: malformed BVH ({e})") from e
    n_ch = sum(len(c) for c in channels)
    if rows.shape != (n_frames, n_ch):
        raise InputError(f"{source}: MOTION holds {rows.shape} values, expected "
                         f"{n_frames} frames of {n_ch} channels")
    skel = Skeleton(names, parents, np.array(offsets), end_sites)
    return Bvh(skel, channels, frame_time, rows)


def read_bvh(path: str | Path) -> Bvh:
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"{path}: no such file")
    return parse_bvh(path.read_text(), str(path))
