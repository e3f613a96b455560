"""Evaluation metrics against hand-computed answers (issue 6, "Must show")."""

from __future__ import annotations

import math

import numpy as np
import pytest

from melodance.evaluate import beats as B
from melodance.evaluate import metrics as M

SIGMA = 0.05


def gauss(d: float, sigma: float = SIGMA) -> float:
    return math.exp(-(d**2) / (2 * sigma**2))


# --------------------------------------------------------------------------- metric loss


def test_metric_loss_hand_computed():
    true = np.zeros((2, 2, 3))
    pred = true.copy()
    pred[0, 0] = [3, 4, 0]  # frame 0: one joint 5 cm off
    pred[1, 0] = [1, 0, 0]  # frame 1: two joints 1 cm off -> sqrt(2)
    pred[1, 1] = [0, 1, 0]
    assert M.metric_loss(pred, true) == pytest.approx(5 + math.sqrt(2))
    assert M.metric_loss_per_frame(pred, true) == pytest.approx((5 + math.sqrt(2)) / 2)
    np.testing.assert_allclose(M.metric_loss_per_joint(pred, true), [3.0, 0.5])
    assert M.metric_loss(true, true) == 0.0


def test_metric_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        M.metric_loss(np.zeros((3, 23, 3)), np.zeros((4, 23, 3)))


# --------------------------------------------------------------------------- beat alignment

MUSIC = np.arange(1, 21) * 0.5  # 120 bpm


def test_bas_is_one_on_the_beat_and_falls_with_shift():
    assert B.bas_music(MUSIC, MUSIC) == pytest.approx(1.0)
    assert B.bas_motion(MUSIC, MUSIC) == pytest.approx(1.0)
    scores = [B.bas_music(MUSIC, MUSIC + d) for d in (0.0, 0.02, 0.05, 0.1, 0.2)]
    assert all(a > b for a, b in zip(scores, scores[1:], strict=False))
    # A known shift: every beat is exactly d away.
    assert B.bas_music(MUSIC, MUSIC + 0.03) == pytest.approx(gauss(0.03))
    assert B.bas_motion(MUSIC, MUSIC - 0.05) == pytest.approx(math.exp(-0.5))


def test_bas_directions_differ_on_a_jittery_dance():
    # Kinematic beats on every music beat plus an extra one half-way between.
    extra = MUSIC[:-1] + 0.25
    kin = np.sort(np.concatenate([MUSIC, extra]))
    assert B.bas_music(MUSIC, kin) == pytest.approx(1.0)
    n, m = len(MUSIC), len(extra)
    assert B.bas_motion(MUSIC, kin) == pytest.approx((n + m * gauss(0.25)) / (n + m))
    assert B.bas_motion(MUSIC, kin) < 0.6


def test_bas_uses_nearest_beat_on_either_side_unsorted():
    assert B.beat_alignment_score([1.0], [2.0, 0.0, 0.98]) == pytest.approx(gauss(0.02))
    assert B.beat_alignment_score([1.0], [1.01, 0.5]) == pytest.approx(gauss(0.01))


def test_bas_empty_beat_lists():
    assert math.isnan(B.bas_music([], MUSIC))
    assert B.bas_music(MUSIC, []) == 0.0
    assert math.isnan(B.bas_motion(MUSIC, []))
    assert B.bas_motion([], MUSIC) == 0.0
    with pytest.raises(ValueError, match="sigma"):
        B.beat_alignment_score(MUSIC, MUSIC, sigma_s=0)


def test_beats_in_span_retimes_to_the_dance_clock():
    np.testing.assert_allclose(B.beats_in_span([0.5, 1.0, 2.5, 4.0], 1.0, 4.0), [0.0, 1.5])


PERIOD = 0.53  # s; speed minima at PERIOD/2 + k PERIOD, never on a frame at 25 or 60 fps


def pulsing_dance(fps: float, duration: float = 8.0, shift: float = 0.0, speed: float = 60.0):
    """23 joints moving in different fixed directions, all with speed
    ``speed (1 + cos(2 pi (t - shift) / PERIOD))`` cm/s: minima at
    ``shift + PERIOD/2 + k PERIOD``."""
    t = np.arange(int(round(duration * fps)) + 1) / fps - shift
    w = 2 * np.pi / PERIOD
    path = speed * (t + np.sin(w * t) / w)  # integral of the speed
    dirs = np.random.default_rng(0).normal(size=(23, 3))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    return path[:, None, None] * dirs[None] + np.arange(23)[None, :, None]


