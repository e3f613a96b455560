"""BVH export: hierarchy, rotations solved from positions, and the round trip back to joints."""

from __future__ import annotations

import numpy as np
import pytest

from melodance.render import bvh as B


def _angle_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    cos = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def test_swing_and_triad_are_rotations():
    rng = np.random.default_rng(0)
    a, _ = B._unit(rng.normal(size=(200, 3)))
    b, _ = B._unit(rng.normal(size=(200, 3)))
    b[:5] = -a[:5]  # opposite directions: a half turn
    b[5:10] = a[5:10]  # same direction: identity
    R = B.swing(a, b)
    np.testing.assert_allclose(np.einsum("tij,tj->ti", R, a), b, atol=1e-9)
    np.testing.assert_allclose(R @ np.swapaxes(R, 1, 2), np.broadcast_to(np.eye(3), R.shape),
                               atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(R), 1.0, atol=1e-9)
    F, bad = B.triad(a, b)
    assert bad[:10].all() and not bad[10:].any()
    np.testing.assert_allclose(np.linalg.det(F[10:]), 1.0, atol=1e-9)
    np.testing.assert_allclose(F[10:, :, 0], a[10:], atol=1e-9)


@pytest.fixture(scope="module")
def real(real_data):
    from melodance.data.layout import read_sequence

    seq = read_sequence(real_data / "DANCE_C_2")
    return seq.joints[:500].astype(np.float64), seq.root[:500].astype(np.float64)


def test_rigid_motion_round_trips_exactly(real):
    """A dance with constant bone lengths (the real one, made rigid) comes back to < 0.01 cm."""
    joints, root = real
    world = joints + root[:, None]
    skel = B.rest_skeleton(world)
    rigid_pts = B.forward_kinematics(*B.solve_rotations(world, skel), skel)
    names = [n for n, _, _ in B.HIERARCHY]
    from melodance.data.skeleton import JOINT_NAMES

    rigid = rigid_pts[:, [names.index(n) for n in JOINT_NAMES]]
    assert np.abs(rigid - world).max() > 5.0  # the real capture is not rigid: this is a new dance
    rigid_root = rigid.mean(axis=1)  # any root: BVH stores world positions
    text = B.motion_to_bvh(rigid - rigid_root[:, None], rigid_root, 25.0, ref_frame=123)
    back = B.parse_bvh(text).joints()
    err = np.linalg.norm(back - rigid, axis=-1)
    assert err.max() < 0.01, f"rigid round trip off by up to {err.max():.4f} cm"


def test_real_motion_round_trip_error_is_bone_length_variation(real, tmp_path):
    """On the (non-rigid) capture every bone points the right way; positions are off only by
    how much bone lengths and the three branch angles vary (documented in render.bvh)."""
    joints, root = real
    path = tmp_path / "dance.bvh"
    B.write_bvh(path, joints, root, 25.0)
    bvh = B.read_bvh(path)
    assert bvh.fps == pytest.approx(25.0) and len(bvh.motion) == len(joints)
    assert bvh.skeleton.names == [n for n, _, _ in B.HIERARCHY]
    assert bvh.channels[0][:3] == ["Xposition", "Yposition", "Zposition"]
    got = bvh.positions()
    want = B._points(joints + root[:, None])
    np.testing.assert_allclose(got[:, 0], want[:, 0], atol=1e-3)  # the root is placed exactly
    index = {n: i for i, n in enumerate(bvh.skeleton.names)}
    approximate = {"pelvis", "neck", "hand_dir_b"}  # second children of branch joints
    for j, (name, parent, _) in enumerate(B.HIERARCHY):
        if parent is None:
            continue
        p = index[parent]
        ang = _angle_deg(got[:, j] - got[:, p], want[:, j] - want[:, p])
        if name in approximate:
            assert np.median(ang) < 20.0, name
        else:
            assert ang.max() < 0.01, f"bone {parent}->{name} off by up to {ang.max():.4f} deg"
    err = np.linalg.norm(bvh.joints() - (joints + root[:, None]), axis=-1)
    assert np.median(err) < 4.0, f"median joint error {np.median(err):.2f} cm"


def test_bvh_header_and_bad_files(tmp_path):
    T = 5
    joints = np.zeros((T, 23, 3))
    joints[:, :, 1] = np.linspace(-85, 70, 23)
    joints[:, :, 0] = np.arange(23) % 5 - 2.0
    joints[:, :, 2] = np.arange(23) % 3 - 1.0
    root = np.zeros((T, 3))
    text = B.motion_to_bvh(joints, root, 25.0)
    assert text.startswith("HIERARCHY\nROOT hips\n")
    assert text.count("JOINT ") == len(B.HIERARCHY) - 1
    assert "Frames: 5\nFrame Time: 0.04000000" in text
    with pytest.raises(ValueError, match="no MOTION"):
        B.parse_bvh("HIERARCHY\nROOT a\n{\n}\n", "x.bvh")
    cut = text[: text.rindex("\n", 0, len(text) - 2)]  # last frame missing
    with pytest.raises(ValueError, match="x.bvh"):
        B.parse_bvh(cut, "x.bvh")
    with pytest.raises(ValueError, match="NaN"):
        B.motion_to_bvh(np.full((T, 23, 3), np.nan), root, 25.0)
    with pytest.raises(FileNotFoundError):
        B.read_bvh(tmp_path / "none.bvh")
