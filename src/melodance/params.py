"""Reading ``params.yaml`` sections into typed configs.

Each pipeline step owns one top-level section of ``params.yaml`` and a
pydantic model for it (in its own package). Unknown keys are an error, so a
typo in ``params.yaml`` or in ``dvc exp run -S`` is caught at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from melodance.errors import InputError

T = TypeVar("T", bound=BaseModel)

PARAMS_FILE = "params.yaml"

# A value of ``auto`` means "not chosen by the user": the train stage fills it
# from the tune stage's best trial (for keys the study searches, with
# ``train.use_tuned``), every other reader takes the config's built-in default.
# An explicit value in params.yaml or ``dvc exp run -S`` always wins.
AUTO = "auto"


class Section(BaseModel):
    """Base for a ``params.yaml`` section: strict keys, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def repo_root() -> Path:
    """The project root: ``DVC_ROOT`` inside a DVC stage, else the nearest
    folder above the working directory holding ``params.yaml`` or ``.dvc``,
    else the working directory."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    cwd = Path.cwd().resolve()
    for p in (cwd, *cwd.parents):
        if (p / PARAMS_FILE).is_file() or (p / ".dvc").is_dir():
            return p
    return cwd


def load_params(path: str | Path | None = None) -> dict:
    """The whole ``params.yaml`` as a dict (empty when the file is absent).

    The default is ``params.yaml`` in the working directory, which is where
    DVC runs stages (also inside ``dvc exp run --temp`` copies).
    """
    path = Path(path) if path is not None else Path(PARAMS_FILE)
    if not path.is_file():
        return {}
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise InputError(f"{path}: malformed YAML ({e})") from e
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a mapping of sections")
    return data


def load_section(name: str, model: type[T], path: str | Path | None = None,
                 overrides: dict | None = None) -> T:
    """Validate section ``name`` of ``params.yaml`` into ``model``.

    Missing sections or keys, and keys set to ``auto``, take the model's defaults.
    """
    raw = {k: v for k, v in (load_params(path).get(name) or {}).items() if v != AUTO}
    raw.update(overrides or {})
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        where = path or PARAMS_FILE
        raise InputError(f"{where}: section {name!r} is invalid:\n{e}") from e


def auto_keys(path: str | Path | None = None, sections: tuple[str, ...] = ("model", "train", "features")
              ) -> set[str]:
    """The ``section.key`` names set to ``auto`` in ``params.yaml``."""
    params = load_params(path)
    return {f"{s}.{k}" for s in sections for k, v in (params.get(s) or {}).items() if v == AUTO}
