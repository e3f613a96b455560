"""Music beats, kinematic beats and the Beat Alignment Score (BAS).

Every time here is in **seconds** and every duration parameter (smoothing,
sigma) is in seconds too, never in frames, so 25 fps motion is scored exactly
like 60 fps motion. The public references (Bailando, AIST++/FACT) work in
frames at 60 fps: their sigma of 3 frames is ``sigma_s = 0.05`` here and their
Gaussian smoothing of the speed with sigma 5 frames is ``smooth_s = 5 / 60``.

The two directions of BAS differ only in which beats are averaged over:

- :func:`bas_music` (Bailando): for each *music* beat, how close is the nearest
  kinematic beat. Extra kinematic beats (a jittery dance) cost nothing.
- :func:`bas_motion` (AIST++/FACT): for each *kinematic* beat, how close is the
  nearest music beat. Extra kinematic beats lower the score.

See ``docs/metrics.md`` for the definitions and conventions.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from melodance.evaluate.metrics import _check_fps, _check_joints

DEFAULT_SIGMA_S = 0.05
"""BAS tolerance, seconds (3 frames at 60 fps, as in Bailando and AIST++)."""

DEFAULT_SMOOTH_S = 5.0 / 60.0
"""Gaussian sigma for the joint-speed curve, seconds (5 frames at 60 fps)."""


def music_beat_times(
    y: np.ndarray,
    sr: float,
    hop_length: int = 512,
    start_bpm: float = 120.0,
    tightness: float = 100.0,
) -> np.ndarray:
    """Beat times of a song, librosa's dynamic-programming tracker on the onset envelope.

    Args:
        y: ``[samples]`` mono audio (``[channels, samples]`` is mixed down).
        sr: sample rate, Hz.
        hop_length: hop of the onset envelope, samples; the beat times are
            quantised to ``hop_length / sr`` seconds.
        start_bpm, tightness: passed to :func:`librosa.beat.beat_track`.

    Returns:
        ``[n_beats]`` beat times in seconds from the start of ``y``, increasing.
        Empty for silence.
    """
    import librosa  # slow import, only needed here

    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = librosa.to_mono(y)
    if y.ndim != 1:
        raise ValueError(f"audio must be [samples] or [channels, samples], got shape {y.shape}")
    if sr <= 0:
        raise ValueError(f"sample rate must be positive, got {sr}")
    env = librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop_length)
    _, beats = librosa.beat.beat_track(
        onset_envelope=env,
        sr=sr,
        hop_length=hop_length,
        start_bpm=start_bpm,
        tightness=tightness,
        units="time",
    )
    return np.asarray(beats, dtype=np.float64)


def beats_in_span(beat_times_s: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """Beats inside ``[start_s, end_s)``, re-timed so that ``start_s`` is 0.

    Use it to bring song beats onto the dance's clock: a dance covering the
    song from ``start_s`` to ``end_s`` has its frame 0 at ``start_s``.

    Returns:
        ``[n]`` times in seconds relative to ``start_s``.
    """
    t = np.asarray(beat_times_s, dtype=np.float64).ravel()
    return t[(t >= start_s) & (t < end_s)] - start_s


def mean_joint_speed(
    joints_world: np.ndarray, fps: float, smooth_s: float = DEFAULT_SMOOTH_S
) -> np.ndarray:
    """Mean joint speed per frame, smoothed with a Gaussian whose sigma is in seconds.

    Velocities are central differences (one-sided at the two ends), so sample
    ``t`` belongs to time ``t / fps``: no half-frame lag at low frame rates.

    Args:
        joints_world: ``[T, J, 3]`` joint positions, cm (any fixed offset is fine).
        fps: frames per second.
        smooth_s: Gaussian sigma, seconds; 0 disables smoothing.

    Returns:
        ``[T]`` mean speed over joints, cm/s.
    """
    x = _check_joints(joints_world, min_frames=2)
    _check_fps(fps)
    if smooth_s < 0:
        raise ValueError(f"smooth_s must be >= 0 seconds, got {smooth_s}")
    speed = np.linalg.norm(np.gradient(x, axis=0) * fps, axis=-1).mean(axis=1)
    if smooth_s > 0:
        speed = gaussian_filter1d(speed, sigma=smooth_s * fps, mode="nearest")
    return speed


FACT_ORDER_S = 10.0 / 60.0
"""FACT's ``argrelextrema`` order: 10 frames at 60 fps, in seconds."""


