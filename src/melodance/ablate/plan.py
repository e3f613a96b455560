"""Which settings each ablation compares, and the budgets.

Every ablation changes one thing against the same baseline (the project's
``params.yaml`` with the budget's overrides), so a setting shared by several
ablations (the baseline itself) is trained once per seed and reused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from melodance.models.config import VARIANTS

# Claims of SEED-NOTES, each tested by one ablation.
CLAIMS = {
    "normalization": "1b: per-feature min-max normalisation gives a faster and steadier falling "
                     "loss (train and validation) than per-dimension; min-max beats z-score",
    "windows": "1c: without overlapping windows the model cannot even fit the training dances",
    "temporal_normalize": "1e: normalised temporal indexes are needed (raw counters swamp the "
                          "other features)",
    "variant": "2: (a) hard to converge; (b) slow; (c) converges fast but overfits; "
               "(d) converges fast, validation falls with training",
}


@dataclass(frozen=True)
class Budget:
    seeds: tuple[int, ...]
    epochs: int
    window: int
    stride: int            # overlapping windows (the no-overlap setting uses stride = window)
    batch_size: int
    hidden_size: int
    patience: int


BUDGETS = {
    # a smoke test of the machinery (tests, CI)
    "tiny": Budget(seeds=(0,), epochs=2, window=60, stride=30, batch_size=16, hidden_size=16,
                   patience=100),
    # finishes in well under 20 minutes on 2 cores with the 43 real sequences
    "small": Budget(seeds=(0, 1), epochs=6, window=120, stride=60, batch_size=16, hidden_size=64,
                    patience=100),
    # what a researcher runs (hours)
    "full": Budget(seeds=(0, 1, 2), epochs=60, window=120, stride=20, batch_size=16,
                   hidden_size=128, patience=15),
}


@dataclass(frozen=True)
class Setting:
    """One point of an ablation: overrides of features.* / model.* keys."""

    ablation: str
    name: str
    overrides: tuple[tuple[str, object], ...] = field(default=())

    def key(self) -> tuple:
        return tuple(sorted(self.overrides))


def settings(budget: Budget) -> list[Setting]:
    """All (ablation, setting) pairs; the first of each ablation is the baseline's value."""
    out = []
    for name in ("per_feature", "per_dim", "zscore"):
        out.append(Setting("normalization", name, (("features.normalize", name),)))
    out.append(Setting("windows", "overlap", (("features.stride", budget.stride),)))
    out.append(Setting("windows", "no_overlap", (("features.stride", budget.window),)))
    out.append(Setting("temporal_normalize", "on", (("features.temporal_normalize", True),)))
    out.append(Setting("temporal_normalize", "off", (("features.temporal_normalize", False),)))
    for letter, variant in zip("abcd", VARIANTS, strict=True):   # the seed's letters
        out.append(Setting("variant", f"{letter}_{variant}", (("model.variant", variant),)))
    return out


BASELINE = {"features.normalize": "per_feature", "features.temporal_normalize": True,
            "model.variant": VARIANTS[-1]}   # d, the seed's model


def full_overrides(setting: Setting, budget: Budget) -> dict:
    """The complete configuration of a setting: baseline, then the setting's change."""
    d = {**BASELINE, "features.stride": budget.stride, **dict(setting.overrides)}
    return d
