"""The vqgpt family (models/vqgpt.py) on tiny synthetic arrays: fast, no data needed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from melodance.errors import InputError
from melodance.features.config import FeaturesConfig
from melodance.features.motion import MOTION_DIM
from melodance.features.pipeline import FeatureSet, SequenceFeatures
from melodance.features.temporal import BEAT_FLAG
from melodance.models.vqgpt import (
    FORMAT,
    VQGPTConfig,
    VQGPTDancer,
    fit,
    from_canonical,
    heading,
    saved_config,
    song_arrays,
    stretch_song,
    to_canonical,
    training_tokens,
)

COND = 19  # 16 music + 3 temporal
TINY = dict(codes=16, code_dim=8, vq_width=16, vq_window=16, gpt_dim=16, gpt_depth=2, gpt_heads=2,
            context=4, music_lookahead=1, batch=4, vq_steps=4, gpt_steps=4, dropout=0.0)


def synthetic_set(n_train: int = 3, frames: int = 90) -> FeatureSet:
    """Sequences whose joints swing with the music's phase (cm), split train/test."""
    rng = np.random.default_rng(0)
    seqs, split = {}, {"train": [], "val": [], "test": []}
    for k in range(n_train + 1):
        t = np.arange(frames) / 25.0
        music = np.sin(2 * np.pi * (1.5 + 0.2 * k) * t[:, None] + np.arange(16)).astype(np.float32)
        temporal = np.stack([(t * 2) % 1, (np.arange(frames) % 12 == 0), t / t[-1]], 1).astype(np.float32)
        base = rng.normal(0, 30, MOTION_DIM)
        motion = (base + 10 * np.sin(2 * np.pi * 1.5 * t[:, None] + rng.uniform(0, 6, MOTION_DIM)))
        motion[:, 71] = 95.0
        name = f"DANCE_W_{k}.0"
        seqs[name] = SequenceFeatures(name=name, style="W", source=f"DANCE_W_{k}", music=music,
                                      temporal=temporal, motion=motion.astype(np.float32),
                                      root_start=np.zeros(3), beat_frames=np.flatnonzero(temporal[:, 1]))
        split["test" if k == n_train else "train"].append(name)
    return FeatureSet(meta={"config": FeaturesConfig().model_dump(mode="json")}, sequences=seqs,
                      split=split, normalizers={})


@pytest.fixture(scope="module")
def model() -> VQGPTDancer:
    torch.set_num_threads(1)
    return fit(synthetic_set(), VQGPTConfig(**TINY))


def cond(frames: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(frames, COND)).astype(np.float32)


def test_fit_sets_statistics_and_generates_any_length(model):
    fs = synthetic_set()
    allm = torch.cat([to_canonical(torch.from_numpy(fs.sequences[n].motion))
                      for n in fs.split["train"]]).numpy()
    np.testing.assert_allclose(model.motion_mean.numpy(), allm.mean(0), rtol=1e-4, atol=1e-3)
    for frames in (1, 4, 37, 250):  # not multiples of the 4-frame token as well
        out = model.generate(cond(frames), seed=0)
        assert out.shape == (frames, MOTION_DIM) and out.dtype == np.float32
        assert np.isfinite(out).all()


def test_canonical_representation_round_trips_and_ignores_the_heading():
    """Facing one way: the same dance turned about the vertical axis has the same
    representation, and the inverse gives the features back from the start heading."""
    m = torch.from_numpy(synthetic_set().sequences["DANCE_W_0.0"].motion)
    rep = to_canonical(m)
    assert rep.shape == (len(m), MOTION_DIM + 1)
    torch.testing.assert_close(from_canonical(rep, float(heading(m[:1])[0])), m, atol=1e-3, rtol=1e-4)
    a = 0.7  # turn every joint and the root velocity by 0.7 rad
    turned = m.clone()
    for x, z in ((slice(0, 23), slice(46, 69)), (slice(69, 70), slice(70, 71))):
        turned[:, x] = np.cos(a) * m[:, x] - np.sin(a) * m[:, z]
        turned[:, z] = np.sin(a) * m[:, x] + np.cos(a) * m[:, z]
    torch.testing.assert_close(to_canonical(turned), rep, atol=1e-3, rtol=1e-4)


