"""Import a real Music-to-Dance dataset into the repository's ``data/``.

``import_corpus`` copies the layout files of every ``DANCE_<style>_<n>/``
folder (``config.json``, ``skeletons.json`` and the audio file) into
``data/`` and records the result with ``dvc add data``. It refuses, changing
nothing, when the source is not the layout or when ``data/`` holds work that
DVC does not know about (no ``data.dvc``, or ``data/`` differs from it).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from melodance.data.layout import LayoutError, find_audio, read_sequence, sequence_dirs
from melodance.errors import InputError, ToolError
from melodance.io import atomic_dir

DATA_DIR = "data"


class DvcError(ToolError):
    """A DVC command failed."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def run_dvc(repo: Path, *args: str) -> str:
    """Run ``dvc ARGS`` in ``repo`` with this interpreter's DVC; return stdout.

    Raises :class:`DvcError` with DVC's own message when it fails.
    """
    cmd = [sys.executable, "-m", "dvc", *args]
    proc = subprocess.run(cmd, cwd=repo, capture_output=True, text=True)
    if proc.returncode != 0:
        msg = (proc.stderr or proc.stdout).strip()
        raise DvcError(f"`dvc {' '.join(args)}` failed in {repo} (exit {proc.returncode}): {msg}")
    return proc.stdout


def check_layout(src: str | Path) -> list[Path]:
    """The sequence folders of ``src``, each checked to read as a sequence.

    Raises :class:`LayoutError` naming the path and the problem.
    """
    src = Path(src)
    dirs = sequence_dirs(src)
    for d in dirs:
        read_sequence(d)  # config.json, skeletons.json and an audio file, all readable
    return dirs


def uncommitted_data_changes(repo: str | Path) -> list[str]:
    """Why ``repo/data`` may not be overwritten; empty when it is safe.

    Safe means: ``data/`` is absent, or ``data.dvc`` exists and ``data/``
    matches it (``dvc data status`` reports no uncommitted change under it).
    """
    repo = Path(repo)
    data = repo / DATA_DIR
    if not data.exists():
        return []
    if not (repo / f"{DATA_DIR}.dvc").is_file():
        return [f"{data} exists but is not tracked by DVC (no {DATA_DIR}.dvc)"]
    out = run_dvc(repo, "data", "status", "--json", DATA_DIR)
    try:
        status = json.loads(out[out.index("{"):]) if "{" in out else {}
    except json.JSONDecodeError as e:
        raise DvcError(f"`dvc data status --json` in {repo} printed unreadable JSON: {e}") from e
    problems = []
    for kind, paths in (status.get("uncommitted") or {}).items():
        for p in paths:
            if p == DATA_DIR or p.startswith(f"{DATA_DIR}/"):
                problems.append(f"{p} {kind} since the last `dvc add`/`dvc commit`")
    return problems


def import_corpus(src: str | Path, repo: str | Path, *, run_dvc_add: bool = True) -> list[str]:
    """Copy the Music-to-Dance layout at ``src`` into ``repo/data`` and ``dvc add`` it.

    Only the layout files are copied. An existing, clean ``data/`` is replaced
    atomically (the new copy is complete before the old one goes). Returns the
    imported sequence names.

    Raises :class:`LayoutError` when ``src`` is not the layout and
    ``ValueError`` when ``repo`` is not a DVC repository or ``data/`` holds
    changes DVC has not recorded; nothing is changed then.
    """
    src, repo = Path(src).resolve(), Path(repo).resolve()
    data = repo / DATA_DIR
    if not (repo / ".dvc").is_dir():
        raise InputError(f"{repo}: not a DVC repository (no .dvc/; run `dvc init` there first)")
    if src == data or data in src.parents:
        raise InputError(f"{src}: this is the repository's own {DATA_DIR}/ folder")
    dirs = check_layout(src)
    problems = uncommitted_data_changes(repo)
    if problems:
        raise InputError(
            f"{data}: holds changes not committed to DVC, refusing to overwrite them:\n  "
            + "\n  ".join(problems)
            + f"\nRecord them with `dvc add {DATA_DIR}` (or restore with `dvc checkout "
            f"{DATA_DIR}.dvc`), then import again."
        )
    with atomic_dir(data) as tmp:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; data/ is a normal folder
        for d in dirs:
            dst = tmp / d.name
            dst.mkdir()
            for f in (d / "config.json", d / "skeletons.json", find_audio(d)):
                shutil.copyfile(f, dst / f.name)
    if run_dvc_add:
        run_dvc(repo, "add", DATA_DIR)
    return [d.name for d in dirs]


__all__ = ["DvcError", "LayoutError", "check_layout", "import_corpus", "run_dvc",
           "uncommitted_data_changes"]
