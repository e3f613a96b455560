"""The numeric helpers of the validator, on arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from melodance.data.skeleton import RIGID_BONES
from melodance.validate.facts import (
    best_lag,
    body_heights,
    bone_cv,
    joint_speeds,
    motion_accents,
    movement_period,
    root_steps,
)


def sine_motion(period_s: float, amplitude_cm: float, seconds: float = 20.0, fps: float = 25.0):
    """[frames, 2, 3]: two joints swinging along x with the given period."""
    t = np.arange(int(seconds * fps)) / fps
    x = amplitude_cm * np.sin(2 * np.pi * t / period_s)
    out = np.zeros((len(t), 2, 3))
    out[:, 0, 0] = x
    out[:, 1, 0] = 2 * x
    return out


def test_joint_speeds_of_uniform_motion():
    w = np.zeros((10, 1, 3))
    w[:, 0, 0] = np.arange(10) * 2.0  # 2 cm per frame
    np.testing.assert_allclose(joint_speeds(w, fps=25.0), 50.0)
    assert joint_speeds(w).shape == (9, 1)


@pytest.mark.parametrize("period", [0.6, 1.0, 1.5])
@pytest.mark.parametrize("amplitude", [5.0, 40.0])
def test_movement_period_recovers_a_sine_period_whatever_the_amplitude(period, amplitude):
    assert movement_period(sine_motion(period, amplitude)) == pytest.approx(period, rel=0.03)


def test_movement_period_scales_with_a_time_squeeze():
    w = sine_motion(1.2, 30.0)
    assert movement_period(w[::4]) == pytest.approx(movement_period(w) / 4, rel=0.1)
    assert np.isnan(movement_period(np.ones((50, 3, 3))))


def test_bone_cv_zero_for_rigid_and_large_for_swapped_joints():
    rng = np.random.default_rng(0)
    pose = rng.normal(0, 30, (23, 3))
    still = np.repeat(pose[None], 100, axis=0)
    moving = still + rng.normal(0, 50, (100, 1, 3))  # translation keeps lengths
    np.testing.assert_allclose(bone_cv(moving), 0.0, atol=1e-9)
    assert bone_cv(moving).shape == (len(RIGID_BONES),)
    swapped = still.copy()
    swapped[::2, [4, 13]] = swapped[::2, [13, 4]]  # elbows swap every other frame
    assert bone_cv(swapped).max() > 0.25


def test_body_height_and_root_steps():
    j = np.zeros((3, 23, 3))
    j[:, 0, 1] = 67.0
    j[:, [10, 11, 19, 20], 1] = [-81.0, -88.0, -80.0, -85.0]
    np.testing.assert_allclose(body_heights(j), 155.0)
    root = np.array([[0.0, 90, 0], [3, 90, 4], [3, 90, 4]])
    np.testing.assert_allclose(root_steps(root), [5.0, 0.0])


def test_motion_accents_mark_speed_drops():
    w = np.zeros((6, 1, 3))
    w[:, 0, 0] = [0, 1, 2, 2, 2, 3]  # stops after frame 2
    acc = motion_accents(w, fps=1.0)
    assert acc.shape == (6,)
    np.testing.assert_allclose(acc, [0, 0, 1, 0, 0, 0])


def test_best_lag_finds_a_known_shift():
    rng = np.random.default_rng(1)
    music = rng.random(500)
    motion = np.roll(music, 3)  # motion follows music by 3 frames
    lag, r = best_lag(music, motion, max_lag=10)
    assert lag == 3
    assert r > 0.99
    assert best_lag(np.ones(50), music[:50], 5)[0] == 0