def test_the_turn_channel_weighs_turn_weight_times_a_pose_channel():
    m = VQGPTDancer(VQGPTConfig(turn_weight=10.0), cond_dim=3, motion_dim=MOTION_DIM)
    x = torch.zeros(2, 8, MOTION_DIM + 1)
    turn_err, pose_err = x.clone(), x.clone()
    turn_err[..., -1] = 0.5
    pose_err[..., 0] = 0.5
    assert m.position_loss(turn_err, x).item() == pytest.approx(10 * m.position_loss(pose_err, x).item())
    plain = VQGPTDancer(VQGPTConfig(turn_weight=1.0), cond_dim=3, motion_dim=MOTION_DIM)
    assert plain.position_loss(turn_err, x).item() == pytest.approx(plain.position_loss(pose_err, x).item())


def test_the_gpt_learns_each_song_tokenised_from_several_first_frames():
    fs = synthetic_set()
    songs = song_arrays(fs, "train")
    m = VQGPTDancer(VQGPTConfig(**{**TINY, "token_shifts": 4}), COND, MOTION_DIM)
    nm = [m.norm_motion(m.to_rep(torch.from_numpy(x))) for _, x in songs]
    tokens, padded = training_tokens(m, nm, [c for c, _ in songs])
    assert len(tokens) == len(padded) == 4 * len(songs)
    for o in range(4):
        x = nm[0][o:o + (len(nm[0]) - o) // 4 * 4]
        assert torch.equal(tokens[o * len(songs)], m.vqvae.encode(x.unsqueeze(0))[1][0])
        # its music starts at the same frame: the padded conditions are the song's from frame o
        cond = m.norm_cond(torch.from_numpy(songs[0][0][o:]))
        lead = m.cfg.music_lookahead * m.cfg.down
        assert torch.allclose(padded[o * len(songs)][lead:lead + len(cond)], cond)
    assert len(training_tokens(VQGPTDancer(VQGPTConfig(**{**TINY, "token_shifts": 9}), COND, MOTION_DIM),
                               nm, [c for c, _ in songs])[0]) == 4 * len(songs)  # at most `down`


def test_a_song_stretched_in_tempo_keeps_its_dance_and_moves_its_beats():
    T, rng = 40, np.random.default_rng(1)
    music = rng.normal(size=(T, 4)).astype(np.float32)
    rep = torch.from_numpy(rng.normal(size=(T, 5)).astype(np.float32))
    beats = np.array([3.0, 13.0, 23.0, 33.0])
    same_c, same_r = stretch_song(music, beats, rep, 1.0, True, [4])
    assert torch.allclose(same_r, rep) and np.allclose(same_c[:, :4], music)
    assert np.flatnonzero(same_c[:, 4 + BEAT_FLAG]).tolist() == [3, 13, 23, 33]
    c, r = stretch_song(music, beats, rep, 2.0, True, [4])
    assert len(c) == len(r) == 80
    assert torch.allclose(r[::2][:, :4], rep[:, :4])                      # poses every other frame
    assert torch.allclose(r[1:-2:2][:, :4], (rep[:-1, :4] + rep[1:, :4]) / 2)  # and between them
    assert torch.allclose(r[::2][:, 4], rep[:, 4] / 2)                    # half the change per frame
    assert np.allclose(c[::2, :4], music)
    assert np.flatnonzero(c[:, 4 + BEAT_FLAG]).tolist() == [6, 26, 46, 66]


def test_tempo_factors_that_are_not_positive_are_refused_before_training():
    with pytest.raises(InputError, match="tempo_factors must be positive"):
        fit(synthetic_set(), VQGPTConfig(**{**TINY, "tempo_factors": [1.0, 0.0]}))


def test_code_groups_give_several_tokens_per_step():
    torch.manual_seed(0)
    model = fit(synthetic_set(), VQGPTConfig(**{**TINY, "code_groups": 2}))
    tokens = model.sample_tokens(model.norm_cond(torch.from_numpy(cond(40))), seed=0)
    assert tokens.shape == (10, 2) and tokens.max() < TINY["codes"]
    out = model.generate(cond(37), seed=1)
    assert out.shape == (37, MOTION_DIM) and np.isfinite(out).all()


def test_residual_levels_refine_the_code_and_are_drawn_in_order(tmp_path):
    torch.manual_seed(0)
    model = fit(synthetic_set(), VQGPTConfig(**{**TINY, "code_levels": 2}))
    motion = torch.from_numpy(synthetic_set().sequences["DANCE_W_0.0"].motion[:32])
    x = model.norm_motion(model.to_rep(motion))
    with torch.no_grad():
        q, tokens, _ = model.vqvae.encode(x.unsqueeze(0))
        coarse = model.vqvae.vq.get_codes_from_indices(tokens)[0]  # [levels, B, N, C]: level 0 alone
    assert tokens.shape == (1, 8, 2) and tokens.max() < TINY["codes"]
    # Level 1 codes what level 0 left: the two together are nearer the encoder's vector.
    z = model.vqvae.encoder(x.unsqueeze(0).transpose(1, 2)).transpose(1, 2)
    assert (z - q).norm() < (z - coarse).norm()
    torch.testing.assert_close(model.vqvae.vq.get_output_from_indices(tokens), q, rtol=1e-5, atol=1e-5)
    # Level 1's logits depend on this step's level-0 token.
    h = torch.randn(1, 1, TINY["gpt_dim"])
    with torch.no_grad():
        a = model.gpt.logits(h, torch.tensor([[[0]]]))[0, 0, 1]
        b = model.gpt.logits(h, torch.tensor([[[5]]]))[0, 0, 1]
    assert not torch.allclose(a, b)
    sampled = model.sample_tokens(model.norm_cond(torch.from_numpy(cond(40))), seed=0)
    assert sampled.shape == (10, 2) and sampled.max() < TINY["codes"]
    out = model.generate(cond(37), seed=1)
    assert out.shape == (37, MOTION_DIM) and np.isfinite(out).all()
    model.save(tmp_path / "m.pt")
    np.testing.assert_array_equal(VQGPTDancer.load(tmp_path / "m.pt")[0].generate(cond(37), seed=1), out)


def test_code_levels_with_code_groups_are_refused():
    with pytest.raises(InputError, match="code_levels must be at least 1, and 1 when code_groups > 1"):
        VQGPTDancer(VQGPTConfig(**{**TINY, "code_levels": 2, "code_groups": 2}), COND, MOTION_DIM)


def test_a_model_saved_before_the_canonical_representation_loads_as_world_axes():
    assert saved_config({"codes": 16}).canonical is False
    assert VQGPTConfig().canonical is True


def test_the_decoder_loss_matches_limb_spans_beside_the_bones(model):
    """Shoulder-wrist and hip-ankle distances join the rigid bones in the length loss, so an
    arm that reaches less far than the real one costs, though its bones keep their length."""
    assert saved_config({"codes": 16}).limb_spans == []           # saved before the option
    cfg = model.cfg
    assert len(model.bone_mean) == len(cfg.rigid_bones) + len(cfg.limb_spans) == 12
    arm = torch.zeros(1, MOTION_DIM)
    x, y = slice(0, 23), slice(23, 46)
    arm[0, x][[3, 4, 5]] = torch.tensor([0.0, 30.0, 41.0])          # shoulder, elbow, wrist in a line
    bent = arm.clone()
    bent[0, x][5], bent[0, y][5] = 30.0, 11.0                       # forearm turned up: same bone lengths
    a, b = model.bone_lengths(arm)[0], model.bone_lengths(bent)[0]
    torch.testing.assert_close(a[:len(cfg.rigid_bones)], b[:len(cfg.rigid_bones)])
    span = len(cfg.rigid_bones) + cfg.limb_spans.index([3, 5])
    assert a[span].item() == pytest.approx(41.0)
    assert b[span].item() == pytest.approx((30 ** 2 + 11 ** 2) ** 0.5)


def test_same_seed_same_dance_other_seed_other_dance(model):
    c = cond(200)
    a, b = model.generate(c, seed=3), model.generate(c, seed=3)
    np.testing.assert_array_equal(a, b)
    assert np.abs(model.generate(c, seed=4) - a).mean() > 1e-3


def test_training_is_deterministic_per_seed():
    fs, cfg = synthetic_set(n_train=2, frames=60), VQGPTConfig(**{**TINY, "vq_steps": 2, "gpt_steps": 2})
    a = fit(fs, cfg).generate(cond(40), seed=0)
    b = fit(fs, cfg).generate(cond(40), seed=0)
    np.testing.assert_array_equal(a, b)


def test_save_load_round_trip_plain_tensors(model, tmp_path):
    path = tmp_path / "m.pt"
    model.save(path, extra={"run_id": "abc"})
    payload = torch.load(path, weights_only=True)  # plain tensors and dicts only
    assert payload["format"] == FORMAT and payload["config"]["codes"] == TINY["codes"]
    loaded, extra = VQGPTDancer.load(path)
    assert extra == {"run_id": "abc"}
    c = cond(120)
    np.testing.assert_array_equal(loaded.generate(c, seed=5), model.generate(c, seed=5))


def test_load_refuses_missing_and_foreign_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="no saved vqgpt model"):
        VQGPTDancer.load(tmp_path / "none.pt")
    torch.save({"format": "something-else"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a melodance-vqgpt-1 file"):
        VQGPTDancer.load(tmp_path / "x.pt")


def test_bad_inputs_name_the_problem(model):
    with pytest.raises(ValueError, match=r"conditions must be \[frames, 19\]"):
        model.generate(np.zeros((10, 5), np.float32))
    with pytest.raises(ValueError, match="no frames"):
        model.generate(np.zeros((0, COND), np.float32))
    with pytest.raises(ValueError, match=r"seed motion must be \[frames, 72\]"):
        model.generate(cond(20), seed_motion=np.zeros((8, 3), np.float32))


def test_long_song_sampling_is_the_trained_computation_everywhere(model):
    """No seams: the rolling-cache step at token 300 computes exactly what the sliding-window
    transformer computes over the whole sequence (what training optimises), at every position."""
    n = 300  # 75 x the context
    g = torch.Generator().manual_seed(0)
    prev = torch.randint(0, TINY["codes"] + 1, (1, n), generator=g)
    music = torch.randn(1, n, TINY["gpt_dim"], generator=g)
    with torch.no_grad():
        full = model.gpt(prev, music)[0]
        caches = [{} for _ in model.gpt.blocks]
        steps = torch.stack([model.gpt.step(prev[0, i:i + 1], music[0, i], i, caches) for i in range(n)])
    torch.testing.assert_close(steps, full, rtol=1e-4, atol=1e-4)


def test_long_song_decoding_has_no_stitches(model):
    """The decoder is local: frames far from the ends of a token sequence do not depend on
    where the sequence was cut, so a whole song is decoded in one pass without joins."""
    tokens = torch.randint(0, TINY["codes"], (1, 400), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        whole = model.vqvae.decode_tokens(tokens)[0]
        part = model.vqvae.decode_tokens(tokens[:, 100:300])[0]
    torch.testing.assert_close(part[80:720], whole[480:1120], rtol=1e-5, atol=1e-5)
    long = model.generate(cond(3000), seed=2)  # 2 minutes
    step = np.abs(np.diff(long, axis=0)).max(axis=1)
    assert np.isfinite(long).all() and step[1000:].max() < 5 * step[:1000].max() + 1e-6


def test_seed_motion_prefix_is_kept(model):
    seed_motion = synthetic_set().sequences["DANCE_W_0.0"].motion[:40]
    c = cond(100)
    a = model.generate(c, seed=0, seed_motion=seed_motion)
    b = model.generate(c, seed=1, seed_motion=seed_motion)
    assert a.shape == (100, MOTION_DIM)
    # The prefix's tokens are given, not sampled: the first frames agree across seeds
    # (up to the decoder's reach into the sampled tokens).
    np.testing.assert_allclose(a[:8], b[:8], atol=1e-4)
    assert np.abs(a[60:] - b[60:]).mean() > 1e-3


def test_gpt_only_training_reuses_the_tokenizer(model):
    other = fit(synthetic_set(), VQGPTConfig(**{**TINY, "seed": 1}), tokenizer=model)
    theirs = other.state_dict()
    for k, v in model.state_dict().items():
        if not k.startswith("gpt."):
            torch.testing.assert_close(theirs[k], v, rtol=0, atol=0)
    assert not torch.equal(theirs["gpt.head.weight"], model.state_dict()["gpt.head.weight"])
