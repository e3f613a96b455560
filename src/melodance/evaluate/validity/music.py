"""The music of a dance span as the validity tool's metrics see it.

:class:`MusicInfo` (beats, onset strength, features on the dance's clock) and
the score-function type live here, below the metrics (``alignment``,
``matching``) and the test (``core``) that all use them: no import circle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class MusicInfo:
    """The music of one dance span, on the dance's clock (frame 0 at time 0).

    Attributes:
        fps: frames per second of the per-frame arrays (the dance's).
        beats_s: ``[n]`` music beat times, seconds from frame 0, increasing;
            only beats inside ``[0, n_frames / fps)``.
        onset: ``[T]`` onset strength per frame (librosa's spectral flux, mean
            positive dB increase per mel band).
        features: ``[T, D]`` per-frame music features (``features.music``,
            unnormalised), or ``None`` when a metric does not need them.
    """

    fps: float
    beats_s: np.ndarray
    onset: np.ndarray
    features: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_frames(self) -> int:
        return int(len(self.onset))

    def window(self, start: int, stop: int) -> MusicInfo:
        """Frames ``[start, stop)``, re-timed so that ``start`` is time 0."""
        a, b = int(start), min(int(stop), self.n_frames)
        if not 0 <= a < b:
            raise ValueError(f"empty music window [{start}, {stop}) of {self.n_frames} frames")
        if a == 0 and b == self.n_frames:
            return self
        t0, t1 = a / self.fps, b / self.fps
        return MusicInfo(
            fps=self.fps,
            beats_s=self.beats_s[(self.beats_s >= t0) & (self.beats_s < t1)] - t0,
            onset=self.onset[a:b],
            features=None if self.features is None else self.features[a:b],
        )


ScoreFn = Callable[[np.ndarray, float, MusicInfo], float]


def music_info(audio_path: str | Path, start_s: float, n_frames: int, cfg=None) -> MusicInfo:
    """Music of a dance span read from its song (``features.music.song_features``).

    Args:
        audio_path: the song.
        start_s: song time of dance frame 0, seconds.
        n_frames: frames of the dance.
        cfg: a ``FeaturesConfig`` (default: the package defaults, ``seed16``).

    Returns:
        :class:`MusicInfo` with the beats inside the span, the onset strength
        and the seed16 (or mel80) features, all at the dance's frame rate.
    """
    from melodance.features.config import FeaturesConfig
    from melodance.features.music import song_features

    cfg = cfg or FeaturesConfig()
    song = song_features(audio_path, start_s, n_frames, cfg)
    return music_info_from_features(song["music"], song["beat_frames"], cfg.fps)


def music_info_from_features(music: np.ndarray, beat_frames: np.ndarray, fps: float) -> MusicInfo:
    """:class:`MusicInfo` from a features segment (``SequenceFeatures.music``, ``.beat_frames``).

    Args:
        music: ``[T, D]`` unnormalised music features; seed16 (D = 16) gives
            the onset strength column, anything else the spectral flux of
            its columns (mel80: the onset envelope of the log-mel bands).
        beat_frames: beat positions relative to frame 0 (may lie outside).
        fps: frames per second.
    """
    from melodance.features.music import SEED16_GROUPS

    music = np.asarray(music, dtype=np.float64)
    if music.ndim != 2 or len(music) < 1:
        raise ValueError(f"music features must be [frames, dims], got shape {music.shape}")
    if music.shape[1] == SEED16_GROUPS[-1][2]:
        (_, lo, _), = [g for g in SEED16_GROUPS if g[0] == "onset_strength"]
        onset = music[:, lo]
    else:
        onset = np.r_[0.0, np.maximum(np.diff(music, axis=0), 0.0).mean(axis=1)]
    T = len(music)
    beats = np.asarray(beat_frames, dtype=np.float64) / fps
    return MusicInfo(fps=fps, beats_s=beats[(beats >= 0) & (beats < T / fps)], onset=onset,
                     features=music.astype(np.float32))
