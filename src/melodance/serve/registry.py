"""The model registry policy: the ``champion`` alias moves only to a more realistic model.

The gate (params.yaml ``register``, :class:`RegisterConfig`): the validation
split is generated from its music and scored like the evaluate stage
(:func:`melodance.evaluate.scoring.score_rows`, without intervals). The score is
``sum_k weights[k] * metric_k`` (default KID_k + KID_g, lower is better); a
model outside any hard floor (motion-energy ratio, still fraction, bone-length
error) scores ``inf`` and is never promoted, not even as the first champion.
The seed's ``metric_loss`` stays reported in the version's tags but decides
nothing: a standing figure is closer to the ground truth than a real dance
in another phase. Every move of the alias is recorded in the registered
model's ``champion_history`` tag, so ``rollback`` can step back.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from pydantic import Field

from melodance import tracking
from melodance.errors import InputError
from melodance.params import Section

METRIC = "gate_score"
HISTORY_TAG = "champion_history"


class RegisterConfig(Section):
    """The ``register`` section of params.yaml: the champion gate's rule."""

    split: str = "val"
    weights: dict[str, float] = Field(default_factory=lambda: {"kid_k": 1.0, "kid_g": 1.0})
    floors: dict[str, tuple[float | None, float | None]] = Field(default_factory=lambda: {
        "motion_energy_ratio": (0.5, 2.0), "still_fraction": (None, 0.2),
        "bone_error_cm": (None, 5.0)})
    always: bool = False    # every pipeline run becomes a version (not only a new champion)


def gate_scores(fs, bundle, eval_cfg, cfg: RegisterConfig, rows=None, retrieval=None) -> dict:
    """The gate's score of ``bundle`` and of the reference rows on ``cfg.split``.

    Returns ``{"split", "weights", "floors", "scores": {row: {"score", "failed", <metrics>}},
    "prefers_retrieval"}``; ``prefers_retrieval`` says whether the gate ranks the
    retrieval baseline above the model.
    """
    from melodance.evaluate.realism import gate_score
    from melodance.evaluate.scoring import ROWS, score_rows

    res = score_rows(fs, bundle, cfg.split, eval_cfg, intervals=False, rows=rows or ROWS,
                     retrieval=retrieval)
    res.pop("_dances")
    keys = sorted(set(cfg.weights) | set(cfg.floors))
    scores = {}
    for row in rows or ROWS:
        value, failed = gate_score(res[row], cfg.weights, cfg.floors)
        scores[row] = {"score": value, "failed": failed, **{k: res[row][k] for k in keys}}
    out = {"split": cfg.split, "weights": cfg.weights,
           "floors": {k: list(v) for k, v in cfg.floors.items()}, "scores": scores}
    if "retrieval" in scores and "model" in scores:
        out["prefers_retrieval"] = _better(scores["retrieval"]["score"], scores["model"]["score"])
    return out


def _better(a: float, b: float) -> bool:
    """Does score ``a`` beat ``b``? A failed (infinite) score beats nothing."""
    return math.isfinite(a) and a < b


@dataclass
class Registration:
    version: str | None       # None: not registered (not better, and register.always is false)
    promoted: bool
    champion: str
    reason: str


def _history() -> list[str]:
    try:
        return json.loads(tracking.registered_model_tags().get(HISTORY_TAG, "[]"))
    except json.JSONDecodeError:
        return []


def _move(version: str) -> None:
    tracking.set_champion(version)
    hist = _history()
    if not hist or hist[-1] != version:
        hist.append(version)
    tracking.set_registered_model_tag(HISTORY_TAG, json.dumps(hist))


def register(run_id: str, metrics: dict, extra_tags: dict | None = None,
             always: bool = True) -> Registration:
    """Promote the run's model when it beats the champion (or there is none). It becomes a
    registry version when promoted, or always with ``always`` (``register.always``);
    otherwise ``Registration.version`` is None and the registry is left as it was."""
    if METRIC not in metrics:
        raise InputError(f"metrics lack {METRIC!r}: cannot compare with the champion")
    value = float(metrics[METRIC])
    failed = list(metrics.get("gate_failed") or [])
    tags = {f"metric.{k}": v for k, v in metrics.items() if k != "gate_failed"}
    if failed:
        tags["gate_failed"] = "; ".join(failed)
    tags.update({"git_commit": tracking.standard_tags()["melodance.git_commit"],
                 "data_hash": tracking.data_hash() or "unknown", **(extra_tags or {})})
    current = tracking.champion_version()
    if failed or not math.isfinite(value):
        better = False
        reason = f"fails the gate's floors: {'; '.join(failed) or f'{METRIC} is {value}'}"
    elif current is None:
        better, reason = True, "no champion yet"
    else:
        best = float(tracking.model_version_tags(current).get(f"metric.{METRIC}", "inf"))
        better = _better(value, best)
        reason = (f"{METRIC} {value:.4f} < champion v{current}'s {best:.4f}" if better else
                  f"{METRIC} {value:.4f} does not beat champion v{current}'s {best:.4f}")
    if not better and not always:
        return Registration(None, False, current or "none",
                            reason + "; not registered (register.always: false)")
    version = tracking.register_version(run_id, tags)
    if better:
        _move(version)
        return Registration(version, True, version, reason)
    return Registration(version, False, current or "none", reason)


def promote(version: str) -> None:
    """Make ``version`` the champion (a person's decision, no metric check)."""
    known = {v["version"] for v in tracking.model_versions()}
    if str(version) not in known:
        raise InputError(f"model {tracking.REGISTERED_MODEL} has no version {version} "
                         f"(versions: {', '.join(sorted(known, key=int)) or 'none'})")
    _move(str(version))


def rollback() -> str:
    """Move the champion back to the previous champion; return that version."""
    hist = _history()
    if len(hist) < 2:
        raise InputError("no earlier champion to roll back to")
    hist.pop()
    prev = hist[-1]
    tracking.set_champion(prev)
    tracking.set_registered_model_tag(HISTORY_TAG, json.dumps(hist))
    return prev
