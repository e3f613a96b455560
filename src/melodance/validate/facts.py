"""Measure the facts of one sequence folder, never raising on broken input.

:func:`measure_sequence` reads a ``DANCE_<style>_<n>/`` folder and returns a
flat dict of facts (one row of the facts table that the Great Expectations
suite checks). A broken file does not raise: it becomes a fact such as
``skeletons_readable=False``, with a message naming the file and the problem
under ``errors[check]``; facts that depend on it are ``None`` (not measured).

The numeric helpers take arrays and return arrays or floats; no I/O.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from melodance import FPS
from melodance.data.layout import AUDIO_NAMES, SEQUENCE_DIR_RE, LayoutError, read_json
from melodance.data.skeleton import (
    FOOT_JOINTS,
    JOINT_NAMES,
    N_COORDS,
    N_JOINTS,
    RIGID_BONES,
    bone_lengths,
)

HEAD = 0
UP = 1  # y points up in this dataset

# Fact columns by source; all None when their file is missing or unreadable.
SKELETON_FACTS = ("skeletons_readable", "length", "n_frames", "n_root_frames", "n_joints",
                  "n_coords", "n_root_coords", "n_nonfinite")
AUDIO_FACTS = ("audio_readable", "audio_duration_s", "audio_missing_s")
MOTION_FACTS = ("mean_joint_speed_cm_s", "p99_joint_speed_cm_s", "max_joint_speed_cm_s",
                "movement_period_s", "max_bone_cv", "max_bone_cv_bone", "body_height_cm",
                "max_abs_joint_cm", "root_height_min_cm", "root_height_max_cm",
                "max_abs_root_xz_cm", "max_root_step_cm")
ALIGNMENT_FACTS = ("music_tempo_bpm", "movement_period_beats", "onset_lag_s", "onset_motion_r")


# ---------------------------------------------------------------------------
# Numeric helpers (arrays in, arrays out)


def joint_speeds(world_joints: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Speed of every joint between consecutive frames.

    world_joints: [frames, joints, 3] positions in world coordinates, cm.
    Returns [frames - 1, joints] speeds, cm/s.
    """
    return np.linalg.norm(np.diff(world_joints, axis=0), axis=-1) * fps


