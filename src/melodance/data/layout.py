"""Reader for the Music-to-Dance layout.

One folder per sequence, ``DANCE_<style>_<n>/``, holding:

- ``audio.mp3`` (or ``.wav``, ``.flac``, ``.ogg``): the song;
- ``config.json``: ``{"start_position": S, "end_position": E}``, the dance
  covers the song from frame S to frame E at 25 fps;
- ``skeletons.json``: ``{"length": N, "center": [N][3], "skeletons": [N][23][3]}``,
  root trajectory in world coordinates and 23 joints relative to the root, in
  centimetres, y up.

Every problem raises :class:`LayoutError` naming the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from melodance import FPS
from melodance.data.skeleton import N_COORDS, N_JOINTS
from melodance.errors import InputError

AUDIO_NAMES = ("audio.mp3", "audio.wav", "audio.flac", "audio.ogg")
SEQUENCE_DIR_RE = re.compile(r"^DANCE_(?P<style>[A-Za-z]+)_(?P<n>\d+)$")
STYLE_NAMES = {"C": "cha-cha", "R": "rumba", "T": "tango", "W": "waltz"}


class LayoutError(InputError):
    """A path is not in the Music-to-Dance layout, or a file in it is broken."""


@dataclass(frozen=True)
class Sequence:
    """One dance with its song.

    Attributes:
        name: folder name, e.g. ``DANCE_W_1``.
        style: style letter (``C``, ``R``, ``T``, ``W``).
        audio_path: the song file.
        start_frame, end_frame: dance span in song frames at ``fps``.
        joints: ``[frames, 23, 3]`` joint positions relative to the root, cm.
        root: ``[frames, 3]`` root trajectory in world coordinates, cm.
        fps: frames per second of both the span and the motion.
    """

    name: str
    style: str
    audio_path: Path
    start_frame: int
    end_frame: int
    joints: np.ndarray = field(repr=False)
    root: np.ndarray = field(repr=False)
    fps: float = FPS

    @property
    def n_frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def span_frames(self) -> int:
        """Length of the claimed dance span, ``end - start``, in frames."""
        return self.end_frame - self.start_frame

    @property
    def start_s(self) -> float:
        return self.start_frame / self.fps

    @property
    def end_s(self) -> float:
        return self.end_frame / self.fps

    @property
    def duration_s(self) -> float:
        """Duration of the motion, seconds."""
        return self.n_frames / self.fps

    @property
    def world_joints(self) -> np.ndarray:
        """``[frames, 23, 3]`` joint positions in world coordinates, cm."""
        return self.joints + self.root[:, None, :]


def parse_sequence_name(name: str) -> str:
    """Return the style letter of a ``DANCE_<style>_<n>`` folder name."""
    m = SEQUENCE_DIR_RE.match(name)
    if not m:
        raise LayoutError(f"{name}: not a sequence folder name (expected DANCE_<style>_<n>)")
    return m.group("style")


def find_audio(seq_dir: Path) -> Path:
    for name in AUDIO_NAMES:
        p = seq_dir / name
        if p.is_file():
            return p
    raise LayoutError(f"{seq_dir}: no audio file (expected one of {', '.join(AUDIO_NAMES)})")


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise LayoutError(f"{path}: missing")
    try:
        with open(path, "rb") as f:
            obj = json.load(f)
    except json.JSONDecodeError as e:
        raise LayoutError(f"{path}: malformed JSON ({e})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise LayoutError(f"{path}: unreadable ({e})") from e
    if not isinstance(obj, dict):
        raise LayoutError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


def read_config(path: Path) -> tuple[int, int]:
    """Return ``(start_position, end_position)`` in frames at 25 fps."""
    cfg = read_json(path)
    out = []
    for key in ("start_position", "end_position"):
        if key not in cfg:
            raise LayoutError(f"{path}: missing key {key!r}")
        v = cfg[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v):
            raise LayoutError(f"{path}: {key} must be an integer frame number, got {v!r}")
        out.append(int(v))
    start, end = out
    if start < 0:
        raise LayoutError(f"{path}: start_position {start} is negative")
    if end <= start:
        raise LayoutError(f"{path}: end_position {end} is not after start_position {start}")
    return start, end


def read_skeletons(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(joints [N,23,3], root [N,3])`` as float32 arrays, cm."""
    d = read_json(path)
    for key in ("length", "center", "skeletons"):
        if key not in d:
            raise LayoutError(f"{path}: missing key {key!r}")
    try:
        root = np.asarray(d["center"], dtype=np.float32)
        joints = np.asarray(d["skeletons"], dtype=np.float32)
    except (ValueError, TypeError) as e:
        raise LayoutError(f"{path}: center/skeletons are not rectangular numeric arrays ({e})") from e
    length = d["length"]
    if joints.ndim != 3 or joints.shape[1:] != (N_JOINTS, N_COORDS):
        raise LayoutError(
            f"{path}: skeletons has shape {joints.shape}, expected [N, {N_JOINTS}, {N_COORDS}]"
        )
    if root.ndim != 2 or root.shape[1] != N_COORDS:
        raise LayoutError(f"{path}: center has shape {root.shape}, expected [N, 3]")
    if not (joints.shape[0] == root.shape[0] == length):
        raise LayoutError(
            f"{path}: length {length}, but {joints.shape[0]} skeleton frames "
            f"and {root.shape[0]} center frames"
        )
    if joints.shape[0] == 0:
        raise LayoutError(f"{path}: no frames")
    bad = ~np.isfinite(joints).all(axis=(1, 2)) | ~np.isfinite(root).all(axis=1)
    if bad.any():
        frames = np.flatnonzero(bad)
        raise LayoutError(
            f"{path}: {bad.sum()} frames hold NaN or infinite values (first at frame {frames[0]})"
        )
    return joints, root


