"""Pure feature code: motion transform, temporal indexes, normalisers, windows, splits."""

from __future__ import annotations

import numpy as np
import pytest

from melodance.features.config import FeaturesConfig, SplitConfig
from melodance.features.motion import (
    MOTION_DIM,
    MOTION_GROUPS,
    find_segments,
    motion_features,
    motion_from_features,
)
from melodance.features.normalize import Normalizer
from melodance.features.split import group_by_key, split_groups
from melodance.features.temporal import TEMPORAL_NAMES, temporal_indexes
from melodance.features.windows import window_starts


def random_motion(T=300, seed=0):
    rng = np.random.default_rng(seed)
    joints = rng.normal(0, 40, (T, 23, 3)).astype(np.float32)
    root = (np.cumsum(rng.normal(0, 3, (T, 3)), axis=0) + [300.0, 95.0, -450.0]).astype(np.float32)
    return joints, root


# ---------------------------------------------------------------- motion


def test_motion_round_trip():
    joints, root = random_motion()
    f = motion_features(joints, root)
    assert f.shape == (300, MOTION_DIM) and f.dtype == np.float32
    j2, r2 = motion_from_features(f, root[0])
    assert np.abs(j2 - joints).max() < 1e-4
    assert np.abs(r2 - root).max() < 1e-4


def test_motion_layout_matches_groups():
    joints, root = random_motion(T=5)
    f = motion_features(joints, root)
    names = {n: (a, b) for n, a, b in MOTION_GROUPS}
    for axis, name in enumerate(("joints_x", "joints_y", "joints_z")):
        a, b = names[name]
        np.testing.assert_array_equal(f[:, a:b], joints[:, :, axis])
    a, b = names["root_velocity"]
    np.testing.assert_allclose(f[1:, a:b], np.diff(root, axis=0)[:, [0, 2]], atol=1e-4)
    assert (f[0, a:b] == 0).all()
    a, b = names["root_height"]
    np.testing.assert_allclose(f[:, a], root[:, 1], atol=1e-4)
    assert MOTION_GROUPS[-1][2] == MOTION_DIM


