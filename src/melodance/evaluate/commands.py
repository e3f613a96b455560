"""``melodance evaluate``: the evaluate stage."""

from __future__ import annotations

import argparse

from melodance import options


def register(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="score the trained model on whole test sequences",
        description="Generate every test sequence from its music with the trained model and "
        "score it (motion statistics and ratios to the real dances, still fraction, bone-length "
        "error, KID/FID with bootstrap intervals, beat alignment, foot skating, metric_loss) next "
        "to a real reference, the retrieval baseline and the mean pose; also the champion gate's "
        "scores on the validation split. Writes a DVC metrics file "
        "and logs to MLflow. Definitions: docs/metrics.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    options.add_features(p)
    p.add_argument("--model", default=options.MODEL, help="trained model bundle")
    p.add_argument("--seed-model", default=None,
                   help="a bundle of the seed's variant d (the train_seed stage), scored as row seed_d")
    options.add_out(p, "evaluate")
    options.add_params(p, "evaluate", "register")
    options.add_no_mlflow(p)
    p.set_defaults(func=_evaluate)


def _evaluate(args) -> int:
    import json
    from pathlib import Path

    from melodance.evaluate.config import EvaluateConfig
    from melodance.evaluate.stage import run_evaluation
    from melodance.params import load_section
    from melodance.serve.gate import RegisterConfig

    cfg = load_section("evaluate", EvaluateConfig, args.params)
    gate = load_section("register", RegisterConfig, args.params)
    run_evaluation(Path(args.features), Path(args.model), Path(args.out), cfg,
                   log_mlflow=not args.no_mlflow, gate=gate,
                   seed_model=Path(args.seed_model) if args.seed_model else None)
    print((Path(args.out) / "table.md").read_text(), end="")
    print(json.dumps({"gate": json.loads((Path(args.out) / "metrics.json").read_text()).get("gate")},
                     indent=1))
    return 0
