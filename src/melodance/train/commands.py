"""``melodance train``: the train stage."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train the selected model variant on the features (MLflow-tracked)",
        description="Train the model selected by params.yaml `model.variant` on the feature set, "
        "log params, per-epoch train/validation curves, metrics and the model to MLflow, and "
        "write the DVC outputs (model bundle, metrics.json, history.csv). A killed training "
        "resumes from its last checkpoint when run again with the same settings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--features", default="outputs/features", help="feature stage output folder")
    p.add_argument("--out", default="outputs/train", help="output folder")
    p.add_argument("--params", default="params.yaml", help="params file (sections model, train)")
    p.add_argument("--tuned", default="outputs/tune/best_params.json",
                   help="tuned parameters: fill the keys params.yaml sets to auto (train.use_tuned)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=_train)


def _train(args) -> int:
    from pathlib import Path

    from melodance.train.stage import resolve_configs, run_training

    model_cfg, train_cfg, window, from_study = resolve_configs(args.params, Path(args.tuned))
    if from_study:
        print("from the tune stage (params.yaml says auto): "
              + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in sorted(from_study.items())))
    metrics = run_training(Path(args.features), Path(args.out), model_cfg, train_cfg,
                           window=window, progress=not args.no_progress, from_study=from_study)
    print(f"trained {model_cfg.variant}: best epoch {metrics['best_epoch']}, "
          f"val_loss {metrics['val_loss']:.4f}, "
          f"val metric_loss {metrics['val_metric_loss_per_frame']:.2f} cm/frame")
    return 0
