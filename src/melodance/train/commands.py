"""``melodance train``: the train stage."""

from __future__ import annotations

import argparse

from melodance import options
from melodance.models.config import FAMILIES, VARIANTS


def register(sub) -> None:
    p = sub.add_parser(
        "train", help="train the selected model family on the features (MLflow-tracked)",
        description="Train the model selected by params.yaml `model.family` (and `model.variant` "
        "for the LSTM family) on the feature set, "
        "log params, per-epoch train/validation curves, metrics and the model to MLflow, and "
        "write the DVC outputs (model bundle, metrics.json, history.csv). A killed training "
        "resumes from its last checkpoint when run again with the same settings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    options.add_features(p)
    options.add_out(p, "train")
    options.add_params(p, "model", "train")
    p.add_argument("--tuned", default=options.TUNED,
                   help="tuned parameters: fill the keys params.yaml sets to auto (train.use_tuned)")
    p.add_argument("--family", default=None, choices=FAMILIES,
                   help="train this family instead of params.yaml's model.family")
    p.add_argument("--variant", default=None, choices=VARIANTS,
                   help="with --family lstm: this variant instead of params.yaml's model.variant")
    p.add_argument("--no-tuned", action="store_true",
                   help="ignore the tuned parameters (train.use_tuned): params.yaml's values")
    options.add_no_progress(p)
    p.set_defaults(func=_train)


def _train(args) -> int:
    from pathlib import Path

    from melodance.models import ModelConfig
    from melodance.train.stage import resolve_configs, run_training

    model_cfg, train_cfg, window, from_study = resolve_configs(
        args.params, None if args.no_tuned else Path(args.tuned),
        use_tuned=False if args.no_tuned else None)
    if args.family or args.variant:
        over = {k: v for k, v in (("family", args.family), ("variant", args.variant)) if v}
        model_cfg = ModelConfig.model_validate({**model_cfg.model_dump(), **over})
    if from_study:
        print("from the tune stage (params.yaml says auto): "
              + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in sorted(from_study.items())))
    metrics = run_training(Path(args.features), Path(args.out), model_cfg, train_cfg,
                           window=window, progress=not args.no_progress, from_study=from_study)
    if model_cfg.family == "vqgpt":
        print(f"trained vqgpt: {metrics['vq_steps']} VQ-VAE + {metrics['gpt_steps']} GPT steps in "
              f"{metrics['fit_s']:.0f} s, validation speed ratio {metrics.get('val_speed_ratio')}")
        return 0
    if "best_epoch" not in metrics:  # a baseline fitted without training
        print(f"fitted {model_cfg.variant} in {metrics['fit_s']:.2f} s, "
              f"val metric_loss {metrics['val_metric_loss_per_frame']:.2f} cm/frame")
        return 0
    print(f"trained {model_cfg.variant}: best epoch {metrics['best_epoch']} of {metrics['epochs_run']}, "
          f"best_val_loss {metrics['best_val_loss']:.4f}, "
          f"val metric_loss {metrics['best_val_metric_loss_per_frame']:.2f} cm/frame")
    return 0
