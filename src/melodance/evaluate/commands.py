"""``melodance evaluate``: the evaluate stage."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="score the trained model on whole test sequences",
        description="Generate every test sequence from its music with the trained model and "
        "score it (metric_loss, beat alignment both ways, FID_k/FID_g, diversity, foot skating, "
        "jitter) next to the ground truth and a mean-pose baseline. Writes a DVC metrics file "
        "and logs to MLflow. Definitions: docs/metrics.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--features", default="outputs/features", help="feature stage output folder")
    p.add_argument("--model", default="outputs/train/model.pt", help="trained model bundle")
    p.add_argument("--out", default="outputs/evaluate", help="output folder")
    p.add_argument("--params", default="params.yaml", help="params file (section evaluate)")
    p.add_argument("--no-mlflow", action="store_true", help="do not log to MLflow")
    p.set_defaults(func=_evaluate)


def _evaluate(args) -> int:
    import json
    from pathlib import Path

    from melodance.evaluate.config import EvaluateConfig
    from melodance.evaluate.stage import run_evaluation
    from melodance.params import load_section

    cfg = load_section("evaluate", EvaluateConfig, args.params)
    res = run_evaluation(Path(args.features), Path(args.model), Path(args.out), cfg,
                         log_mlflow=not args.no_mlflow)
    keys = ("metric_loss_per_frame", "bas_music", "bas_motion", "fid_k", "fid_g")
    print(json.dumps({k: {m: res[k][m] for m in keys} for k in
                      ("model", "ground_truth", "mean_pose_baseline")}, indent=1))
    return 0