def expected_minima(duration: float, shift: float = 0.0, margin: float = 0.3) -> np.ndarray:
    k = np.arange(100)
    t = shift + PERIOD / 2 + k * PERIOD
    return t[(t > margin) & (t < duration - margin)]


@pytest.mark.parametrize("fps", [25.0, 60.0])
def test_kinematic_beats_found_at_speed_minima_within_one_frame(fps):
    found = B.kinematic_beat_times(pulsing_dance(fps), fps)
    want = expected_minima(8.0)
    inner = found[(found > 0.3) & (found < 7.7)]
    assert len(inner) == len(want)
    assert np.max(np.abs(inner - want)) < 1.0 / fps
    # Sub-frame refinement does better than the frame grid.
    assert np.max(np.abs(inner - want)) < 0.25 / fps


def test_kinematic_beats_of_still_or_uniform_motion_are_empty():
    still = np.zeros((50, 23, 3))
    assert B.kinematic_beat_times(still, 25.0).size == 0
    uniform = np.arange(50)[:, None, None] * np.ones((1, 23, 3))
    assert B.kinematic_beat_times(uniform, 25.0).size == 0


def test_bas_is_the_same_at_25_and_60_fps():
    shift = 0.03  # the dance runs 30 ms late against the music
    music = expected_minima(8.0, margin=0.3)
    scores = {}
    for fps in (25.0, 60.0):
        kin = B.kinematic_beat_times(pulsing_dance(fps, shift=shift), fps)
        scores[fps] = (B.bas_music(music, kin), B.bas_motion(music, kin))
    for fps in scores:
        assert scores[fps][0] == pytest.approx(gauss(shift), abs=0.02)
    assert scores[25.0][0] == pytest.approx(scores[60.0][0], abs=0.02)
    assert scores[25.0][1] == pytest.approx(scores[60.0][1], abs=0.03)


def test_music_beat_times_on_a_click_track():
    sr = 22050
    y = np.zeros(10 * sr, dtype=np.float32)
    clicks = 0.25 + 0.5 * np.arange(20)
    burst = np.hanning(200) * np.sin(np.arange(200) * 0.5)
    for c in clicks:
        i = int(c * sr)
        y[i : i + 200] = burst
    beats = B.music_beat_times(y, sr, hop_length=512)
    assert len(beats) >= 15
    np.testing.assert_allclose(np.diff(beats), 0.5, atol=0.03)
    nearest = np.min(np.abs(beats[:, None] - clicks[None]), axis=1)
    assert np.max(nearest) < 0.05


# --------------------------------------------------------------------------- FID and diversity


def test_frechet_distance_of_a_set_with_itself_is_zero():
    feats = np.random.default_rng(1).normal(size=(200, 6))
    assert abs(M.frechet_distance(feats, feats)) < 1e-6
    assert abs(M.fid(feats, feats)) < 1e-6


def test_frechet_distance_of_a_shifted_set_is_the_squared_shift():
    feats = np.random.default_rng(2).normal(size=(200, 6))
    for d in (0.5, 1.0, 2.0):
        shifted = feats + np.array([d, 0, 0, 0, 0, 0])
        # Same covariance, so only the mean term is left: d^2.
        assert M.frechet_distance(shifted, feats) == pytest.approx(d**2, abs=1e-6)
    # fid() measures in ground-truth standard deviations (ddof 0).
    std0 = feats[:, 0].std()
    assert M.fid(feats + [1.0, 0, 0, 0, 0, 0], feats) == pytest.approx(1 / std0**2, abs=1e-6)
    grows = [M.fid(feats + d, feats) for d in (0.0, 0.1, 0.3, 1.0)]
    assert all(a < b for a, b in zip(grows, grows[1:], strict=False))


