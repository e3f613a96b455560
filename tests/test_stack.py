"""The numeric stack survives the librosa calls this project and its baselines make.

A segfault inside numba-compiled code (numba 0.68.1 on AVX-512 / Zen 4 CPUs, in
the gufunc behind ``librosa.estimate_tuning``) kills the Python process that
makes the call: run in-process, it would end the whole test session with no
report. So every call runs in its own subprocess, and a death by signal is a
failed test that names the call and the signal.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

# A 6 s test signal at the features stage's rate (the warm-up's: a C major chord with clicks
# on a 120 bpm beat), so the tuning estimate, chroma, onsets and beats all have work.
SIGNAL = """
from melodance.features.warmup import test_signal
sr = 12800
y = test_signal(sr, seconds=6.0)
"""

# name -> code that uses ``y`` and ``sr``. The first five are what a user or the
# features benchmark's baseline calls with librosa's defaults; the last two are
# this project's own feature and beat code.
CALLS = {
    "librosa.estimate_tuning": "import librosa; librosa.estimate_tuning(y=y, sr=sr)",
    "librosa.feature.chroma_cqt (tuning=None)":
        "import librosa; librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=512)",
    "librosa.feature.tempogram":
        "import librosa; librosa.feature.tempogram(y=y, sr=sr, hop_length=512)",
    "librosa.onset.onset_strength":
        "import librosa; librosa.onset.onset_strength(y=y, sr=sr, hop_length=512)",
    "librosa.beat.beat_track":
        "import librosa; librosa.beat.beat_track(y=y, sr=sr, hop_length=512)",
    "melodance.features.music.music_features": (
        "from melodance.features.config import FeaturesConfig\n"
        "from melodance.features.music import music_features\n"
        "music_features(y, FeaturesConfig())"),
    "melodance.evaluate.beats.music_beat_times": (
        "from melodance.evaluate.beats import music_beat_times\n"
        "music_beat_times(y, sr)"),
}


@pytest.fixture(scope="module")
def numba_cache(tmp_path_factory) -> str:
    """A numba cache of this module's own: the calls compile from scratch, one process at a
    time, so a crash here is the stack's, not a cache left mismatched by processes that
    compiled the same kernel at once (numba issue #10128; melodance.features.warmup)."""
    return str(tmp_path_factory.mktemp("numba-cache"))


def run_call(name: str, code: str, timeout_s: float = 600.0, cache_dir: str | None = None) -> str | None:
    """Run one call in a fresh interpreter; None when it exits 0, else what went wrong."""
    src = SIGNAL + "\n" + textwrap.dedent(code) + "\nprint('ok')\n"
    env = dict(os.environ, **({"NUMBA_CACHE_DIR": cache_dir} if cache_dir else {}))
    p = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True,
                       timeout=timeout_s, env=env)
    if p.returncode == 0 and p.stdout.strip().endswith("ok"):
        return None
    if p.returncode < 0:
        how = f"killed by {signal.Signals(-p.returncode).name}"
    else:
        how = f"exit status {p.returncode}"
    tail = "\n".join(p.stderr.strip().splitlines()[-8:])
    return f"{name}: {how} (a crash in the compiled stack: numba/llvmlite/numpy)\n{tail}"


@pytest.mark.parametrize("name", list(CALLS))
def test_librosa_call_does_not_crash(name, numba_cache):
    problem = run_call(name, CALLS[name], cache_dir=numba_cache)
    assert problem is None, problem


def test_a_crash_is_reported_with_the_call_and_the_signal():
    """The harness itself: a call that segfaults is a failure naming it, not a dead run."""
    problem = run_call("deliberate segfault", "import ctypes; ctypes.string_at(0)")
    assert problem is not None
    assert problem.startswith("deliberate segfault: killed by SIGSEGV"), problem
