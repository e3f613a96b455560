"""From a request (a song, or its features) to a dance, with the bundle's own settings.

Request fields (a JSON object under ``"inputs"`` at ``/invocations``):

- ``audio_base64``: the song's bytes (mp3, wav, flac or ogg), base64; optional
  ``start_s`` (default 0) and ``duration_s`` (default: to the end of the song).
  Features are extracted with the same code and settings as in training.
- or ``music``: precomputed raw (unnormalised) music features ``[frames, D]``
  as written by the features stage / :func:`melodance.features.music.song_features`,
  **with** ``temporal`` ``[frames, 3]``: the raw temporal indexes (beat phase,
  beat flag, frame index) of the same frames. The model normalises both itself.
- optional ``root_start``: ``[3]`` world position of the root at frame 0 (cm).
- optional ``seed``: an integer in ``[0, MAX_SEED]`` that picks one of the dances a
  generative model can give (the same seed, the same dance; default 0). Deterministic
  models give their one dance for every seed.

Limits (each a :class:`RequestError`, HTTP 400, naming the field): a song of
at most MAX_AUDIO_BYTES that decodes completely (a truncated file is refused,
:func:`melodance.features.audio.check_song`) and lasts at most MAX_SONG_S;
``0 <= start_s`` before the song's end; ``0 < duration_s <= MAX_DURATION_S``
(a span past the song's end is cut there); at most MAX_DURATION_S of frames;
feature values finite and within +-MAX_ABS_FEATURE; ``root_start`` within
+-MAX_ABS_ROOT_CM; no other fields. The answer holds only finite numbers.

Response: ``joints`` ``[frames, 23, 3]`` root-relative cm, ``root`` ``[frames, 3]``
world cm, ``fps`` (25), ``frames``.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
import re
import tempfile

import numpy as np

from melodance.errors import InputError
from melodance.models.families import check_seed

MAX_DURATION_S = 600.0
"""Longest song (or span) served, seconds: 10 minutes = 15000 frames."""
MAX_SONG_S = 3600.0
"""Longest song accepted (its header), seconds; ``start_s`` lies within it."""
MAX_AUDIO_BYTES = 32 * 1024 * 1024
"""Largest song file, bytes (the base64 text is 4/3 of it)."""
MAX_ABS_FEATURE = 1e4
"""Largest magnitude of a raw music or temporal feature value. The features
stage writes values within a few hundred (dB, MFCCs, frame counters); a
larger value is no song's, and one near float32's limit overflows the
normalisation into NaN."""
MAX_ABS_ROOT_CM = 1e5
"""Largest root start coordinate, cm (1 km)."""


class RequestError(InputError):
    """The request is malformed; the message says what is wrong (HTTP 400).

    Messages name the field and the problem and never quote the request's
    own text (at most a number or a shape), so an answer stays short.
    """


def _scalar(x, name: str):
    a = np.asarray(x) if not isinstance(x, (str, bytes)) else None
    if a is None:
        return x
    if a.size != 1:
        raise RequestError(f"{name}: expected a single value, got shape {list(a.shape)}")
    return a.reshape(()).item()


def _number(x, name: str, lo: float, hi: float, *, lo_open: bool = False) -> float:
    """A finite number in [lo, hi] (or (lo, hi]); a RequestError naming ``name`` otherwise."""
    v = _scalar(x, name)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise RequestError(f"{name}: expected a number, got {type(v).__name__}")
    v = float(v)
    if not math.isfinite(v):
        raise RequestError(f"{name}: must be a finite number")
    if v < lo or (lo_open and v == lo) or v > hi:
        left = "(" if lo_open else "["
        raise RequestError(f"{name}: must be in {left}{lo:g}, {hi:g}], got {v:.6g}")
    return v


def _matrix(x, name: str, cols: int | None, max_abs: float = MAX_ABS_FEATURE) -> np.ndarray:
    if isinstance(x, (str, bytes, dict)):
        raise RequestError(f"{name}: expected a [frames, features] array of numbers, "
                           f"got {type(x).__name__}")
    a = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if a.dtype.kind not in "biuf":
        # Strings, objects, booleans: not numbers (never echo them back).
        raise RequestError(f"{name}: expected numbers, got {a.dtype.kind!r}-kind values"
                           if a.dtype.kind != "U" else f"{name}: expected numbers, got text")
    a = a.astype(np.float32) if a.dtype.kind == "f" and a.dtype.itemsize <= 4 else a
    if a.ndim != 2:
        raise RequestError(f"{name}: expected [frames, features], got shape {list(a.shape)}")
    if a.shape[0] == 0:
        raise RequestError(f"{name}: empty (0 frames)")
    if cols is not None and a.shape[1] != cols:
        raise RequestError(f"{name}: expected {cols} values per frame, got {a.shape[1]}")
    with np.errstate(invalid="ignore", over="ignore"):
        finite = np.isfinite(a).all()
        if not finite:
            raise RequestError(f"{name}: holds NaN or infinite values")
        # Checked in float64, before the float32 cast can overflow to inf.
        peak = float(np.abs(a.astype(np.float64)).max())
    if peak > max_abs:
        raise RequestError(f"{name}: values must lie within +-{max_abs:g}, got one of "
                           f"magnitude {peak:.3g}")
    return a.astype(np.float32)


def normalise_request(req) -> dict:
    """Accept a dict, or a one-row pandas DataFrame (``dataframe_split`` requests)."""
    if hasattr(req, "to_dict") and hasattr(req, "columns"):
        if len(req) != 1:
            raise RequestError(f"send one song per request, got {len(req)} rows")
        req = {c: req[c].iloc[0] for c in req.columns}
    if not isinstance(req, dict):
        raise RequestError(f"expected a JSON object of named inputs, got {type(req).__name__}")
    return req


FIELDS = ("audio_base64", "start_s", "duration_s", "music", "temporal", "root_start", "seed")


def _short(name) -> str:
    """A field name as messages show it: only a plain short name is quoted back."""
    text = str(name)
    return repr(text) if re.fullmatch(r"[A-Za-z0-9_.-]{1,24}", text) else "(a long or odd name)"


def check_fields(req: dict) -> None:
    """The checks of :func:`predict` that need no model: field names, the numeric scalars,
    ``root_start`` and ``seed``. The scoring server's guard runs them before MLflow's schema
    enforcement, whose messages neither name every field nor refuse unknown ones."""
    unknown = [k for k in req if k not in FIELDS]
    if unknown:
        raise RequestError(f"unknown field(s) {', '.join(_short(k) for k in unknown[:5])}"
                           f"{' ...' if len(unknown) > 5 else ''}; the fields are "
                           f"{', '.join(FIELDS)}")
    if req.get("root_start") is not None:
        _root_start(req["root_start"])
    if req.get("seed") is not None:
        parse_seed(req["seed"], "seed")
    if req.get("start_s") is not None:
        _number(req["start_s"], "start_s", 0.0, MAX_SONG_S)
    if req.get("duration_s") is not None:
        _number(req["duration_s"], "duration_s", 0.0, MAX_DURATION_S, lo_open=True)


def predict(bundle, req) -> dict:
    """Generate a dance for one request (see the module docstring).

    Every numeric field is range-checked and the answer holds only finite
    numbers: a request that would make the model produce NaN or infinity is
    refused (:class:`RequestError`) rather than answered with invalid JSON.
    """

    req = normalise_request(req)
    check_fields(req)
    # Cheap checks first: a bad root_start is refused before any audio is decoded.
    root_start = None if req.get("root_start") is None else _root_start(req["root_start"])
    seed = None if req.get("seed") is None else parse_seed(req["seed"], "seed")
    cfg = bundle.feature_settings
    fps = cfg.fps
    max_frames = int(MAX_DURATION_S * fps)
    if "audio_base64" in req and "music" in req:
        raise RequestError("send either 'audio_base64' or 'music' + 'temporal', not both")
    if "audio_base64" in req:
        if "temporal" in req:
            raise RequestError("'temporal' goes with 'music', not with 'audio_base64'")
        music, temporal = _features_from_audio(req, cfg, max_frames)
    elif "music" in req:
        for k in ("start_s", "duration_s"):
            if k in req:
                raise RequestError(f"{k!r} goes with 'audio_base64'; send the wanted frames "
                                   "of 'music' instead")
        music = _matrix(req["music"], "music", bundle.model.music_dim)
        if "temporal" not in req:
            raise RequestError("music features need their temporal indexes: add 'temporal' "
                               "[frames, 3] (beat phase, beat flag, frame index)")
        temporal = _matrix(req["temporal"], "temporal", bundle.model.temporal_dim)
        if len(temporal) != len(music):
            raise RequestError(f"temporal has {len(temporal)} frames, music has {len(music)}")
    else:
        raise RequestError("send either 'audio_base64' (a song) or 'music' + 'temporal' "
                           "(its features)")
    if len(music) > max_frames:
        raise RequestError(f"too long: {len(music)} frames ({len(music) / fps:.0f} s); "
                           f"the limit is {MAX_DURATION_S:.0f} s")
    joints, root = bundle.generate(music, temporal, root_start, seed=seed)
    joints, root = joints.astype(np.float32), root.astype(np.float32)
    if not (np.isfinite(joints).all() and np.isfinite(root).all()):
        # Never answer NaN (invalid JSON): features far outside the training range
        # can overflow the model even when each value passed the range check.
        raise RequestError("the model produced non-finite values for these inputs (features "
                           "far outside the range seen in training?)")
    return {"joints": joints, "root": root, "fps": float(fps), "frames": int(len(joints))}


def parse_seed(x, name: str = "seed") -> int:
    """A sampling seed (:func:`melodance.models.families.check_seed`): an integer in
    [0, MAX_SEED]."""
    try:
        return check_seed(_scalar(x, name), name)
    except ValueError as e:
        raise RequestError(str(e)) from None


def _root_start(x) -> np.ndarray:
    msg = "root_start: expected 3 finite numbers (x, y, z in cm)"
    if isinstance(x, (str, bytes, dict)):
        raise RequestError(msg)
    a = np.asarray(x) if not isinstance(x, np.ndarray) else x
    if a.dtype.kind not in "iuf" or a.size != 3:
        raise RequestError(msg)
    a = a.astype(np.float64).reshape(-1)
    if not np.isfinite(a).all():
        raise RequestError(msg)
    if np.abs(a).max() > MAX_ABS_ROOT_CM:
        raise RequestError(f"root_start: coordinates must lie within +-{MAX_ABS_ROOT_CM:g} cm")
    return a.astype(np.float32)


def _features_from_audio(req: dict, cfg, max_frames: int):
    from melodance.features.audio import AudioError, check_song
    from melodance.features.music import song_features

    raw = req["audio_base64"]
    raw = _scalar(raw, "audio_base64") if not isinstance(raw, (str, bytes)) else raw
    if not isinstance(raw, (str, bytes)) or not raw:
        raise RequestError("audio_base64: expected a non-empty base64 string")
    if len(raw) > MAX_AUDIO_BYTES * 4 // 3 + 4:
        raise RequestError(f"audio_base64: larger than {MAX_AUDIO_BYTES // 2**20} MiB")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("audio_base64: not valid base64 (characters A-Z a-z 0-9 + / "
                           "and = padding only)") from None
    if not data:
        raise RequestError("audio_base64: expected a non-empty base64 string")
    start_s = _number(req.get("start_s", 0.0), "start_s", 0.0, MAX_SONG_S)
    n_frames = None
    if req.get("duration_s") is not None:
        duration = _number(req["duration_s"], "duration_s", 0.0, MAX_DURATION_S, lo_open=True)
        n_frames = max(1, int(round(duration * cfg.fps)))
    fd, path = tempfile.mkstemp(suffix=_sniff_suffix(data))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            song = check_song(path, name="audio_base64", max_s=MAX_SONG_S)
        except AudioError as e:
            # "cannot decode audio (...)" -> "not a decodable song (...)"; truncated stays.
            msg = str(e).replace("cannot decode audio", "not a decodable song")
            raise RequestError(msg.replace(path, "audio_base64")) from None
        if start_s >= song.duration_s:
            raise RequestError(f"start_s: {start_s:.2f} s is past the end of the song "
                               f"({song.duration_s:.2f} s)")
        # A span past the song's end is cut there (as `melodance dance` does), not padded.
        to_end = int(math.floor((song.duration_s - start_s) * cfg.fps + 1e-6))
        n_frames = to_end if n_frames is None else min(n_frames, to_end)
        if n_frames < cfg.fps:
            raise RequestError(f"the span from start_s {start_s:.2f} s to the song's end "
                               f"({song.duration_s:.2f} s) is shorter than one second")
        if n_frames > max_frames:
            raise RequestError(f"too long: {n_frames / cfg.fps:.0f} s of song; the limit is "
                               f"{MAX_DURATION_S:.0f} s (send start_s and duration_s)")
        try:
            feats = song_features(path, start_s, n_frames, cfg)
        except (ValueError, RuntimeError, OSError) as e:
            raise RequestError(f"audio_base64: not a decodable song "
                               f"({str(e).replace(path, 'audio')[:200]})") from None
    finally:
        os.unlink(path)
    return feats["music"], feats["temporal"]


def _sniff_suffix(data: bytes) -> str:
    """A file suffix from the first bytes, so the decoder picks the right format."""
    if data[:4] == b"RIFF":
        return ".wav"
    if data[:4] == b"fLaC":
        return ".flac"
    if data[:4] == b"OggS":
        return ".ogg"
    return ".mp3"
