"""Shared fixtures.

Tests that need the real dataset in ``../shared/data/music-to-dance`` skip
with a reason when it is absent, except when ``MELODANCE_REQUIRE_SHARED=1``
(set by CI), where they fail instead.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("MELODANCE_SHARED", REPO.parent / "shared"))
REAL_DATA = SHARED / "data" / "music-to-dance"


@pytest.fixture(scope="session")
def real_data() -> Path:
    """Root of the real Music-to-Dance sequences (read-only)."""
    if not REAL_DATA.is_dir():
        msg = f"real dataset not found at {REAL_DATA}"
        if os.environ.get("MELODANCE_REQUIRE_SHARED") == "1":
            pytest.fail(msg + " (MELODANCE_REQUIRE_SHARED=1)")
        pytest.skip(msg)
    return REAL_DATA


@pytest.fixture(scope="session")
def synth_corpus(tmp_path_factory) -> Path:
    """The embedded synthetic corpus, generated once per test session."""
    from melodance.data.synth import SynthConfig, write_corpus

    out = tmp_path_factory.mktemp("synth") / "data"
    write_corpus(out, SynthConfig())
    return out


@pytest.fixture(scope="session")
def tiny_features(synth_corpus, tmp_path_factory) -> Path:
    """Features of the embedded corpus with short windows (fast training in tests)."""
    from melodance.features.config import FeaturesConfig
    from melodance.features.pipeline import build_features

    out = tmp_path_factory.mktemp("features") / "features"
    build_features(synth_corpus, out, FeaturesConfig(window=60, stride=20, workers=1),
                   progress=False)
    return out


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    """A fresh MLflow SQLite store (a real one) for this test; returns its URI."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MELODANCE_ARTIFACT_ROOT", (tmp_path / "mlartifacts").as_uri())
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    return uri


TINY_PARAMS = """
model: {variant: lstm_autoencoder, hidden_size: 24, layers: 1, code_size: 8, mlp_hidden: 24, dropout: 0.0}
train: {epochs: 2, batch_size: 16, threads: 1, patience: 5}
"""


@pytest.fixture
def tiny_params(tmp_path) -> Path:
    """A params.yaml for a tiny, fast model in this test's temporary folder."""
    p = tmp_path / "params.yaml"
    p.write_text(TINY_PARAMS)
    return p


@pytest.fixture(scope="session")
def tiny_bundle(tiny_features, tmp_path_factory) -> Path:
    """A tiny model trained for two epochs on the embedded corpus, saved as a bundle."""
    from melodance.features.pipeline import load_features
    from melodance.models.bundle import DanceBundle
    from melodance.models.config import ModelConfig
    from melodance.train.config import TrainConfig
    from melodance.train.loop import fit

    fs = load_features(tiny_features)
    model_cfg = ModelConfig(variant="lstm_autoencoder", hidden_size=24, layers=1, code_size=8,
                            mlp_hidden=24, dropout=0.0)
    result = fit(fs, model_cfg, TrainConfig(epochs=2, batch_size=16, threads=1, patience=5),
                 progress=False)
    path = tmp_path_factory.mktemp("model") / "model.pt"
    DanceBundle(result.model, fs.normalizers, fs.meta).save(path)
    return path


def pytest_collection_modifyitems(session, config, items):
    """Files with slow tests first (longest job first): under ``make test``'s two processes
    (pytest-xdist, whole files to each), a long file started last would run alone at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)   # stable: order within a file kept