def kinematic_beat_times(
    joints_world: np.ndarray,
    fps: float,
    smooth_s: float = DEFAULT_SMOOTH_S,
    subframe: bool = True,
    method: str = "bailando",
) -> np.ndarray:
    """Kinematic beats: local minima of the smoothed mean joint speed.

    ``method="fact"`` is FACT's detector instead: the joint speed summed over
    joints, no smoothing, and ``scipy.signal.argrelextrema(np.less, order)``
    with ``order`` = 10 frames at 60 fps (:data:`FACT_ORDER_S` seconds, at
    least one frame), no sub-frame refinement. The default (``bailando``) is
    Bailando's: smoothed mean speed, every interior minimum.

    A minimum is a sample lower than its neighbours (a flat bottom counts once,
    at its middle); the first and last frames never count. With ``subframe``
    each minimum is refined by a parabola through it and its two neighbours
    (at most half a frame), so coarse frame rates do not quantise the beat
    times by up to half a frame (20 ms at 25 fps, against a 50 ms sigma).

    Args:
        joints_world: ``[T, J, 3]`` joint positions, cm.
        fps: frames per second.
        smooth_s: Gaussian sigma of the speed smoothing, seconds.
        subframe: refine minima between frames.

    Returns:
        ``[n_beats]`` times in seconds from frame 0, increasing; empty when the
        speed has no interior minimum (e.g. a motionless or uniformly moving body).
    """
    if method == "fact":
        from scipy.signal import argrelextrema

        speed = mean_joint_speed(joints_world, fps, 0.0)
        order = max(1, int(round(FACT_ORDER_S * fps)))
        return argrelextrema(speed, np.less, order=order)[0].astype(np.float64) / fps
    if method != "bailando":
        raise ValueError(f"method must be 'bailando' or 'fact', got {method!r}")
    speed = mean_joint_speed(joints_world, fps, smooth_s)
    idx, _ = find_peaks(-speed)
    t = idx.astype(np.float64)
    if subframe and idx.size:
        a, b, c = speed[idx - 1], speed[idx], speed[idx + 1]
        curv = a - 2.0 * b + c
        safe = np.where(curv > 0, curv, 1.0)
        t += np.where(curv > 0, np.clip(0.5 * (a - c) / safe, -0.5, 0.5), 0.0)
    return t / fps


def beat_alignment_score(
    ref_beats_s: np.ndarray, other_beats_s: np.ndarray, sigma_s: float = DEFAULT_SIGMA_S
) -> float:
    """Mean over reference beats of ``exp(-d^2 / (2 sigma^2))``.

    ``d`` is the distance from a reference beat to the nearest beat of the
    other kind. 1 means every reference beat has an other-kind beat at exactly
    the same time; a beat ``d = sigma`` away scores ``exp(-1/2) = 0.61``.

    Empty lists, by definition:

    - no reference beats: ``nan`` (a mean over nothing is undefined; callers
      should drop or report such sequences, not average them in);
    - reference beats but no other beats: ``0.0`` (every reference beat is
      infinitely far from an other-kind beat).

    Both lists must be on the same clock (see :func:`beats_in_span`) and cover
    the same span: beats of one kind past the end of the other are scored as
    unmatched.

    Args:
        ref_beats_s: ``[n]`` times, seconds; the beats averaged over.
        other_beats_s: ``[m]`` times, seconds.
        sigma_s: tolerance, seconds.
    """
    ref = _check_times(ref_beats_s, "ref_beats_s")
    other = np.sort(_check_times(other_beats_s, "other_beats_s"))
    if sigma_s <= 0:
        raise ValueError(f"sigma_s must be positive seconds, got {sigma_s}")
    if ref.size == 0:
        return float("nan")
    if other.size == 0:
        return 0.0
    right = np.clip(np.searchsorted(other, ref), 0, other.size - 1)
    left = np.clip(right - 1, 0, other.size - 1)
    d = np.minimum(np.abs(ref - other[left]), np.abs(ref - other[right]))
    return float(np.mean(np.exp(-(d**2) / (2.0 * sigma_s**2))))


def bas_music(
    music_beats_s: np.ndarray, kinematic_beats_s: np.ndarray, sigma_s: float = DEFAULT_SIGMA_S
) -> float:
    """BAS averaged over music beats (Bailando's convention).

    "Is there a kinematic beat on every music beat?" ``nan`` without music
    beats, 0 with music beats but no kinematic beats.
    """
    return beat_alignment_score(music_beats_s, kinematic_beats_s, sigma_s)


def bas_motion(
    music_beats_s: np.ndarray, kinematic_beats_s: np.ndarray, sigma_s: float = DEFAULT_SIGMA_S
) -> float:
    """BAS averaged over kinematic beats (the AIST++/FACT convention).

    "Does every kinematic beat fall on a music beat?" ``nan`` without
    kinematic beats, 0 with kinematic beats but no music beats.
    """
    return beat_alignment_score(kinematic_beats_s, music_beats_s, sigma_s)


def dance_bas(music_beats_s: np.ndarray, kinematic_beats_s: np.ndarray,
              sigma_s: float = DEFAULT_SIGMA_S) -> tuple[float, float]:
    """``(bas_music, bas_motion)`` of one dance as the field scores it.

    A dance without kinematic beats (frozen, or moving uniformly) scores 0 in
    both directions, as in FACT's evaluation, instead of ``nan`` for
    ``bas_motion``: leaving it out would score a frozen model only where it
    twitches. ``bas_music`` stays ``nan`` for a song without beats.
    """
    kin = _check_times(kinematic_beats_s, "kinematic_beats_s")
    m = bas_music(music_beats_s, kin, sigma_s)
    return m, (bas_motion(music_beats_s, kin, sigma_s) if kin.size else 0.0)


def _check_times(t: np.ndarray, name: str) -> np.ndarray:
    t = np.asarray(t, dtype=np.float64)
    if t.ndim > 1:
        raise ValueError(f"{name} must be a 1-D array of seconds, got shape {t.shape}")
    t = t.ravel()
    if not np.all(np.isfinite(t)):
        raise ValueError(f"{name} holds non-finite times")
    return t
