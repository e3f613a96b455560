"""What the DVC metrics files hold (issue 20): headline figures under short names, so
`dvc exp show --only-changed` of two experiments fits a screen; the rest is in plain outputs.
The end-to-end width check: tests/test_readme.py."""

from __future__ import annotations

import math

from melodance.evaluate.commands import summary_line
from melodance.evaluate.stage import headline as evaluate_headline
from melodance.train.loop import EpochStats, TrainResult
from melodance.train.stage import headline as train_headline
from melodance.train.stage import summary_metrics

FIGURES = {"motion_energy_ratio": 0.05, "still_fraction": 1.0, "bone_error_cm": 2.3, "kid_k": 950.77921,
           "kid_g": 506.4, "kid_k_low": 900.0, "kid_k_high": 990.0, "metric_loss_per_frame": 73.5}


def _result() -> dict:
    rows = ("model", "real_reference", "retrieval", "mean_pose", "seed_d")
    result = {row: {k: v + i for k, v in FIGURES.items()} for i, row in enumerate(rows)}
    result["real"] = {"n_sequences": 2, "still_threshold_cm_s": 9.1}
    result["gate"] = {"split": "val", "scores": {"model": {"score": math.inf, "failed": [
        "still_fraction 1 outside [None, 0.2]"]}}}
    return result


def test_evaluate_metrics_json_holds_two_figures_per_row():
    head = evaluate_headline(_result())
    # The model's at the top level (short columns in dvc exp show), each other row as a group.
    assert head["kid_k"] == 950.77921 and head["energy"] == 0.05
    assert set(head) == {"kid_k", "energy", "real_reference", "retrieval", "mean_pose", "seed_d"}
    for row, i in (("real_reference", 1), ("retrieval", 2), ("mean_pose", 3), ("seed_d", 4)):
        assert head[row] == {"kid_k": 950.77921 + i, "energy": 0.05 + i}
    assert "gate" not in head and "real" not in head   # all_metrics.json has them


def test_evaluate_prints_one_sentence():
    line = summary_line(_result(), "test", "outputs/evaluate")
    assert "\n" not in line and line.startswith("evaluated on the test split (2 sequences): model kid_k 951")
    assert "gate (val split): fails still_fraction 1 outside" in line
    assert line.endswith("outputs/evaluate/table.md")


def _stats(epoch: int, val: float) -> EpochStats:
    return EpochStats(epoch=epoch, train_loss=2 * val, train_motion_loss=val, train_recon_loss=val,
                      val_loss=val, val_motion_loss=val, val_recon_loss=0.1 * val, val_metric_loss=100 * val,
                      val_metric_loss_per_frame=10 * val, frames_per_s=1000.0)


def test_train_summary_names_the_kept_epoch_best():
    """val_loss is the MLflow curve (last point: last epoch); the kept epoch's is best_val_loss."""
    history = [_stats(1, 0.5), _stats(2, 0.2), _stats(3, 0.3)]
    summary = summary_metrics(TrainResult(model=None, history=history, best_epoch=2, stopped_early=True))
    assert summary["best_epoch"] == 2 and summary["epochs_run"] == 3 and summary["stopped_early"]
    assert summary["best_val_loss"] == 0.2 and summary["best_train_loss"] == 0.4
    assert summary["best_val_metric_loss_per_frame"] == 2.0
    assert not set(summary) & set(EpochStats.__dataclass_fields__)   # no curve's name
    assert train_headline(summary) == {"best_val_loss": 0.2}


def test_train_headline_of_other_families():
    vqgpt = {"fit_s": 10.0, "vq_steps": 8, "gpt_val_loss": 3.1, "gpt_best_val_loss": 3.0,
             "val_speed_ratio": 0.4, "val_still_fraction": 0.1}
    assert train_headline(vqgpt) == {"gpt_best_val_loss": 3.0, "val_speed_ratio": 0.4}
    retrieval = {"fit_s": 0.2, "database_beats": 40, "val_metric_loss": 900.0,
                 "val_metric_loss_per_frame": 45.0}
    assert train_headline(retrieval) == {"val_metric_loss_per_frame": 45.0}