def test_motion_shape_errors():
    with pytest.raises(ValueError, match="joints must be"):
        motion_features(np.zeros((4, 22, 3)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="root must be"):
        motion_features(np.zeros((4, 23, 3)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="motion features must be"):
        motion_from_features(np.zeros((4, 71)), np.zeros(3))


def test_find_segments_splits_at_jumps():
    joints, root = random_motion(T=200)
    joints = joints * 0.01  # slow, so only the injected jumps count
    root = np.cumsum(np.full((200, 3), 0.5, np.float32), axis=0)
    assert find_segments(joints, root, 80.0, 30.0) == [(0, 200)]
    root[120:, 0] += 40.0  # the root steps 40 cm between frames 119 and 120
    joints[60, 5] += 100.0  # one joint glitch at frame 60: jumps in and out
    assert find_segments(joints, root, 80.0, 30.0, min_frames=1) == [
        (0, 60), (60, 61), (61, 120), (120, 200)]
    assert find_segments(joints, root, 80.0, 30.0) == [(0, 60), (61, 120), (120, 200)]
    # Under a looser root bound only the joint glitch cuts.
    assert find_segments(joints, root, 80.0, 60.0) == [(0, 60), (61, 200)]


# ---------------------------------------------------------------- temporal


def test_temporal_counts_and_flags():
    beats = np.array([5, 17, 29, 41])
    t = temporal_indexes(50, beats, normalize=False)
    assert t.shape == (50, 3) and t.dtype == np.float32
    assert TEMPORAL_NAMES[1] == "beat_flag"
    np.testing.assert_array_equal(np.flatnonzero(t[:, 1]), beats)
    # Between beats: frames since the last beat.
    np.testing.assert_array_equal(t[5:41, 0], (np.arange(5, 41) - 5) % 12)
    # Before the first beat the grid is extended backwards with the period (12).
    np.testing.assert_array_equal(t[:5, 0], [7, 8, 9, 10, 11])
    # After the last beat it keeps counting modulo the period.
    np.testing.assert_array_equal(t[41:50, 0], np.arange(9))
    np.testing.assert_array_equal(t[:, 2], np.arange(50))


def test_temporal_normalized():
    beats = np.array([-3, 7, 17, 27, 37])  # a beat in the context before frame 0
    t = temporal_indexes(40, beats, normalize=True)
    assert (t[:, 0] >= 0).all() and (t[:, 0] < 1).all()
    np.testing.assert_allclose(t[7:17, 0], np.arange(10) / 10)
    np.testing.assert_allclose(t[0, 0], 3 / 10)  # from the context beat at -3
    np.testing.assert_array_equal(np.flatnonzero(t[:, 1]), [7, 17, 27, 37])
    np.testing.assert_allclose(t[:, 2], np.arange(40) / 39)


def test_temporal_without_beats():
    t = temporal_indexes(10, [], normalize=False)
    np.testing.assert_array_equal(t[:, 0], np.arange(10))
    assert (t[:, 1] == 0).all()
    assert temporal_indexes(0, [1, 2], True).shape == (0, 3)
    tn = temporal_indexes(10, [4], normalize=True)
    assert (tn[:, 0] >= 0).all() and (tn[:, 0] < 1).all() and tn[4, 1] == 1


# ---------------------------------------------------------------- normalisation

GROUPS = [("a", 0, 3), ("b", 3, 4), ("c", 4, 6)]


def train_data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (500, 6)) * [1, 5, 20, 3, 0.1, 100] + [0, 10, -5, 7, 1, 50]
    return x


def test_per_feature_minmax_maps_groups_to_unit_and_keeps_ratios():
    x = train_data()
    n = Normalizer.fit(x, GROUPS, "per_feature")
    y = n.transform(x)
    for _, a, b in GROUPS:
        g = y[:, a:b]
        assert g.min() == pytest.approx(0.0, abs=1e-6)
        assert g.max() == pytest.approx(1.0, abs=1e-6)
        # One offset and one scale per group: differences between dimensions
        # (and spreads) keep their ratios.
        assert len(set(n.scale[a:b])) == 1 and len(set(n.offset[a:b])) == 1
        if b - a > 1:
            ratio_in = x[:, a:b].std(axis=0) / x[:, a].std()
            ratio_out = g.std(axis=0) / g[:, 0].std()
            np.testing.assert_allclose(ratio_out, ratio_in, rtol=1e-4)
    # The dimension with the smaller spread stays smaller after normalising.
    assert y[:, 0].std() < y[:, 2].std()


def test_per_dim_and_zscore():
    x = train_data()
    y = Normalizer.fit(x, GROUPS, "per_dim").transform(x)
    np.testing.assert_allclose(y.min(axis=0), 0, atol=1e-6)
    np.testing.assert_allclose(y.max(axis=0), 1, atol=1e-6)
    z = Normalizer.fit(x, GROUPS, "zscore").transform(x)
    for _, a, b in GROUPS:
        assert z[:, a:b].mean() == pytest.approx(0, abs=1e-5)
        assert z[:, a:b].std() == pytest.approx(1, abs=1e-4)


def test_normalizer_inverse_and_serialisation():
    x = train_data()
    for method in ("per_feature", "per_dim", "zscore", "identity"):
        n = Normalizer.fit(x, GROUPS, method)
        n2 = Normalizer.from_dict(n.to_dict())
        np.testing.assert_array_equal(n2.transform(x), n.transform(x))
        back = n2.inverse_transform(n.transform(x[None]))[0]  # any leading shape
        np.testing.assert_allclose(back, x, rtol=1e-5, atol=1e-4)


def test_normalizer_constant_feature_and_errors():
    x = train_data()
    x[:, 3] = 4.0
    y = Normalizer.fit(x, GROUPS, "per_feature").transform(x)
    assert np.isfinite(y).all() and (y[:, 3] == 0).all()
    with pytest.raises(ValueError, match="cover 5 dims"):
        Normalizer.fit(x, [("a", 0, 5)], "per_feature")
    with pytest.raises(ValueError, match="unknown normalisation"):
        Normalizer.fit(x, GROUPS, "minmax")
    with pytest.raises(ValueError, match="last dimension 6"):
        Normalizer.fit(x, GROUPS, "per_dim").transform(np.zeros((3, 5)))


# ---------------------------------------------------------------- windows


@pytest.mark.parametrize("n,w,s", [(500, 120, 30), (120, 120, 30), (119, 120, 30),
                                   (1000, 120, 120), (7, 3, 1)])
def test_window_starts(n, w, s):
    st = window_starts(n, w, s)
    assert (st + w <= n).all() and (st >= 0).all()
    assert (np.diff(st) == s).all()
    # No room left for another window.
    assert len(st) == 0 or st[-1] + s + w > n
    assert len(st) == max(0, (n - w) // s + 1)


def test_config_checks():
    with pytest.raises(ValueError, match="skip frames"):
        FeaturesConfig(window=60, stride=90)
    with pytest.raises(ValueError, match="one music frame per motion frame"):
        FeaturesConfig(sample_rate=22050)
    with pytest.raises(ValueError, match="training split"):
        SplitConfig(val_fraction=0.5, test_fraction=0.5)
    assert FeaturesConfig().fps == 25.0


# ---------------------------------------------------------------- splits


def test_split_keeps_groups_together_and_stratifies():
    names = [f"DANCE_W_{i}" for i in range(20)] + [f"DANCE_C_{i}" for i in range(6)] + \
        [f"DANCE_R_{i}" for i in range(6)] + ["DANCE_T_1"]
    keys = [n for n in names]
    for grp in (["DANCE_W_1", "DANCE_W_3", "DANCE_W_11"], ["DANCE_W_5", "DANCE_W_15"]):
        for n in grp:
            keys[names.index(n)] = grp[0]
    groups = group_by_key(names, keys)
    styles = {n: n.split("_")[1] for n in names}
    for seed in range(5):
        sp = split_groups(groups, styles, 0.2, 0.2, seed)
        all_names = sum(sp.values(), [])
        assert sorted(all_names) == sorted(names)  # each sequence exactly once
        for g in groups:
            sides = {s for s, v in sp.items() if set(g) & set(v)}
            assert len(sides) == 1
        for style in "WCR":
            got = {s: sum(styles[n] == style for n in v) for s, v in sp.items()}
            assert got["train"] >= 1 and got["val"] >= 1 and got["test"] >= 1, (style, got)
    assert split_groups(groups, styles, 0.2, 0.2, 1) == split_groups(groups, styles, 0.2, 0.2, 1)
    assert split_groups(groups, styles, 0.2, 0.2, 1) != split_groups(groups, styles, 0.2, 0.2, 2)


def test_split_tiny_corpus_fills_every_split():
    names = [f"DANCE_{s}_{i}" for s in "CRTW" for i in range(3)][:12]
    styles = {n: n.split("_")[1] for n in names}
    for seed in range(10):
        sp = split_groups([[n] for n in names], styles, 0.2, 0.2, seed)
        assert all(sp[s] for s in ("train", "val", "test"))
    three = names[:3]
    sp = split_groups([[n] for n in three], styles, 0.2, 0.2, 0)
    assert all(len(sp[s]) == 1 for s in ("train", "val", "test"))
