"""melodance: a tracked experiment platform for music-to-dance synthesis.

Reproduces the LSTM-autoencoder of Tang, Jia and Mao, "Dance with Melody"
(ACM MM 2018). Heavy libraries (torch, mlflow, librosa, great_expectations)
are imported lazily inside the functions that need them so that
``melodance --help`` stays fast.
"""

__version__ = "0.1.0"

FPS = 25.0
"""Motion frame rate of the Music-to-Dance dataset, frames per second."""