def test_frechet_distance_of_1d_gaussians_matches_closed_form():
    rng = np.random.default_rng(3)
    a, b = rng.normal(1.0, 2.0, size=(500, 1)), rng.normal(-0.5, 0.5, size=(400, 1))
    ma, mb = a.mean(), b.mean()
    sa, sb = a.std(ddof=1), b.std(ddof=1)
    want = (ma - mb) ** 2 + (sa - sb) ** 2
    assert M.frechet_distance(a, b) == pytest.approx(want, rel=1e-9)


def test_fid_with_fewer_samples_than_dimensions_is_finite():
    rng = np.random.default_rng(4)
    gt, gen = rng.normal(size=(6, 69)), rng.normal(size=(8, 69)) + 0.5
    assert np.isfinite(M.fid(gen, gt)) and M.fid(gen, gt) > 0
    assert abs(M.fid(gt, gt)) < 1e-4


def test_frechet_distance_matches_the_matrix_square_root_and_stays_real_when_degenerate():
    from scipy import linalg

    rng = np.random.default_rng(6)
    # well conditioned: the textbook formula with scipy's sqrtm of the product
    a, b = rng.normal(size=(300, 5)), rng.normal(size=(250, 5)) @ rng.normal(size=(5, 5)) + 1.0
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    d = a.mean(0) - b.mean(0)
    want = d @ d + np.trace(sa) + np.trace(sb) - 2 * np.trace(linalg.sqrtm(sa @ sb).real)
    assert M.frechet_distance(a, b) == pytest.approx(want, rel=1e-9)
    # a few clips of nearly collinear features (a small test split): sqrtm of the product
    # has a complex root here; the distance is still a real number, symmetric, >= 0
    base = rng.normal(size=(5, 69))
    x = base + 1e-4 * rng.normal(size=(5, 69))
    y = 1.5 * base[::-1] + 1e-4 * rng.normal(size=(5, 69))
    f = M.frechet_distance(x, y)
    assert np.isfinite(f) and f > 0
    assert M.frechet_distance(y, x) == pytest.approx(f, rel=1e-6)


def test_normalisation_guards_constant_ground_truth_dimensions():
    rng = np.random.default_rng(5)
    gt = np.column_stack([rng.normal(size=50), np.zeros(50)])
    gen = np.column_stack([rng.normal(size=50), np.full(50, 0.1)])
    g, r = M.normalize_by_reference(gen, gt)
    np.testing.assert_allclose(g[:, 1], 0.1)  # centred, not divided by 0
    np.testing.assert_allclose(r[:, 0].std(), 1.0)


def test_frechet_distance_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        M.frechet_distance(np.zeros((1, 3)), np.zeros((5, 3)))


def test_diversity_is_the_mean_pairwise_distance():
    pts = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0]])
    assert M.diversity(pts) == pytest.approx((3 + 4 + 5) / 3)
    ref = np.array([[0.0, 0.0], [2.0, 0.0], [0.0, 8.0], [2.0, 8.0]])  # std 1 and 4
    assert M.diversity(pts, ref) == pytest.approx((3 + 1 + math.hypot(3, 1)) / 3)


# --------------------------------------------------------------------------- kinetic features


def still_body(n_frames: int, n_joints: int = 23) -> np.ndarray:
    return np.tile(np.random.default_rng(6).normal(0, 30, size=(1, n_joints, 3)), (n_frames, 1, 1))


@pytest.mark.parametrize("fps", [25.0, 60.0])
def test_kinetic_features_of_constant_horizontal_speed(fps):
    v = 120.0  # cm/s along x
    x = still_body(100)
    x[:, 4, 0] += v * np.arange(100) / fps
    k = M.kinetic_features(x, fps).reshape(23, 3)
    assert k[4, 0] == pytest.approx(v**2)  # v^2, not v^2 / 2
    assert k[4, 1] == pytest.approx(0.0, abs=1e-9)
    assert k[4, 2] == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(np.delete(k, 4, axis=0), 0.0, atol=1e-9)


