"""The command line's shared options and the pipeline's output folders, each in one place.

Standard library only: ``melodance --help`` imports every ``commands`` module,
and those import this. :data:`OUTPUTS` are the folders dvc.yaml's stages write;
each stage command's ``--out`` defaults to its entry (tests/test_architecture.py
checks that dvc.yaml and these defaults agree).
"""

from __future__ import annotations

import argparse

OUTPUTS = {
    "validate": "outputs/validate",
    "features": "outputs/features",
    "tune": "outputs/tune",
    "train": "outputs/train",
    "evaluate": "outputs/evaluate",
    "render": "outputs/render",
    "register": "outputs/register",
}
MODEL = f"{OUTPUTS['train']}/model.pt"
"""The train stage's model bundle."""
TUNED = f"{OUTPUTS['tune']}/best_params.json"
"""The tune stage's best parameters."""


def add_features(p: argparse.ArgumentParser) -> None:
    p.add_argument("--features", default=OUTPUTS["features"], help="feature stage output folder")


def add_out(p: argparse.ArgumentParser, stage: str, help: str = "output folder") -> None:
    p.add_argument("--out", default=OUTPUTS[stage], help=help)


def add_params(p: argparse.ArgumentParser, *sections: str, note: str = "") -> None:
    """``--params`` (default params.yaml), its help naming the sections the command reads."""
    what = f"section{'s' if len(sections) > 1 else ''} {', '.join(sections)}" if sections else ""
    p.add_argument("--params", default="params.yaml",
                   help=f"params file ({what}{'; ' + note if note else ''})" if what else "params file")


def add_no_mlflow(p: argparse.ArgumentParser, help: str = "do not log to MLflow") -> None:
    p.add_argument("--no-mlflow", action="store_true", help=help)


def add_no_progress(p: argparse.ArgumentParser, help: str = "no progress bars") -> None:
    p.add_argument("--no-progress", action="store_true", help=help)
