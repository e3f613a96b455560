"""Tuned values fill only the keys params.yaml leaves at `auto`; an explicit value always wins."""

from __future__ import annotations

import json

import pytest

from melodance.train.stage import resolve_configs

PARAMS = """
features: {window: auto}
model: {variant: lstm_autoencoder, hidden_size: auto, layers: 1, code_size: auto}
train: {lr: 0.005, batch_size: auto, use_tuned: %s}
"""
BEST = {"params": {"model.hidden_size": 96, "model.layers": 2, "model.code_size": 16,
                   "train.lr": 0.0011, "train.batch_size": 8, "features.window": 60}}


@pytest.fixture
def files(tmp_path):
    (tmp_path / "best.json").write_text(json.dumps(BEST))
    return tmp_path


def test_explicit_values_win_and_auto_keys_come_from_the_study(files):
    (files / "params.yaml").write_text(PARAMS % "true")
    m, t, window, from_study = resolve_configs(files / "params.yaml", files / "best.json")
    assert (m.hidden_size, m.code_size, t.batch_size, window) == (96, 16, 8, 60)   # auto: the study's
    assert (m.layers, t.lr) == (1, 0.005)                                          # explicit: kept
    assert from_study == {"model.hidden_size": 96, "model.code_size": 16, "train.batch_size": 8,
                          "features.window": 60}


def test_without_use_tuned_auto_is_the_built_in_default(files):
    from melodance.models import ModelConfig
    from melodance.train.config import TrainConfig

    (files / "params.yaml").write_text(PARAMS % "false")
    m, t, window, from_study = resolve_configs(files / "params.yaml", files / "best.json")
    assert (m.hidden_size, t.batch_size, window, from_study) == (
        ModelConfig().hidden_size, TrainConfig().batch_size, None, {})


def test_auto_without_a_study_names_the_keys(files):
    (files / "params.yaml").write_text(PARAMS % "true")
    with pytest.raises(FileNotFoundError, match=r"model\.hidden_size.*auto"):
        resolve_configs(files / "params.yaml", files / "missing.json")


def test_explicit_window_is_the_training_window(files):
    (files / "params.yaml").write_text((PARAMS % "true").replace("window: auto", "window: 90"))
    _, _, window, from_study = resolve_configs(files / "params.yaml", files / "best.json")
    assert window == 90 and "features.window" not in from_study


def test_the_study_searches_only_the_auto_keys(files):
    """A value the user set is held fixed in the study (its other keys are tuned for it)."""
    from melodance.params import load_section
    from melodance.tune.config import TuneConfig
    from melodance.tune.study import searched_space

    (files / "params.yaml").write_text(PARAMS % "true")
    cfg = load_section("tune", TuneConfig, files / "params.yaml")
    space, fixed = searched_space(cfg, files / "params.yaml")
    assert "model.hidden_size" in space and "train.batch_size" in space
    assert "model.layers" not in space and fixed["model.layers"] == 1 and fixed["train.lr"] == 0.005
    (files / "params.yaml").write_text(PARAMS % "false")
    space, fixed = searched_space(cfg, files / "params.yaml")
    assert fixed == {} and set(space) == set(cfg.search_space())
