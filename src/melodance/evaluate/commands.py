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
    from pathlib import Path

    from melodance.evaluate.config import EvaluateConfig
    from melodance.evaluate.stage import run_evaluation
    from melodance.params import load_section
    from melodance.serve.gate import RegisterConfig

    cfg = load_section("evaluate", EvaluateConfig, args.params)
    gate = load_section("register", RegisterConfig, args.params)
    result = run_evaluation(Path(args.features), Path(args.model), Path(args.out), cfg,
                            log_mlflow=not args.no_mlflow, gate=gate,
                            seed_model=Path(args.seed_model) if args.seed_model else None)
    print(summary_line(result, cfg.split, Path(args.out)))
    return 0


def summary_line(result: dict, split: str, out) -> str:
    """One sentence, as every stage command prints: the model beside the real reference, the
    gate's verdict, where the table is."""
    def figs(row: str) -> str:
        r = result.get(row, {})
        nan = float("nan")
        return f"kid_k {r.get('kid_k', nan):.3g}, energy {r.get('motion_energy_ratio', nan):.2f}"

    line = (f"evaluated on the {split} split ({result['real']['n_sequences']} sequences): model "
            f"{figs('model')}; real reference {figs('real_reference')}")
    gate = result.get("gate") or {}
    mine = gate.get("scores", {}).get("model")
    if mine is not None:
        verdict = "fails " + "; ".join(mine["failed"]) if mine["failed"] else f"score {mine['score']:.4g}"
        line += f"; gate ({gate.get('split')} split): {verdict}"
    return line + f"; every row and figure: {out}/table.md"