def test_kinetic_features_vertical_speed_and_constant_acceleration():
    fps, w, acc = 25.0, 50.0, 300.0
    t = np.arange(60) / fps
    x = still_body(60)
    x[:, 0, 1] += w * t  # head rises at w cm/s
    x[:, 1, 2] += 0.5 * acc * t**2  # neck accelerates along z
    k = M.kinetic_features(x, fps).reshape(23, 3)
    assert k[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert k[0, 1] == pytest.approx(w**2)
    assert k[0, 2] == pytest.approx(0.0, abs=1e-6)
    assert k[1, 1] == pytest.approx(0.0, abs=1e-9)
    assert k[1, 2] == pytest.approx(acc)


def smooth_dance(fps: float, duration: float = 6.0) -> np.ndarray:
    """A continuous motion (sums of sinusoids up to 2 Hz), sampled at ``fps``."""
    rng = np.random.default_rng(7)
    t = np.arange(int(round(duration * fps)) + 1) / fps
    amp = rng.uniform(2, 15, size=(3, 23, 3))
    freq = rng.uniform(0.3, 2.0, size=(3, 23, 3))
    phase = rng.uniform(0, 2 * np.pi, size=(3, 23, 3))
    waves = amp * np.sin(2 * np.pi * freq * t[:, None, None, None] + phase)
    return waves.sum(1) + still_body(1)


def test_kinetic_features_are_the_same_at_25_and_60_fps():
    k25 = M.kinetic_features(smooth_dance(25.0), 25.0)
    k60 = M.kinetic_features(smooth_dance(60.0), 60.0)
    np.testing.assert_allclose(k25, k60, rtol=0.05)


def test_windowed_derivatives_are_exact_for_quadratic_motion_at_any_window():
    fps = 25.0
    t = np.arange(40) / fps
    x = 3.0 + 20.0 * t + 0.5 * 150.0 * t**2
    for window in (0.05, 1 / 12, 0.2):
        frames, v, a = M.windowed_derivatives(x, fps, window)
        np.testing.assert_allclose(v, 20.0 + 150.0 * t[frames], rtol=1e-9)
        np.testing.assert_allclose(a, 150.0, rtol=1e-6)
    with pytest.raises(ValueError, match="shorter than"):
        M.windowed_derivatives(x[:2], fps, 0.2)


# --------------------------------------------------------------------------- geometric features


def standing_body(n_frames: int = 30) -> np.ndarray:
    """A person standing upright, arms down, facing +z; floor at y = 0."""
    pose = np.zeros((23, 3))
    for side, sx in (("a", -1.0), ("b", 1.0)):
        arm = (3, 4, 5, 6) if side == "a" else (12, 13, 14, 15)
        leg = (7, 8, 9, 10, 11) if side == "a" else (16, 17, 18, 19, 20)
        pose[list(arm)] = [[18 * sx, 150, 0], [18 * sx, 122, 0], [18 * sx, 97, 0], [18 * sx, 90, 0]]
        pose[list(leg)] = [
            [10 * sx, 105, 0],
            [10 * sx, 57, 0],
            [10 * sx, 10, 0],
            [10 * sx, 2, -3],
            [10 * sx, 0, 10],
        ]
    pose[0], pose[1], pose[2] = [0, 170, 0], [0, 155, 0], [0, 117, 0]
    pose[21], pose[22] = [18, 95, 3], [-18, 95, 3]
    return np.tile(pose, (n_frames, 1, 1))


def names_on(feats: np.ndarray) -> set[str]:
    return {n for n, f in zip(M.GEOMETRIC_FEATURE_NAMES, feats, strict=True) if f > 0.5}


def test_body_lengths_of_the_standing_body():
    assert M.body_lengths(standing_body()) == pytest.approx((28.0, 36.0, 20.0))


def test_geometric_features_of_a_still_standing_body_are_all_off():
    g = M.geometric_features(standing_body(), 25.0)
    assert g.shape == (len(M.GEOMETRIC_FEATURE_NAMES),) == (32,)
    np.testing.assert_array_equal(g, 0.0)


def test_geometric_features_switch_on_for_their_pose():
    x = standing_body()
    x[:, 4], x[:, 5], x[:, 6] = [-46, 150, 0], [-71, 150, 0], [-78, 150, 0]  # arm a sideways
    assert names_on(M.geometric_features(x, 25.0)) == {"arm_a_raised"}
    x = standing_body()
    x[:, 18:21, 2] += 30.0  # foot b a step forward
    assert names_on(M.geometric_features(x, 25.0)) == {"foot_b_in_front_of_leg_a"}


def test_geometric_speed_features_on_a_gliding_body():
    fps, speed = 25.0, 80.0  # cm/s, > 2.3 and 2.5 humerus lengths (28 cm) per second
    x = standing_body(50)
    x[..., 2] += speed * np.arange(50)[:, None] / fps
    assert names_on(M.geometric_features(x, fps)) == {
        "root_fast",
        "wrist_a_fast",
        "wrist_b_fast",
        "ankle_a_fast",
        "ankle_b_fast",
    }
    # The same glide on a body 1.5 times larger is slower in body lengths.
    big = standing_body(50) * 1.5
    big[..., 2] += speed * np.arange(50)[:, None] / fps
    assert names_on(M.geometric_features(big, fps)) == set()
    # Scaling space and speed together changes nothing.
    np.testing.assert_array_equal(M.geometric_features(x * 1.5, fps), M.geometric_features(x, fps))


def test_geometric_features_are_close_at_25_and_60_fps():
    def dance(fps):
        t = np.arange(int(6 * fps) + 1) / fps
        x = standing_body(len(t))
        x[:, 4:7, 0] += (-30 * (1 - np.cos(2 * np.pi * 0.7 * t)))[:, None]  # arm a swings out
        x[..., 2] += (60 * t + 20 * np.sin(2 * np.pi * 0.5 * t))[:, None]
        return x

    np.testing.assert_allclose(
        M.geometric_features(dance(25.0), 25.0), M.geometric_features(dance(60.0), 60.0), atol=0.05
    )


# --------------------------------------------------------------------------- feet and jitter


def test_stationary_feet_do_not_skate():
    fs = M.foot_skating(standing_body(50), 25.0)
    assert fs["foot_sliding_cm_s"] == 0.0
    assert fs["foot_contact_fraction"] == 1.0
    assert fs["pfc"] == 0.0


def test_foot_sliding_is_the_mean_speed_over_contact():
    fps = 25.0
    t = np.arange(50) / fps
    x = standing_body(50)
    x[:, 19:21, 0] += 30.0 * t[:, None]  # foot b slides sideways at 30 cm/s
    # Two points slide at 30, two stand still: mean over the four is 15.
    assert M.foot_sliding_speed(x, fps) == pytest.approx(15.0)
    x[:, 19:21, 1] += 20.0  # lifted: no longer in contact, no longer counted
    assert M.foot_sliding_speed(x, fps) == pytest.approx(0.0)


def test_foot_contact_follows_a_drifting_floor():
    fps = 25.0
    x = standing_body(250)
    x[..., 1] += 3.0 * np.arange(250)[:, None] / fps  # whole capture drifts 30 cm up
    assert M.foot_contact(x, fps).all()


def test_pfc_hand_computed():
    fps, g = 25.0, M.GRAVITY_CM_S2
    t = np.arange(50) / fps
    x = standing_body(50)
    x[:, [10, 11, 19, 20], 0] += 20.0 * t[:, None]  # both feet slide at 20 cm/s
    up = x.copy()
    body = [j for j in range(23) if j not in (10, 11, 19, 20)]
    up[:, body, 1] += 0.5 * 0.1 * g * t[:, None] ** 2  # everything but the feet rises at 0.1 g
    assert M.physical_foot_contact(up, fps) == pytest.approx(0.1 * 20 * 20)
    down = x.copy()
    down[:, body, 1] -= 0.5 * 0.1 * g * t[:, None] ** 2  # falling is free: gravity does it
    assert M.physical_foot_contact(down, fps) == pytest.approx(0.0, abs=1e-9)
    up[:, [19, 20], 0] = x[0, [19, 20], 0]  # foot b planted: it can push
    assert M.physical_foot_contact(up, fps) == pytest.approx(0.0, abs=1e-9)


def test_jitter_hand_computed():
    fps = 25.0
    t = np.arange(30) / fps
    x = still_body(30)
    x[:, 3, 0] += 50 * t  # constant velocity
    x[:, 5, 1] += 0.5 * 200 * t**2  # constant acceleration
    assert M.jitter(x, fps) == pytest.approx(0.0, abs=1e-6)
    x[:, 7, 2] += 4.0 * t**3  # jerk 6 * 4 = 24 cm/s^3 on one of 23 joints
    assert M.jitter(x, fps) == pytest.approx(24.0 / 23, rel=1e-6)
