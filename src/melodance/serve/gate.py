"""The champion gate: a model's score on the validation split, and which score is better.

The rule (params.yaml ``register``, :class:`RegisterConfig`): the validation
split is generated from its music and scored like the evaluate stage
(:func:`melodance.evaluate.scoring.score_rows`, without intervals). The score is
``sum_k weights[k] * metric_k`` (default KID_k + KID_g, lower is better); a
model outside any hard floor (motion-energy ratio, still fraction, bone-length
error) scores ``inf``. The seed's ``metric_loss`` stays reported in the
version's tags but decides nothing: a standing figure is closer to the ground
truth than a real dance in another phase. :mod:`melodance.serve.registry`
moves the champion by this score.
"""

from __future__ import annotations

from pydantic import Field

from melodance.params import Section
from melodance.serve.registry import is_better


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
        out["prefers_retrieval"] = is_better(scores["retrieval"]["score"], scores["model"]["score"])
    return out
