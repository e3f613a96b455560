"""Writing a dance's motion: the dataset's skeletons.json layout, a numpy array, or BVH."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from melodance.errors import InputError, MissingInput

MOTION_SUFFIXES = (".json", ".npy", ".bvh")


def skeletons_json(joints: np.ndarray, root: np.ndarray) -> dict:
    """The dataset's ``skeletons.json`` object: ``length``, ``center`` [N][3] and
    ``skeletons`` [N][23][3], centimetres rounded to 1e-4 like the dataset."""
    return {
        "length": int(len(joints)),
        "center": np.round(np.asarray(root, dtype=np.float64), 4).tolist(),
        "skeletons": np.round(np.asarray(joints, dtype=np.float64), 4).tolist(),
    }


def check_motion_path(path: str | Path) -> Path:
    """Fail early (before any work) on a motion output that cannot be written."""
    path = Path(path)
    if path.suffix.lower() not in MOTION_SUFFIXES:
        raise InputError(f"{path}: motion output must end in {', '.join(MOTION_SUFFIXES)}")
    if not path.parent.is_dir():
        raise MissingInput(f"{path.parent}: output folder does not exist")
    return path


def write_motion(path: str | Path, joints: np.ndarray, root: np.ndarray, fps: float) -> list[Path]:
    """Write a motion; returns the files written.

    - ``x.json``: the dataset's skeletons.json layout (root-relative joints and
      the root trajectory), plus ``x.npy`` beside it;
    - ``x.npy``: world joint positions, float32 [frames, 23, 3], cm;
    - ``x.bvh``: BVH (see :mod:`melodance.render.bvh`).
    """
    from melodance import io
    from melodance.render.bvh import write_bvh

    path = check_motion_path(path)
    suffix = path.suffix.lower()
    written = []
    if suffix == ".json":
        io.write_text(path, _compact_json(skeletons_json(joints, root)))
        written.append(path)
        path = path.with_suffix(".npy")
        suffix = ".npy"
    if suffix == ".npy":
        world = (np.asarray(joints) + np.asarray(root)[:, None, :]).astype(np.float32)
        with io.atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, world)
        written.append(path)
    if suffix == ".bvh":
        write_bvh(path, joints, root, fps)
        written.append(path)
    return written


def _compact_json(obj: dict) -> str:
    import json

    return json.dumps(obj, separators=(",", ":")) + "\n"
