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
