"""The features stage on the real dataset and on the synthetic corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest

from melodance.data.layout import read_corpus
from melodance.features.config import FeaturesConfig
from melodance.features.motion import motion_features, motion_from_features
from melodance.features.pipeline import build_features, load_features

CFG = FeaturesConfig()


@pytest.fixture(scope="module")
def real_features(real_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("features") / "features"
    built = build_features(real_data, out, CFG)
    return built, load_features(out), read_corpus(real_data)


def test_every_real_sequence_has_music_for_every_motion_frame(real_features):
    built, fs, seqs = real_features
    assert len(seqs) == 43
    for s in seqs:
        segs = [f for f in fs.sequences.values() if f.source == s.name]
        assert segs, s.name
        for f in segs:
            assert f.music.shape == (f.n_frames, 16), f.name
            assert f.temporal.shape == (f.n_frames, 3), f.name
            assert f.motion.shape == (f.n_frames, 72), f.name
            assert np.isfinite(f.music).all() and np.isfinite(f.temporal).all()
        # The real data has no jump beyond the validation bounds: one segment
        # per sequence, covering every motion frame.
        assert [f.n_frames for f in segs] == [s.n_frames], s.name
        assert segs[0].start_s == pytest.approx(s.start_s)


def test_saved_features_load_back_identical(real_features):
    built, fs, _ = real_features
    assert fs.split == built.split
    assert sorted(fs.sequences) == sorted(built.sequences)
    for name in list(fs.sequences)[:5]:
        for k in ("music", "temporal", "motion", "root_start", "beat_frames"):
            np.testing.assert_array_equal(getattr(fs.sequences[name], k),
                                          getattr(built.sequences[name], k))
    for k in ("music", "temporal", "motion"):
        assert fs.normalizers[k].to_dict() == built.normalizers[k].to_dict()


def test_no_sequence_in_two_splits(real_features):
    _, fs, seqs = real_features
    src = fs.source_split()
    assert sum(len(v) for v in src.values()) == len(seqs)
    assert set().union(*src.values()) == {s.name for s in seqs}
    for a in src:
        for b in src:
            if a < b:
                assert not set(src[a]) & set(src[b]), (a, b)
    # Every split holds every style that has three or more sequences.
    styles = {s.name: s.style for s in seqs}
    for style in ("C", "R", "W"):
        for sp, names in src.items():
            assert any(styles[n] == style for n in names), (style, sp)


def test_identical_openings_share_a_split(real_features):
    _, fs, _ = real_features
    groups = fs.meta["opening_groups"]
    # The groups listed in the dataset README are found from the data.
    found = [set(g) for g in groups]
    for known in (["DANCE_W_1", "DANCE_W_3", "DANCE_W_11", "DANCE_W_31"],
                  ["DANCE_W_6", "DANCE_W_27", "DANCE_W_30", "DANCE_W_32"],
                  ["DANCE_W_21", "DANCE_W_26", "DANCE_W_33"], ["DANCE_W_5", "DANCE_W_25"],
                  ["DANCE_W_7", "DANCE_W_10"], ["DANCE_W_12", "DANCE_W_22"],
                  ["DANCE_W_15", "DANCE_W_28"]):
        assert any(set(known) <= g for g in found), known
    src = fs.source_split()
    for g in groups:
        assert sum(bool(set(g) & set(v)) for v in src.values()) == 1, g


def test_no_window_crosses_a_segment_boundary(real_features):
    _, fs, _ = real_features
    W, S = CFG.window, CFG.stride
    for split in ("train", "val", "test"):
        w = fs.windows(split)
        names = fs.split[split]
        n_expected = sum(max(0, (fs.sequences[n].n_frames - W) // S + 1) for n in names)
        assert w["music"].shape == (n_expected, W, 16)
        assert w["temporal"].shape == (n_expected, W, 3)
        assert w["motion"].shape == (n_expected, W, 72)
        lengths = np.array([fs.sequences[names[i]].n_frames for i in w["segment"]])
        assert (w["start"] >= 0).all() and (w["start"] + W <= lengths).all()
        # Each window is a contiguous slice of its own segment.
        for i in range(0, n_expected, 97):
            norm = fs.normalized(names[w["segment"][i]])
            a = w["start"][i]
            for k in ("music", "temporal", "motion"):
                np.testing.assert_array_equal(w[k][i], norm[k][a: a + W])


def test_normalizers_fitted_on_train_only(real_features):
    _, fs, _ = real_features
    train = {k: np.concatenate([fs.normalized(n)[k] for n in fs.split["train"]])
             for k in ("music", "motion")}
    for k, x in train.items():
        for _, a, b in fs.normalizers[k].groups:
            assert x[:, a:b].min() == pytest.approx(0, abs=1e-5)
            assert x[:, a:b].max() == pytest.approx(1, abs=1e-5)
    val = np.concatenate([fs.normalized(n)["motion"] for n in fs.split["val"]])
    assert not (val.min() == pytest.approx(0, abs=1e-7) and val.max() == pytest.approx(1))


def test_motion_round_trip_on_real_data(real_data):
    for s in read_corpus(real_data, names=["DANCE_T_5", "DANCE_R_4", "DANCE_W_31"]):
        j, r = motion_from_features(motion_features(s.joints, s.root), s.root[0])
        assert np.abs(j - s.joints).max() < 1e-4, s.name
        assert np.abs(r - s.root).max() < 1e-4, s.name


def run_features_command(argv: list[str]) -> int:
    import argparse

    from melodance.features.commands import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["features", *argv])
    return args.func(args)


def test_features_command_on_accepted_subset(real_data, tmp_path):
    names = ["DANCE_C_8", "DANCE_R_2", "DANCE_W_22", "DANCE_W_24"]
    accepted = tmp_path / "accepted.json"
    accepted.write_text(json.dumps({"sequences": names, "quarantined": []}))
    params = tmp_path / "params.yaml"
    params.write_text("features:\n  music: mel80\n  workers: 1\n  stride: 120\n")
    out = tmp_path / "features"
    common = ["--data", str(real_data), "--accepted", str(accepted), "--out", str(out),
              "--params", str(params), "--no-progress"]
    assert run_features_command(common) == 0
    fs = load_features(out)
    assert fs.source_split()["train"] and sum(map(len, fs.source_split().values())) == 4
    assert fs.meta["dims"]["music"] == 80 and fs.meta["config"]["stride"] == 120
    assert sorted(json.loads((out / "split.json").read_text())) == ["test", "train", "val"]
    assert len(list((out / "segments").glob("*.npz"))) == 4
    # stride == window: the no-overlap ablation.
    w = fs.windows("train")
    for i in np.unique(w["segment"]):
        starts = w["start"][w["segment"] == i]
        n = fs.sequences[fs.split["train"][i]].n_frames
        np.testing.assert_array_equal(starts, np.arange(n // 120) * 120)
    # Same inputs, same bytes (DVC sees an unchanged output), whatever the pool size.
    out2 = tmp_path / "features2"
    params.write_text("features:\n  music: mel80\n  workers: 2\n  stride: 120\n")
    assert run_features_command([*common[:5], str(out2), *common[6:]]) == 0
    for f in sorted(out.rglob("*")):
        if f.is_file():
            assert f.read_bytes() == (out2 / f.relative_to(out)).read_bytes(), f.name
    accepted.write_text(json.dumps({"sequences": ["DANCE_X_1"]}))
    with pytest.raises(ValueError, match="accepted sequences not found: DANCE_X_1"):
        run_features_command(common)
    assert load_features(out).meta["dims"]["music"] == 80  # the old output is intact
    params.write_text("features:\n  music: mel81\n")
    with pytest.raises(ValueError, match="section 'features' is invalid"):
        run_features_command(common)


def test_synthetic_corpus_fills_every_split(synth_corpus, tmp_path):
    fs = build_features(synth_corpus, tmp_path / "f", CFG.model_copy(update={"workers": 1}))
    src = fs.source_split()
    assert all(src[s] for s in ("train", "val", "test")), src
    for f in fs.sequences.values():
        assert f.music.shape[0] == f.motion.shape[0] == f.temporal.shape[0]
    assert fs.windows("train")["music"].shape[1:] == (CFG.window, 16)
