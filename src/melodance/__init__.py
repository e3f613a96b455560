"""melodance: a tracked experiment platform for music-to-dance synthesis.

Reproduces the LSTM-autoencoder of Tang, Jia and Mao, "Dance with Melody"
(ACM MM 2018). Heavy libraries (torch, mlflow, librosa, great_expectations)
are imported lazily inside the functions that need them so that
``melodance --help`` stays fast.
"""

import os as _os

__version__ = "0.1.0"

FPS = 25.0
"""Motion frame rate of the Music-to-Dance dataset, frames per second."""

# librosa's numba gufuncs (beat tracking, tuning) segfault on some AVX-512 CPUs: numba
# 0.68.1 always on Zen 4 (hence the bound in pyproject.toml), and 0.67.0 once in a CI run
# here (Intel AVX-512, in localmax under beat_track). Code generated for the generic
# x86-64 target avoided it in the measurements; these kernels are small, so the
# cost is negligible. Set NUMBA_CPU_NAME yourself to choose otherwise. It must be set
# before numba is imported, which melodance only does lazily (through librosa).
_os.environ.setdefault("NUMBA_CPU_NAME", "generic")