def read_sequence(seq_dir: str | Path) -> Sequence:
    """Read one ``DANCE_<style>_<n>`` folder."""
    seq_dir = Path(seq_dir)
    if not seq_dir.is_dir():
        raise LayoutError(f"{seq_dir}: not a folder")
    style = parse_sequence_name(seq_dir.name)
    audio = find_audio(seq_dir)
    start, end = read_config(seq_dir / "config.json")
    joints, root = read_skeletons(seq_dir / "skeletons.json")
    return Sequence(seq_dir.name, style, audio, start, end, joints, root)


def sequence_dirs(path: str | Path) -> list[Path]:
    """The sequence folders under a dataset root, sorted by name.

    Raises :class:`LayoutError` when ``path`` holds none: it is then not the
    Music-to-Dance layout.
    """
    path = Path(path)
    if not path.is_dir():
        raise LayoutError(f"{path}: not a folder")
    dirs = []
    for p in path.iterdir():
        if not SEQUENCE_DIR_RE.match(p.name):
            continue
        if p.is_symlink():
            # A broken link is a sequence gone missing, not a file to skip silently.
            try:
                target = p.resolve(strict=True)
            except FileNotFoundError:
                raise LayoutError(f"{p}: symbolic link to {os.readlink(p)}, which does not "
                                  "exist") from None
            except (RuntimeError, OSError) as e:  # ELOOP: a link to itself, or a cycle
                raise LayoutError(f"{p}: symbolic link that loops ({e.__class__.__name__}); "
                                  "it leads to no folder") from None
            if not target.is_dir():
                raise LayoutError(f"{p}: symbolic link to {target}, which is not a folder")
        if p.is_dir():
            dirs.append(p)
    dirs.sort()
    if not dirs:
        raise LayoutError(
            f"{path}: not the Music-to-Dance layout (no DANCE_<style>_<n>/ folders inside)"
        )
    return dirs


def read_corpus(path: str | Path, names: list[str] | None = None) -> list[Sequence]:
    """Read every sequence (or only ``names``) under a dataset root."""
    dirs = sequence_dirs(path)
    if names is not None:
        wanted = set(names)
        dirs = [d for d in dirs if d.name in wanted]
    return [read_sequence(d) for d in dirs]
