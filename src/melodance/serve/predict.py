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

Response: ``joints`` ``[frames, 23, 3]`` root-relative cm, ``root`` ``[frames, 3]``
world cm, ``fps`` (25), ``frames``.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile

import numpy as np

MAX_DURATION_S = 600.0
"""Longest song (or span) served, seconds: 10 minutes = 15000 frames."""
MAX_AUDIO_BYTES = 50 * 1024 * 1024


class RequestError(ValueError):
    """The request is malformed; the message says what is wrong (HTTP 400)."""


def _scalar(x):
    a = np.asarray(x)
    if a.size != 1:
        raise RequestError(f"expected a single value, got shape {list(a.shape)}")
    return a.reshape(()).item()


def _matrix(x, name: str, cols: int | None) -> np.ndarray:
    try:
        a = np.asarray(x, dtype=np.float32)
    except (ValueError, TypeError) as e:
        raise RequestError(f"{name}: not a numeric [frames, features] array ({e})") from e
    if a.ndim != 2:
        raise RequestError(f"{name}: expected [frames, features], got shape {list(a.shape)}")
    if a.shape[0] == 0:
        raise RequestError(f"{name}: empty (0 frames)")
    if cols is not None and a.shape[1] != cols:
        raise RequestError(f"{name}: expected {cols} values per frame, got {a.shape[1]}")
    if not np.isfinite(a).all():
        raise RequestError(f"{name}: holds NaN or infinite values")
    return a


def normalise_request(req) -> dict:
    """Accept a dict, or a one-row pandas DataFrame (``dataframe_split`` requests)."""
    if hasattr(req, "to_dict") and hasattr(req, "columns"):
        if len(req) != 1:
            raise RequestError(f"send one song per request, got {len(req)} rows")
        req = {c: req[c].iloc[0] for c in req.columns}
    if not isinstance(req, dict):
        raise RequestError(f"expected a JSON object of named inputs, got {type(req).__name__}")
    return req


def predict(bundle, req) -> dict:
    """Generate a dance for one request (see the module docstring)."""
    from melodance.features.config import FeaturesConfig

    req = normalise_request(req)
    cfg = FeaturesConfig.model_validate(bundle.features_meta["config"])
    fps = cfg.fps
    max_frames = int(MAX_DURATION_S * fps)
    if "audio_base64" in req:
        music, temporal = _features_from_audio(req, cfg, max_frames)
    elif "music" in req:
        music = _matrix(req["music"], "music", bundle.model.music_dim)
        if "temporal" not in req:
            raise RequestError("music features need their temporal indexes: add 'temporal' "
                               "[frames, 3] (beat phase, beat flag, frame index)")
        temporal = _matrix(req["temporal"], "temporal", bundle.model.temporal_dim)
        if len(temporal) != len(music):
            raise RequestError(f"temporal has {len(temporal)} frames, music has {len(music)}")
    else:
        raise RequestError("send either 'audio_base64' (a song) or 'music' + 'temporal' "
                           f"(its features); got fields {sorted(req)}")
    if len(music) > max_frames:
        raise RequestError(f"too long: {len(music)} frames ({len(music) / fps:.0f} s); "
                           f"the limit is {MAX_DURATION_S:.0f} s")
    root_start = None
    if req.get("root_start") is not None:
        root_start = np.asarray(req["root_start"], dtype=np.float32).reshape(-1)
        if root_start.shape != (3,) or not np.isfinite(root_start).all():
            raise RequestError("root_start: expected 3 finite numbers (x, y, z in cm)")
    joints, root = bundle.generate(music, temporal, root_start)
    return {"joints": joints.astype(np.float32), "root": root.astype(np.float32),
            "fps": float(fps), "frames": int(len(joints))}


def _features_from_audio(req: dict, cfg, max_frames: int):
    from melodance.features.music import song_features

    raw = req["audio_base64"]
    raw = _scalar(raw) if not isinstance(raw, (str, bytes)) else raw
    if not isinstance(raw, (str, bytes)) or not raw:
        raise RequestError("audio_base64: expected a non-empty base64 string")
    if len(raw) > MAX_AUDIO_BYTES * 4 // 3 + 4:
        raise RequestError(f"audio_base64: larger than {MAX_AUDIO_BYTES // 2**20} MiB")
    try:
        data = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as e:
        raise RequestError(f"audio_base64: not valid base64 ({e})") from e
    start_s = float(_scalar(req.get("start_s", 0.0)))
    duration = req.get("duration_s")
    n_frames = None
    if duration is not None:
        duration = float(_scalar(duration))
        if not (0 < duration <= MAX_DURATION_S):
            raise RequestError(f"duration_s must be in (0, {MAX_DURATION_S:.0f}], got {duration}")
        n_frames = int(round(duration * cfg.fps))
    if start_s < 0:
        raise RequestError(f"start_s must be >= 0, got {start_s}")
    fd, path = tempfile.mkstemp(suffix=_sniff_suffix(data))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            feats = song_features(path, start_s, n_frames, cfg)
        except (ValueError, RuntimeError, OSError) as e:
            raise RequestError(f"audio_base64: not a decodable song "
                               f"({str(e).replace(path, 'audio')})") from e
    finally:
        os.unlink(path)
    if len(feats["music"]) > max_frames:
        raise RequestError(f"too long: {len(feats['music']) / cfg.fps:.0f} s of song; the limit "
                           f"is {MAX_DURATION_S:.0f} s (send start_s and duration_s)")
    if len(feats["music"]) < cfg.fps:
        raise RequestError("song shorter than one second")
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
