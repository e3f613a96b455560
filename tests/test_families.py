"""Model families behind one interface (models/families.py): the generative family trained by the
train stage, saved as a bundle, loaded with weights_only, sampled with a seed through every path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from melodance.models.config import FAMILIES, ModelConfig
from melodance.models.families import REGISTRY, model_class
from melodance.train.config import TrainConfig, resolve_device

TINY_VQGPT = {"codes": 16, "code_dim": 8, "vq_width": 16, "vq_window": 16, "gpt_dim": 16,
              "gpt_depth": 1, "gpt_heads": 2, "context": 4, "music_lookahead": 1, "batch": 4,
              "dropout": 0.0, "vq_epochs": 0.5, "gpt_epochs": 0.5}


def test_registry_covers_every_family_and_old_configs_keep_their_family():
    assert tuple(REGISTRY) == FAMILIES == ("lstm", "retrieval", "vqgpt")
    assert ModelConfig().family == "lstm"
    assert ModelConfig(variant="retrieval").family == "retrieval"  # bundles from before families
    assert ModelConfig(family="retrieval").variant == "retrieval"
    assert model_class(ModelConfig(variant="masked_lstm")).__name__ == "DanceModel"
    assert model_class(ModelConfig(family="vqgpt")).__name__ == "VQGPTModel"
    with pytest.raises(ValueError, match="disagree"):
        ModelConfig(family="lstm", variant="retrieval")
    with pytest.raises(ValueError, match="unknown key"):
        ModelConfig(family="vqgpt", vqgpt={"codez": 8})


def test_training_length_is_steps_from_epochs_not_wall_time():
    from melodance.models.generative import NO_BUDGET_S, resolve

    cfg = ModelConfig(family="vqgpt", vqgpt={"batch": 8, "vq_window": 32, "context": 8, "down": 4,
                                             "vq_epochs": 2, "gpt_epochs": 4})
    stored, small = resolve(cfg, seed=3, frames=1000)
    _, big = resolve(cfg, seed=3, frames=10_000)
    assert (small.vq_steps, small.gpt_steps) == (8, 8)  # ceil(2*1000/256), ceil(4*1000/512)
    assert big.vq_steps == 79 and big.gpt_steps == 79   # proportional to the data
    assert small.seed == 3 and small.vq_budget_s == NO_BUDGET_S == small.gpt_budget_s
    assert stored.vqgpt["vq_steps"] == 8 and stored.vqgpt["vq_epochs"] == 2.0
    with pytest.raises(ValueError, match="cannot be set"):
        resolve(ModelConfig(family="vqgpt", vqgpt={"vq_steps": 5}), 0, 1000)


def test_device_auto_takes_what_there_is():
    assert TrainConfig().device == "auto"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU"):
            resolve_device("cuda")


@pytest.fixture(scope="module")
def vqgpt_train(tiny_features, tmp_path_factory):
    """The train stage with model.family vqgpt (tiny sizes) on the embedded corpus."""
    import os

    from melodance.train.stage import run_training

    tmp = tmp_path_factory.mktemp("vqgpt")
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp / 'mlflow.db'}")
    mp.setenv("MELODANCE_ARTIFACT_ROOT", (tmp / "mlartifacts").as_uri())
    mp.delenv("DVC_EXP_NAME", raising=False)
    cwd = os.getcwd()
    os.chdir(tmp)
    try:
        out = tmp / "train"
        metrics = run_training(tiny_features, out, ModelConfig(family="vqgpt", vqgpt=TINY_VQGPT),
                               TrainConfig(seed=0, threads=1, device="cpu"), progress=False)
        yield out, metrics, tmp
    finally:
        os.chdir(cwd)
        mp.undo()


def test_train_stage_writes_one_unit_and_logs_both_phases(vqgpt_train):
    from mlflow.tracking import MlflowClient

    from melodance.train.stage import check_outputs

    out, metrics, _ = vqgpt_train
    run, on_disk = check_outputs(out)  # sha256 of model.pt, metrics.json, summary.json match run.json
    assert on_disk == json.loads((out / "summary.json").read_text()) == metrics
    headline = json.loads((out / "metrics.json").read_text())  # DVC's: the headline figures only
    assert "val_speed_ratio" in headline and set(headline) <= {"gpt_best_val_loss", "val_speed_ratio"}
    assert headline.items() <= metrics.items()
    assert metrics["vq_steps"] >= 1 and metrics["gpt_steps"] >= 1
    assert 0 < metrics["val_speed_ratio"] < 50 and 0 <= metrics["val_still_fraction"] <= 1
    header = (out / "history.csv").read_text().splitlines()[0]
    assert header.startswith("epoch,phase,step")
    client = MlflowClient()
    r = client.get_run(run["run_id"])
    assert r.data.params["model.family"] == "vqgpt"
    assert int(r.data.params["model.vqgpt.vq_steps"]) == metrics["vq_steps"]
    assert r.data.tags["melodance.family"] == "vqgpt"
    payload = torch.load(out / "model.pt", weights_only=True)  # plain tensors and data only
    assert payload["model_config"]["family"] == "vqgpt"


def test_bundle_generates_any_length_and_the_seed_picks_the_dance(vqgpt_train, tiny_features):
    from melodance.features.pipeline import load_features
    from melodance.models.bundle import DanceBundle

    out, _, _ = vqgpt_train
    bundle = DanceBundle.load(out / "model.pt")
    assert bundle.family == "vqgpt"
    fs = load_features(tiny_features)
    seq = fs.sequences[fs.split["test"][0]]
    for frames in (7, len(seq.music)):
        j, r = bundle.generate(seq.music[:frames], seq.temporal[:frames], seq.root_start, seed=1)
        assert j.shape == (frames, 23, 3) and r.shape == (frames, 3) and np.isfinite(j).all()
    a, _ = bundle.generate(seq.music, seq.temporal, seed=5)
    b, _ = bundle.generate(seq.music, seq.temporal, seed=5)
    c, _ = bundle.generate(seq.music, seq.temporal, seed=6)
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).mean() > 1e-3


def test_pyfunc_serves_the_family_with_a_seed(vqgpt_train, tiny_features):
    import mlflow

    from melodance.features.pipeline import load_features
    from melodance.models.bundle import DanceBundle
    from melodance.serve.predict import RequestError, predict

    out, _, tmp = vqgpt_train
    run = json.loads((out / "run.json").read_text())
    fs = load_features(tiny_features)
    seq = fs.sequences[fs.split["test"][0]]
    req = {"music": seq.music[:50].tolist(), "temporal": seq.temporal[:50].tolist()}
    import os

    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp / 'mlflow.db'}"
    try:
        model = mlflow.pyfunc.load_model(f"runs:/{run['run_id']}/model")
        a = model.predict({**req, "seed": 2})
        b = model.predict({**req, "seed": 2})
        c = model.predict({**req, "seed": 3})
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    assert np.asarray(a["joints"]).shape == (50, 23, 3)
    np.testing.assert_array_equal(a["joints"], b["joints"])
    assert not np.array_equal(np.asarray(a["joints"]), np.asarray(c["joints"]))
    bundle = DanceBundle.load(out / "model.pt")
    for bad in (-1, 2**31, 1.5, "7", True):
        with pytest.raises(RequestError, match="seed"):
            predict(bundle, {**req, "seed": bad})


def test_old_lstm_bundle_still_loads(tiny_bundle):
    from melodance.models.bundle import DanceBundle

    payload = torch.load(tiny_bundle, weights_only=True)
    payload["model_config"].pop("family", None)  # as written before families
    payload["model_config"].pop("vqgpt", None)
    old = Path(str(tiny_bundle) + ".old.pt")
    torch.save(payload, old)
    b = DanceBundle.load(old)
    assert b.family == "lstm" and b.model.cfg.variant == "lstm_autoencoder"
