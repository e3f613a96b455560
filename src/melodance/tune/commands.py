"""``melodance tune``: the tune stage."""

from __future__ import annotations

import argparse

from melodance import options


def register(sub) -> None:
    p = sub.add_parser(
        "tune", help="tune the LSTM with Optuna (nested MLflow runs, parallel workers)",
        description="Run an Optuna study (TPE, seeded; median or successive-halving pruning on "
        "the per-epoch validation loss) over the training of the variant in params.yaml. "
        "Search space and budget: the `tune` section. The study lives in `tune.storage` (a "
        "journal file shared by local workers, or a postgresql:// URL shared by machines): "
        "run the same command on another machine with the same storage to join the study. "
        "Writes the best parameters for the train stage (train.use_tuned).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    options.add_features(p)
    options.add_out(p, "tune", help="output folder (best_params.json, plots)")
    options.add_params(p, "tune", "model", "train")
    p.add_argument("--workers", type=int, default=None,
                   help="worker processes on this machine (default: tune.workers)")
    p.set_defaults(func=_tune)


def _tune(args) -> int:
    from pathlib import Path

    from melodance.tune.study import run_tune

    best = run_tune(Path(args.features), Path(args.out), args.params, workers=args.workers)
    if best["study"] is None:
        print(best["note"])
        return 0
    print(f"study {best['study']}: best trial {best['trial']}, best_val_loss {best['value']:.5f} "
          f"({best['n_complete']} complete, {best['n_pruned']} pruned, {best['n_failed']} failed): "
          + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                      for k, v in best["params"].items()))
    return 0
