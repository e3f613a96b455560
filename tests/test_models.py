"""The four model variants: shapes, the beat mask, seeded determinism, generation of any length."""

from __future__ import annotations

import pytest
import torch

from melodance.models import VARIANTS, ModelConfig, build_model
from melodance.models.lstm import beat_mask


def _inputs(T=90, B=2, beat=10):
    g = torch.Generator().manual_seed(0)
    music = torch.randn(B, T, 16, generator=g)
    temporal = torch.rand(B, T, 3, generator=g)
    temporal[..., 1] = (torch.arange(T) % beat == 0).float()
    return music, temporal


def test_beat_mask_holds_music_constant_within_a_beat():
    music, temporal = _inputs()
    masked = beat_mask(music, temporal[..., 1])
    # frames 10..19 form one beat: all equal to their mean
    assert torch.allclose(masked[:, 10:20], music[:, 10:20].mean(dim=1, keepdim=True).expand(-1, 10, -1),
                          atol=1e-6)
    assert not torch.allclose(masked[:, 19], masked[:, 20])


@pytest.mark.parametrize("variant", VARIANTS)
def test_variants_shapes_and_seeded(variant):
    music, temporal = _inputs()
    cfg = ModelConfig(variant=variant, hidden_size=32, code_size=8, mlp_hidden=32)
    m1 = build_model(cfg, 16, 3, 72, seed=3)
    m2 = build_model(cfg, 16, 3, 72, seed=3)
    m1.eval()
    m2.eval()
    o1, o2 = m1(music, temporal), m2(music, temporal)
    assert o1["motion"].shape == (2, 90, 72)
    assert torch.equal(o1["motion"], o2["motion"])
    assert ("recon" in o1) == (variant == "lstm_autoencoder")
    if "recon" in o1:
        assert o1["recon"].shape == music.shape
    # LeakyReLU in the MLP head (seed), orthogonal LSTM weights
    assert any(isinstance(x, torch.nn.LeakyReLU) for x in m1.modules())
    w = m1.motion_decoder.weight_hh_l0.detach()[:32]
    assert torch.allclose(w @ w.T, torch.eye(32), atol=1e-4)


@pytest.mark.parametrize("variant", VARIANTS)
def test_generate_any_length_without_seams(variant):
    music, temporal = _inputs(T=257, B=1)
    cfg = ModelConfig(variant=variant, hidden_size=32, code_size=8, mlp_hidden=32)
    m = build_model(cfg, 16, 3, 72, seed=0)
    m.eval()
    full = m(music, temporal)["motion"][0]
    chunked = m.generate(music[0], temporal[0], chunk_frames=40)
    # running the state through chunks equals one pass over the whole song
    assert chunked.shape == (257, 72)
    assert torch.allclose(full, chunked, atol=1e-5)


def test_temporal_variants_need_temporal_indexes():
    music, _ = _inputs()
    m = build_model(ModelConfig(variant="masked_lstm", hidden_size=16), 16, 3, 72, seed=0)
    with pytest.raises(ValueError, match="temporal"):
        m(music, None)
