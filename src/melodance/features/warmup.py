"""Compile librosa's numba kernels once, in one process, before anything runs them in parallel.

librosa's gufuncs are compiled on first use and cached on disk (``cache=True``) as
two files per kernel, written separately. Two processes compiling the same kernel at
the same time can leave a mismatched pair, and every later process that loads it
segfaults (numba issue #10128; seen here as SIGSEGV in ``_parabolic_interpolation``
and ``localmax`` on a fresh CI machine). ``make setup`` runs this module once after
installing, so the pipeline's and the tests' processes only read the cache.

    python -m melodance.features.warmup
"""

from __future__ import annotations

import time

import numpy as np


def test_signal(sr: int = 12800, seconds: float = 4.0) -> np.ndarray:
    """A C major chord with clicks on a 120 bpm beat: every analysis has work to do."""
    t = np.arange(int(seconds * sr)) / sr
    y = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)).astype(np.float32) / 3
    y[(np.arange(y.size) % (sr // 2)) < 64] += 0.8
    return y + 0.01 * np.random.default_rng(0).standard_normal(y.size).astype(np.float32)


def warm_numba_caches() -> float:
    """Run every librosa call the project (features, beats) and its baselines make; seconds."""
    import librosa

    from melodance.evaluate.beats import music_beat_times
    from melodance.features.config import FeaturesConfig
    from melodance.features.music import music_features

    t0 = time.perf_counter()
    sr = 12800
    y = test_signal(sr)
    librosa.estimate_tuning(y=y, sr=sr)
    librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=512)
    librosa.feature.tempogram(y=y, sr=sr, hop_length=512)
    librosa.onset.onset_strength(y=y, sr=sr, hop_length=512)
    librosa.beat.beat_track(y=y, sr=sr, hop_length=512)
    music_features(y, FeaturesConfig())
    music_beat_times(y, sr)
    return time.perf_counter() - t0


def main() -> int:
    took = warm_numba_caches()
    print(f"librosa's numba kernels compiled and cached in {took:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
