"""Realism metrics, the still rule, the champion gate's ranking and the retrieval baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from melodance.evaluate import beats as B
from melodance.evaluate import realism as R

FPS = 25.0


def test_kid_interval_covers_zero_for_one_distribution_and_excludes_it_for_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 16)), rng.normal(size=(60, 16))
    same = R.distance_interval(a, b, "kid", n_boot=300, seed=1)
    assert same.covers(0.0), same
    shifted = R.distance_interval(a, b + 0.8, "kid", n_boot=300, seed=1)
    assert shifted.low > 0, shifted
    # KID is unbiased: two samples of one distribution average ~0, FID does not.
    kids = [R.kid(rng.normal(size=(40, 16)), rng.normal(size=(40, 16))) for _ in range(20)]
    assert abs(np.mean(kids)) < 0.05
    fid = R.distance_interval(a, b, "fid", n_boot=50, seed=1)
    assert fid.value > 0.5 and fid.low <= fid.high


def test_feature_scaler_floor_stops_a_near_constant_dimension_from_dominating():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(50, 8))
    ref[:, 0] = 1e-6 * rng.normal(size=50)
    mean, scale = R.feature_scaler(ref, floor_frac=0.1)
    assert scale[0] == pytest.approx(0.1 * np.median(ref.std(0, ddof=1)[1:]), rel=0.2)
    assert np.allclose(scale[1:], ref.std(0, ddof=1)[1:])


def _sway(seconds: float = 20.0, amp_cm: float = 20.0) -> np.ndarray:
    """A standing skeleton whose arms and legs swing at 1 Hz: [T, 23, 3] cm."""
    t = np.arange(int(seconds * FPS)) / FPS
    rng = np.random.default_rng(3)
    base = rng.normal(scale=30.0, size=(23, 3)) + np.array([0.0, 100.0, 0.0])
    x = np.repeat(base[None], len(t), axis=0)
    limbs = [4, 5, 6, 13, 14, 15, 8, 9, 17, 18]
    x[:, limbs, 0] += amp_cm * np.sin(2 * np.pi * t)[:, None]
    x[:, limbs, 1] += 0.5 * amp_cm * np.cos(2 * np.pi * t)[:, None]
    return x


def test_motion_stats_are_body_centred_and_lowpass_removes_jitter():
    x = _sway()
    s = R.motion_stats(x, FPS)
    glide = x + np.linspace(0, 500, len(x))[:, None, None] * np.array([1.0, 0.0, 0.0])
    g = R.motion_stats(glide, FPS)
    assert g["speed_lowpass_cm_s"] == pytest.approx(s["speed_lowpass_cm_s"], rel=1e-6)
    assert g["root_travel_m_min"] == pytest.approx(5.0 / (len(x) - 1) * FPS * 60, rel=0.02)
    frozen = np.repeat(x[:1], len(x), axis=0)
    noisy = frozen + np.random.default_rng(0).normal(scale=1.0, size=frozen.shape)
    n = R.motion_stats(noisy, FPS)
    assert n["speed_cm_s"] > 2 * n["speed_lowpass_cm_s"]  # jitter counts as speed, less as motion


def test_frozen_dance_scores_bas_zero():
    frozen = np.repeat(_sway()[:1], 500, axis=0)
    kin = B.kinematic_beat_times(frozen, FPS)
    assert kin.size == 0
    music = np.arange(0.5, 19.5, 0.5)
    assert B.dance_bas(music, kin) == (0.0, 0.0)
    assert B.kinematic_beat_times(_sway(), FPS, method="fact").size > 10


def _gate_rows(real_dances, candidates, still_cm_s):
    """Gate scores (realism.gate_score with the params.yaml defaults) of candidate dance sets."""
    from melodance.evaluate import metrics as M
    from melodance.serve.gate import RegisterConfig

    cfg = RegisterConfig()
    lengths = M.BodyLengths(*np.median([M.body_lengths(d) for d in real_dances], axis=0))
    clip = int(5 * FPS)

    def feats(ds):
        cl = [d[s:s + clip] for d in ds for s in range(0, len(d) - clip + 1, clip)]
        return (np.stack([M.kinetic_features(c, FPS) for c in cl]),
                np.stack([M.geometric_features(c, FPS, lengths=lengths) for c in cl]))

    half = len(real_dances) // 2
    pool, truth = real_dances[:half], real_dances[half:]
    pk, pg = feats(pool)
    sk, sg = R.feature_scaler(pk), R.feature_scaler(pg)
    tk, tg = feats(truth)
    energy = np.mean([R.motion_stats(d, FPS)["energy_cm2_s2"] for d in truth])
    bones = R.reference_bone_lengths(pool)
    scores = {}
    for name, ds in candidates.items():
        k, g = feats(ds)
        row = {"kid_k": R.kid((k - sk[0]) / sk[1], (tk - sk[0]) / sk[1]),
               "kid_g": R.kid((g - sg[0]) / sg[1], (tg - sg[0]) / sg[1]),
               "motion_energy_ratio": np.mean([R.motion_stats(d, FPS)["energy_cm2_s2"] for d in ds])
               / energy,
               "still_fraction": np.mean([R.still_fraction(d, FPS, still_cm_s) for d in ds]),
               "bone_error_cm": np.mean([R.bone_length_error(d, bones) for d in ds])}
        scores[name] = R.gate_score(row, cfg.weights, cfg.floors)
    return scores


@pytest.fixture(scope="module")
def real_seqs(real_data):
    from melodance.data.layout import read_corpus

    return read_corpus(real_data)


def test_gate_ranks_a_real_dance_above_the_mean_pose_and_a_tenth_of_its_motion(real_seqs):
    seqs = real_seqs
    worlds = [np.asarray(s.world_joints, dtype=np.float64)[:1000] for s in seqs[::3]]
    real = worlds[-3:]
    hips = [0.5 * (d[:, 7] + d[:, 16])[:, None] for d in real]
    mean_pose = [np.repeat(d[:1] * 0 + (d - h).mean(0, keepdims=True) + h[:1], len(d), axis=0)
                 for d, h in zip(real, hips, strict=True)]
    tenth = [h + (d - h).mean(0) + 0.1 * ((d - h) - (d - h).mean(0))
             for d, h in zip(real, hips, strict=True)]
    still = R.still_threshold(worlds[:-3], FPS)
    scores = _gate_rows(worlds[:-3], {"real": real, "mean_pose": mean_pose, "tenth": tenth}, still)
    (real_s, real_failed), (mean_s, mean_failed), (tenth_s, tenth_failed) = (
        scores["real"], scores["mean_pose"], scores["tenth"])
    assert not real_failed and np.isfinite(real_s)
    assert real_s < mean_s and real_s < tenth_s
    assert any("motion_energy_ratio" in f for f in mean_failed)
    assert any("motion_energy_ratio" in f for f in tenth_failed)


def test_still_rule_fails_a_mean_pose_dance_and_passes_every_real_dance(real_seqs):
    from melodance.render.checks import StillDanceError, still_check

    seqs = real_seqs
    for s in seqs:
        frac = still_check(np.asarray(s.world_joints, dtype=np.float64), FPS, s.name)
        assert frac <= 0.1, (s.name, frac)
    d = np.asarray(seqs[0].world_joints, dtype=np.float64)
    mean_pose = np.repeat(d.mean(0, keepdims=True), len(d), axis=0)
    with pytest.raises(StillDanceError, match="stands still.*--allow-still"):
        still_check(mean_pose, FPS, "mean_pose.mp4")


def test_retrieval_bundle_round_trips_with_weights_only_and_moves_like_real_dances(
        tiny_features, tmp_path):
    from melodance.features.motion import motion_from_features
    from melodance.features.pipeline import load_features
    from melodance.models import ModelConfig
    from melodance.models.bundle import DanceBundle
    from melodance.models.retrieval import RetrievalModel

    fs = load_features(tiny_features)
    model = RetrievalModel.fit(fs, ModelConfig(variant="retrieval"))
    DanceBundle(model, fs.normalizers, fs.meta).save(tmp_path / "model.pt")
    payload = torch.load(tmp_path / "model.pt", map_location="cpu", weights_only=True)
    assert payload["model_config"]["variant"] == "retrieval"
    bundle = DanceBundle.load(tmp_path / "model.pt")
    assert isinstance(bundle.model, RetrievalModel)
    real, gen = [], []
    for name in fs.split["val"] + fs.split["test"]:
        seq = fs.sequences[name]
        j, r = bundle.generate(seq.music, seq.temporal, seq.root_start)
        assert j.shape == (len(seq.music), 23, 3) and np.isfinite(j).all()
        gen.append(R.motion_stats(j + r[:, None], FPS)["energy_cm2_s2"])
        tj, tr = motion_from_features(seq.motion, seq.root_start)
        real.append(R.motion_stats(tj + tr[:, None], FPS)["energy_cm2_s2"])
    assert 0.5 < np.mean(gen) / np.mean(real) < 2.0


def test_retrieval_trains_logs_and_serves_as_a_model(tiny_features, mlflow_store, tmp_path):
    import json

    import mlflow

    from melodance.features.pipeline import load_features
    from melodance.models import ModelConfig
    from melodance.train.config import TrainConfig
    from melodance.train.stage import run_training

    out = tmp_path / "train"
    metrics = run_training(tiny_features, out, ModelConfig(variant="retrieval"), TrainConfig(),
                           progress=False)
    assert metrics["fit_s"] < 60 and metrics["database_beats"] > 0
    for name in ("model.pt", "metrics.json", "summary.json", "history.csv", "loss_curves.png", "run.json"):
        assert (out / name).is_file(), name
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    served = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    seq = load_features(tiny_features).sequences[load_features(tiny_features).split["test"][0]]
    res = served.predict({"music": seq.music.tolist(), "temporal": seq.temporal.tolist()})
    assert np.asarray(res["joints"]).shape == (len(seq.music), 23, 3)
    assert R.motion_stats(np.asarray(res["joints"]) + np.asarray(res["root"])[:, None],
                          FPS)["speed_lowpass_cm_s"] > 10


def test_kid_interval_on_two_samples_per_side_is_finite():
    """Tiny sets (the embedded corpus has 2-4 test clips): every bootstrap draw is usable."""
    rng = np.random.default_rng(3)
    iv = R.distance_interval(rng.normal(size=(2, 5)), rng.normal(size=(2, 5)), "kid", n_boot=50)
    assert np.isfinite([iv.value, iv.low, iv.high]).all()


def test_retrieval_songs_draws_only_from_the_nearest_songs_dances(tiny_features):
    from melodance.features.pipeline import load_features
    from melodance.models import ModelConfig
    from melodance.models.retrieval import RetrievalModel, _song_descriptor

    fs = load_features(tiny_features)
    model = RetrievalModel.fit(fs, ModelConfig(variant="retrieval", retrieval_songs=1))
    # A training song asked back: its own dance is the nearest, and every piece comes from it.
    name = fs.split["train"][1]
    norm = fs.normalized(name)
    model.generate(torch.from_numpy(norm["music"]).float(), torch.from_numpy(norm["temporal"]).float())
    dances = {int(model.cand_dance[c]) for _, _, c, _, _ in model.last_pieces}
    assert dances == {1}
    assert np.allclose(model.dance_desc[1].numpy(), _song_descriptor(norm["music"]), atol=1e-5)
    # A new song: one dance only, the one whose whole song is nearest.
    norm = fs.normalized(fs.split["test"][0])
    model.generate(torch.from_numpy(norm["music"]).float(), torch.from_numpy(norm["temporal"]).float())
    db = model.dance_desc.numpy()
    dist = (((db - _song_descriptor(norm["music"])) / np.maximum(db.std(0), 1e-6)) ** 2).sum(1)
    assert {int(model.cand_dance[c]) for _, _, c, _, _ in model.last_pieces} == {int(np.argmin(dist))}

