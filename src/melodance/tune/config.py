"""The ``tune`` section of params.yaml."""

from __future__ import annotations

from typing import Literal

from pydantic import model_validator

from melodance.errors import InputError
from melodance.params import Section


class Dim(Section):
    """One search dimension: a float/int range (``low``, ``high``, ``log``) or ``choices``."""

    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False         # suggest integers in [low, high]
    choices: list | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.choices is None and (self.low is None or self.high is None):
            raise InputError("a search dimension needs choices, or low and high")
        if self.choices is None and self.low > self.high:
            raise InputError(f"low {self.low} > high {self.high}")
        return self


def default_space() -> dict[str, Dim]:
    return {
        "train.lr": Dim(low=3e-4, high=3e-3, log=True),
        "model.hidden_size": Dim(choices=[64, 128, 256]),
        "model.layers": Dim(choices=[1, 2]),
        "model.code_size": Dim(choices=[16, 32, 64]),
        "model.dropout": Dim(low=0.0, high=0.3),
        "features.window": Dim(choices=[60, 120, 180]),
        "train.recon_weight": Dim(low=0.1, high=1.0),
        "train.batch_size": Dim(choices=[32, 64, 128]),
    }


class TuneConfig(Section):
    n_trials: int = 6             # trials in the study (all workers together)
    epochs: int = 4               # epochs per trial (the budget per trial)
    timeout_s: float | None = None  # stop starting new trials after this many seconds
    seed: int = 0                 # TPE sampler seed (worker k uses seed + k)
    pruner: Literal["median", "successive_halving", "none"] = "median"
    workers: int = 1              # worker processes on this machine
    storage: str = "outputs/optuna/journal.log"  # journal file, or a postgresql:// URL
    study_name: str | None = None  # default: derived from the variant and the search setup
    heartbeat_s: int = 10         # RDB storage: heartbeat interval; stale after 2x + grace
    max_retry: int = 1            # re-run a trial whose worker died, this many times
    space: dict[str, Dim] = {}    # empty: default_space()
    vqgpt_space: dict[str, Dim] = {}  # family vqgpt: its own space (model.vqgpt.*); empty: not tuned
    vqgpt_scale: float = 0.25     # vqgpt trials train vq_epochs/gpt_epochs x this (the budget per trial)

    def search_space(self, family: str = "lstm") -> dict[str, Dim]:
        if family == "vqgpt":
            return dict(self.vqgpt_space)
        return dict(self.space) or default_space()
