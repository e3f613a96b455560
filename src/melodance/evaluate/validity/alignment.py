"""Analytic music-motion alignment measures, all ``score(joints_world, fps, music) -> float``.

Each takes a dance ``[T, J, 3]`` (world joint positions, cm) at ``fps`` and
its music as a :class:`~melodance.evaluate.validity.music.MusicInfo` on the same
clock, and returns one number; higher means "fits the music better". All
durations are in seconds. Whether a measure carries any information on a
data set is decided by :mod:`melodance.evaluate.validity.core`, not assumed:
``docs/metrics-validity.md`` has the verdicts on the real data.

- :func:`bas_music_score`, :func:`bas_motion_score`: the two beat alignment
  scores of :mod:`melodance.evaluate.beats` in this signature.
- :func:`onset_motion_xcorr`: the best normalised cross-correlation, over
  lags within +-0.2 s, between the onset envelope and the mean joint speed.
- :func:`beat_phase_consistency`: how consistently the kinematic beats fall
  at one phase of the music's beat grid (a constant offset costs nothing).
- :func:`onset_foot_coherence`: magnitude-squared coherence between the
  onset envelope and the feet's speed, averaged over 0.3-4 Hz. It is the one
  that separates own from other songs on the real data, and is exported as
  :func:`music_motion_consistency`.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import uniform_filter1d
from scipy.signal import coherence

from melodance.data.skeleton import FOOT_JOINTS
from melodance.evaluate import beats as B
from melodance.evaluate.metrics import _check_fps, _check_joints
from melodance.evaluate.validity.music import MusicInfo

COHERENCE_SEGMENT_S = 5.12
"""Welch segment of :func:`onset_foot_coherence`, seconds (128 frames at 25 fps)."""

COHERENCE_BAND_HZ = (0.3, 4.0)
"""Frequencies averaged by :func:`onset_foot_coherence`: steps, beats and bars of
ballroom tempi (a waltz bar is 0.5 Hz, a cha-cha half-beat 4 Hz)."""

XCORR_MAX_LAG_S = 0.2
TREND_S = 1.0  # slow changes removed before correlating (a moving average this long)


def _check_music(music: MusicInfo, fps: float, n_frames: int) -> None:
    if abs(music.fps - fps) > 1e-6:
        raise ValueError(f"music at {music.fps} fps but motion at {fps} fps")
    if music.n_frames < n_frames:
        raise ValueError(f"music has {music.n_frames} frames, motion {n_frames}: cut both alike")


def foot_speed(joints_world: np.ndarray, fps: float) -> np.ndarray:
    """Mean speed of the four foot points (joints 10, 11, 19, 20), central differences.

    Returns:
        ``[T]`` cm/s.
    """
    x = _check_joints(joints_world, min_frames=2)
    _check_fps(fps)
    v = np.gradient(x[:, list(FOOT_JOINTS)], axis=0) * fps
    return np.linalg.norm(v, axis=-1).mean(axis=1)


def onset_foot_coherence(joints_world: np.ndarray, fps: float, music: MusicInfo,
                         segment_s: float = COHERENCE_SEGMENT_S,
                         band_hz: tuple[float, float] = COHERENCE_BAND_HZ) -> float:
    """Coherence of the feet's speed with the music's onset envelope.

    Welch's magnitude-squared coherence (segments of ``segment_s``, half
    overlapping, Hann window, linear detrend) between the mean foot speed and
    the onset strength, averaged over the frequencies in ``band_hz``. It is 1
    when, at every frequency, the feet follow the onsets with one fixed gain
    and phase for the whole dance, and near ``1 / (number of segments)`` for
    unrelated signals. Any fixed delay between music and motion is allowed
    (it is a phase), tempo drift is not: this rewards feet that keep time with
    the song, however they are placed against the beat.

    The chance level depends on the length (about 0.07 for 40 s), so compare
    dances of the same length only (a generated dance with its ground truth).

    Args:
        joints_world: ``[T, J, 3]`` world joint positions, cm.
        fps: frames per second of motion and music.
        music: the music on the dance's clock, at least ``T`` frames.
        segment_s: Welch segment, seconds.
        band_hz: (low, high) frequencies averaged, Hz.

    Returns:
        Mean coherence in ``[0, 1]``, dimensionless; ``nan`` when the dance
        is shorter than two segments or either signal is constant.
    """
    x = _check_joints(joints_world, min_frames=2)
    _check_fps(fps)
    _check_music(music, fps, len(x))
    nper = int(round(segment_s * fps))
    if nper < 4:
        raise ValueError(f"segment_s {segment_s} s is under 4 frames at {fps} fps")
    lo, hi = band_hz
    if not 0 <= lo < hi:
        raise ValueError(f"band_hz must be (low, high) with 0 <= low < high, got {band_hz}")
    if len(x) < 2 * nper:
        return float("nan")
    s = foot_speed(x, fps)
    o = np.asarray(music.onset[: len(x)], dtype=np.float64)
    if np.ptp(s) == 0 or np.ptp(o) == 0:
        return float("nan")
    f, c = coherence(s, o, fs=fps, nperseg=nper, noverlap=nper // 2, detrend="linear")
    sel = (f >= lo) & (f <= hi)
    if not sel.any():
        raise ValueError(f"no frequency of a {segment_s} s segment lies in {band_hz} Hz")
    return float(np.mean(c[sel]))


def music_motion_consistency(joints_world: np.ndarray, fps: float, music: MusicInfo) -> float:
    """The music-motion measure that passed the validity test on the real data.

    Currently :func:`onset_foot_coherence` with its defaults: dimensionless,
    in ``[0, 1]``, higher is better, comparable only between dances of the
    same length. See ``docs/metrics-validity.md`` for why this one.
    """
    return onset_foot_coherence(joints_world, fps, music)


def _detrend(x: np.ndarray, fps: float) -> np.ndarray:
    w = max(int(round(TREND_S * fps)), 1)
    return x - uniform_filter1d(x, w, mode="nearest")


def onset_motion_xcorr(joints_world: np.ndarray, fps: float, music: MusicInfo,
                       max_lag_s: float = XCORR_MAX_LAG_S) -> float:
    """Best normalised cross-correlation of onset envelope and motion energy over small lags.

    Both the onset strength and the mean joint speed (``beats.mean_joint_speed``,
    smoothed as for kinematic beats) lose their 1 s moving average, then the
    Pearson correlation of the overlapping parts is taken at every lag of up
    to ``max_lag_s`` either way (motion late or early) and the largest kept.

    Returns:
        Correlation in ``[-1, 1]``; ``nan`` for a constant signal.
    """
    x = _check_joints(joints_world, min_frames=3)
    _check_fps(fps)
    _check_music(music, fps, len(x))
    if max_lag_s < 0:
        raise ValueError(f"max_lag_s must be >= 0, got {max_lag_s}")
    m = _detrend(B.mean_joint_speed(x, fps), fps)
    o = _detrend(np.asarray(music.onset[: len(x)], dtype=np.float64), fps)
    K = min(int(round(max_lag_s * fps)), len(x) - 2)
    best = -np.inf
    for k in range(-K, K + 1):
        a, b = (m[k:], o[: len(o) - k]) if k >= 0 else (m[:k], o[-k:])
        if a.std() == 0 or b.std() == 0:
            continue
        best = max(best, float(np.corrcoef(a, b)[0, 1]))
    return best if np.isfinite(best) else float("nan")


def beat_phase_consistency(joints_world: np.ndarray, fps: float, music: MusicInfo,
                           smooth_s: float = B.DEFAULT_SMOOTH_S) -> float:
    """How consistently the kinematic beats sit at one phase of the music's beats.

    Each kinematic beat (``beats.kinematic_beat_times``) between the first and
    last music beat gets its phase within its beat interval, 0 to 1; the score
    is the length of the mean phase vector, ``|mean exp(2 pi i phase)|``. 1:
    every kinematic beat at the same point of the beat (any point); about
    ``1 / sqrt(n)`` for ``n`` beats at random.

    Returns:
        In ``[0, 1]``; ``nan`` with fewer than 3 music beats or 2 kinematic beats
        inside the music's beat grid.
    """
    x = _check_joints(joints_world, min_frames=2)
    _check_fps(fps)
    _check_music(music, fps, len(x))
    b = np.sort(np.asarray(music.beats_s, dtype=np.float64))
    if b.size < 3:
        return float("nan")
    kb = B.kinematic_beat_times(x, fps, smooth_s=smooth_s)
    kb = kb[(kb >= b[0]) & (kb < b[-1])]
    if kb.size < 2:
        return float("nan")
    k = np.searchsorted(b, kb, side="right") - 1
    phase = (kb - b[k]) / (b[k + 1] - b[k])
    return float(np.abs(np.mean(np.exp(2j * np.pi * phase))))


def bas_music_score(joints_world: np.ndarray, fps: float, music: MusicInfo,
                    sigma_s: float = B.DEFAULT_SIGMA_S,
                    smooth_s: float = B.DEFAULT_SMOOTH_S) -> float:
    """``beats.bas_music`` of the dance's kinematic beats against the music's beats."""
    kin = B.kinematic_beat_times(joints_world, fps, smooth_s=smooth_s)
    return B.bas_music(music.beats_s, kin, sigma_s=sigma_s)


def bas_motion_score(joints_world: np.ndarray, fps: float, music: MusicInfo,
                     sigma_s: float = B.DEFAULT_SIGMA_S,
                     smooth_s: float = B.DEFAULT_SMOOTH_S) -> float:
    """``beats.bas_motion`` of the dance's kinematic beats against the music's beats."""
    kin = B.kinematic_beat_times(joints_world, fps, smooth_s=smooth_s)
    return B.bas_motion(music.beats_s, kin, sigma_s=sigma_s)


ANALYTIC_METRICS = {
    "bas_music": bas_music_score,
    "bas_motion": bas_motion_score,
    "onset_motion_xcorr": onset_motion_xcorr,
    "beat_phase_consistency": beat_phase_consistency,
    "onset_foot_coherence": onset_foot_coherence,
}
"""Every analytic music-conditioned metric, by name; all higher-is-better."""