def joint_accelerations(world_joints: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Magnitude of every joint's acceleration (second differences).

    world_joints: [frames, joints, 3], cm. Returns [frames - 2, joints], cm/s^2.
    """
    return np.linalg.norm(np.diff(world_joints, n=2, axis=0), axis=-1) * fps**2


def movement_period(world_joints: np.ndarray, fps: float = FPS) -> float:
    """Characteristic period of movement, seconds: ``2 pi mean|v| / mean|a|``.

    For a joint moving as ``A sin(2 pi t / T)`` this is exactly ``T``, whatever
    ``A``; a dance squeezed k times in time has a k times shorter period. Unlike
    joint speed it does not depend on how far the joints move. Returns ``nan``
    for a motionless skeleton.

    world_joints: [frames >= 3, joints, 3], cm.
    """
    v = joint_speeds(world_joints, fps).mean()
    a = joint_accelerations(world_joints, fps).mean()
    return float(2 * np.pi * v / a) if a > 0 else float("nan")


def bone_cv(joints: np.ndarray, bones=RIGID_BONES) -> np.ndarray:
    """Coefficient of variation (std / mean) of each bone's length over frames.

    joints: [frames, 23, 3], cm. Returns [len(bones)], dimensionless.
    """
    lengths = bone_lengths(joints, bones)
    mean = lengths.mean(axis=0)
    return np.divide(lengths.std(axis=0), mean, out=np.full_like(mean, np.inf), where=mean > 0)


def body_heights(joints: np.ndarray) -> np.ndarray:
    """Height of the head above the lowest foot point in each frame.

    joints: [frames, 23, 3] relative to the root, cm, y up. Returns [frames], cm.
    """
    return joints[:, HEAD, UP] - joints[:, list(FOOT_JOINTS), UP].min(axis=1)


def root_steps(root: np.ndarray) -> np.ndarray:
    """Distance the root moves between consecutive frames.

    root: [frames, 3], cm. Returns [frames - 1], cm.
    """
    return np.linalg.norm(np.diff(root, axis=0), axis=-1)


def motion_accents(world_joints: np.ndarray, fps: float = FPS) -> np.ndarray:
    """Motion accent envelope: how sharply the mean joint speed drops at each frame.

    Dancers mark beats by stopping or changing direction, i.e. by a drop of
    speed. Frame ``t`` gets ``max(0, s[t-1] - s[t])`` where ``s[t]`` is the mean
    joint speed from frame ``t`` to ``t + 1``; the first and last frame get 0.

    world_joints: [frames, joints, 3], cm. Returns [frames], cm/s.
    """
    s = joint_speeds(world_joints, fps).mean(axis=1)
    out = np.zeros(world_joints.shape[0])
    out[1:-1] = np.maximum(s[:-1] - s[1:], 0.0)
    return out


def best_lag(music: np.ndarray, motion: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Lag (in frames) at which ``motion`` best correlates with ``music``.

    Positive lag: motion accents follow music onsets. Both envelopes are
    sampled at the same frame rate and start at the same instant.

    music, motion: [frames] envelopes (lengths may differ). Returns
    ``(lag, pearson_r)``; ``(0, nan)`` when either envelope is constant.
    """
    n = min(len(music), len(motion))
    best = (0, float("nan"))
    for lag in range(-max_lag, max_lag + 1):
        a = music[max(0, -lag):n - max(0, lag)]
        b = motion[max(0, lag):n - max(0, -lag)]
        if len(a) < 3 or a.std() == 0 or b.std() == 0:
            continue
        r = float(np.corrcoef(a, b)[0, 1])
        if np.isnan(best[1]) or r > best[1]:
            best = (lag, r)
    return best


ONSET_SR = 11025
"""Sample rate for onset detection, Hz: 441 samples per motion frame at 25 fps."""


def music_onsets(y: np.ndarray, sr: int, fps: float = FPS) -> np.ndarray:
    """Onset strength envelope of a mono signal at ``fps`` frames per second.

    The signal is first resampled to :data:`ONSET_SR` (onsets show below
    5.5 kHz; this makes the envelope about 10 times cheaper than at 44.1 kHz).

    y: [samples] audio at ``sr`` Hz. Returns [frames]; frame k is centred at
    ``k / fps`` seconds.
    """
    import librosa
    import soxr

    if sr > ONSET_SR:
        y, sr = soxr.resample(y, sr, ONSET_SR), ONSET_SR
    hop = max(1, round(sr / fps))  # exact for 11.025 kHz and the common rates below it
    return librosa.onset.onset_strength(y=y, sr=sr, hop_length=hop, n_fft=4 * hop)


def music_tempo(onsets: np.ndarray, fps: float = FPS) -> float:
    """Global tempo, beats per minute, from an onset envelope at ``fps``."""
    import librosa

    if len(onsets) < 2 * fps or not onsets.any():
        return float("nan")
    return float(librosa.feature.tempo(onset_envelope=onsets, sr=fps, hop_length=1)[0])


# ---------------------------------------------------------------------------
# Reading without raising


def _measure_config(path: Path, facts: dict, errors: dict) -> None:
    facts.update(config_readable=False, start_frame=None, end_frame=None, span_frames=None)
    try:
        cfg = read_json(path)
    except LayoutError as e:
        errors["config_readable"] = str(e)
        return
    values = []
    for key in ("start_position", "end_position"):
        v = cfg.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
            errors["config_readable"] = (f"{path}: {key} must be an integer frame number, "
                                         f"got {v!r}")
            return
        values.append(int(v))
    start, end = values
    facts.update(config_readable=True, start_frame=start, end_frame=end, span_frames=end - start)


def _measure_skeletons(path: Path, facts: dict, errors: dict):
    """Fill the skeleton facts; return ``(joints, root)`` float64 when usable, else None."""
    facts.update(dict.fromkeys(SKELETON_FACTS), skeletons_readable=False)
    try:
        d = read_json(path)
    except LayoutError as e:
        errors["skeletons_readable"] = str(e)
        return None
    missing = [k for k in ("length", "center", "skeletons") if k not in d]
    if missing:
        errors["skeletons_readable"] = f"{path}: missing key(s) {', '.join(map(repr, missing))}"
        return None
    try:
        joints = np.asarray(d["skeletons"], dtype=np.float64)
        root = np.asarray(d["center"], dtype=np.float64)
    except (ValueError, TypeError) as e:
        errors["skeletons_readable"] = (f"{path}: center/skeletons are not rectangular "
                                        f"numeric arrays ({e})")
        return None
    if joints.ndim != 3 or root.ndim != 2:
        errors["skeletons_readable"] = (f"{path}: skeletons has shape {joints.shape} and center "
                                        f"{root.shape}, expected [N, 23, 3] and [N, 3]")
        return None
    length = d["length"]
    facts.update(
        skeletons_readable=True,
        length=length if isinstance(length, int) and not isinstance(length, bool) else None,
        n_frames=joints.shape[0], n_root_frames=root.shape[0],
        n_joints=joints.shape[1], n_coords=joints.shape[2], n_root_coords=root.shape[1],
        n_nonfinite=int((~np.isfinite(joints)).sum() + (~np.isfinite(root)).sum()),
    )
    if facts["length"] is None:
        facts["skeletons_readable"] = False
        errors["skeletons_readable"] = f"{path}: length must be an integer, got {length!r}"
        return None
    if facts["n_joints"] != N_JOINTS or facts["n_coords"] != N_COORDS:
        errors["joint_count"] = errors["coord_count"] = (
            f"{path}: skeletons has shape {list(joints.shape)}, expected [N, {N_JOINTS}, "
            f"{N_COORDS}]")
    if facts["n_root_coords"] != N_COORDS:
        errors["root_coord_count"] = (f"{path}: center has shape {list(root.shape)}, "
                                      f"expected [N, {N_COORDS}]")
    if facts["n_nonfinite"]:
        bad = ~np.isfinite(joints).reshape(len(joints), -1).all(axis=1)
        where = f" (first at frame {int(np.flatnonzero(bad)[0])})" if bad.any() else ""
        errors["finite_values"] = (f"{path}: {facts['n_nonfinite']} NaN or infinite "
                                   f"values{where}")
    usable = (joints.shape[1:] == (N_JOINTS, N_COORDS) and root.shape[1:] == (N_COORDS,)
              and len(joints) == len(root) >= 3 and facts["n_nonfinite"] == 0)
    return (joints, root) if usable else None


def _measure_audio(path: Path, start_s: float, facts: dict, errors: dict):
    """Fill the audio facts; return ``(mono_from_start, sr)`` or None.

    Decodes from the dance start to the end of the file (the one song reader,
    :func:`melodance.features.audio.decode_song`): the span is needed for the
    onsets, and reading on to the end catches truncated files whose header
    still promises the full duration.
    """
    from melodance.features.audio import decode_song

    facts.update(dict.fromkeys(AUDIO_FACTS), audio_readable=False)
    d = decode_song(path, start_s, keep=True)
    if d.unreadable is not None:
        errors["audio_readable"] = f"{path}: not a decodable audio file ({d.unreadable})"
        return None
    facts.update(audio_readable=True, audio_duration_s=d.header_s, audio_missing_s=d.missing_s)
    if d.incomplete is not None:
        errors["audio_complete"] = f"{path}: {d.incomplete}"
    return d.mono, d.sample_rate


def _motion_facts(joints: np.ndarray, root: np.ndarray, fps: float) -> dict:
    world = joints + root[:, None, :]
    speeds = joint_speeds(world, fps)
    cv = bone_cv(joints)
    worst = int(np.argmax(cv))
    i, j = RIGID_BONES[worst]
    return {
        "mean_joint_speed_cm_s": float(speeds.mean()),
        "p99_joint_speed_cm_s": float(np.percentile(speeds, 99)),
        "max_joint_speed_cm_s": float(speeds.max()),
        "movement_period_s": movement_period(world, fps),
        "max_bone_cv": float(cv[worst]),
        "max_bone_cv_bone": f"{JOINT_NAMES[i]}-{JOINT_NAMES[j]}",
        "body_height_cm": float(np.median(body_heights(joints))),
        "max_abs_joint_cm": float(np.abs(joints).max()),
        "root_height_min_cm": float(root[:, UP].min()),
        "root_height_max_cm": float(root[:, UP].max()),
        "max_abs_root_xz_cm": float(np.abs(root[:, [0, 2]]).max()),
        "max_root_step_cm": float(root_steps(root).max()),
    }


def measure_sequence(seq_dir: str | Path, fps: float = FPS,
                     onset_max_lag_s: float = 0.5) -> dict:
    """All facts of one sequence folder, as a flat dict.

    Keys: ``sequence``, ``style``, the facts (``None`` where not measurable),
    and ``errors``: ``{check name: message naming the file and the problem}``
    for facts that could not be read. Never raises on broken input files.
    """
    seq_dir = Path(seq_dir)
    m = SEQUENCE_DIR_RE.match(seq_dir.name)
    facts: dict = {"sequence": seq_dir.name, "style": m.group("style") if m else None}
    errors: dict[str, str] = {}

    audio = next((seq_dir / n for n in AUDIO_NAMES if (seq_dir / n).is_file()), None)
    missing = [n for n, p in (("audio", audio), ("config.json", seq_dir / "config.json"),
                              ("skeletons.json", seq_dir / "skeletons.json"))
               if p is None or not p.is_file()]
    facts["files_present"] = not missing
    if missing:
        audio_hint = f" ({' or '.join(AUDIO_NAMES)})" if "audio" in missing else ""
        errors["files_present"] = f"{seq_dir}: missing {', '.join(missing)}{audio_hint}"

    if (seq_dir / "config.json").is_file():
        _measure_config(seq_dir / "config.json", facts, errors)
    else:
        facts.update(config_readable=None, start_frame=None, end_frame=None, span_frames=None)
    start, end = facts["start_frame"], facts["end_frame"]
    facts["frame_ratio"] = None

    arrays = None
    if (seq_dir / "skeletons.json").is_file():
        arrays = _measure_skeletons(seq_dir / "skeletons.json", facts, errors)
    else:
        facts.update(dict.fromkeys(SKELETON_FACTS))
    if facts["n_frames"] is not None and (facts["span_frames"] or 0) > 0:
        facts["frame_ratio"] = facts["n_frames"] / facts["span_frames"]

    decoded = None
    if audio is not None:
        decoded = _measure_audio(audio, (start or 0) / fps, facts, errors)
    else:
        facts.update(dict.fromkeys(AUDIO_FACTS))
    facts["audio_margin_s"] = (facts["audio_duration_s"] - end / fps
                               if facts["audio_duration_s"] is not None and end is not None
                               else None)

    facts.update({k: None for k in MOTION_FACTS + ALIGNMENT_FACTS})
    if arrays is not None:
        joints, root = arrays
        facts.update(_motion_facts(joints, root, fps))
        if decoded is not None and start is not None and end is not None and end > start:
            y, sr = decoded
            y = y[:round((end - start) / fps * sr)]  # decoding began at the span start
            if len(y) >= 2 * sr:  # the span lies in the song and holds a few beats
                onsets = music_onsets(y, sr, fps)
                accents = motion_accents(joints + root[:, None, :], fps)
                lag, r = best_lag(onsets, accents, round(onset_max_lag_s * fps))
                tempo = music_tempo(onsets, fps)
                facts.update(music_tempo_bpm=tempo,
                             movement_period_beats=facts["movement_period_s"] * tempo / 60,
                             onset_lag_s=lag / fps, onset_motion_r=r)

    # NaN means "not measured" downstream, like None.
    for k, v in facts.items():
        if isinstance(v, float) and not np.isfinite(v):
            facts[k] = None
    facts["errors"] = errors
    return facts

