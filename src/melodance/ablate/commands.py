"""``melodance ablate``: the seed's ablations as tracked experiments, with a report."""

from __future__ import annotations

import argparse

from melodance import options


def register(sub) -> None:
    p = sub.add_parser(
        "ablate", help="run the seed's ablations (normalisation, windows, temporal, variants)",
        description="Train every ablation setting of SEED-NOTES (normalisation per_feature / "
        "per_dim / zscore; overlapping vs non-overlapping windows; temporal-index normalisation "
        "on / off; variants a, b, c, d) with several seeds on the data in --data, as nested MLflow "
        "runs tagged with their ablation, then write a report (Markdown + PNG curves) with a "
        "verdict per claim. Budgets: small (< 20 min on 2 cores), full (hours).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", default="data", help="dataset root (Music-to-Dance layout)")
    p.add_argument("--budget", choices=("tiny", "small", "full"), default="small",
                   help="tiny: a smoke test; small: < 20 min on 2 cores; full: hours")
    p.add_argument("--work", default="outputs/ablate", help="working folder (features, results)")
    p.add_argument("--report", default="reports/ablations", help="report folder")
    options.add_params(p, "features", "model", "train", "validate")
    options.add_no_progress(p)
    p.set_defaults(func=_ablate)


def _ablate(args) -> int:
    from pathlib import Path

    from melodance import tracking
    from melodance.ablate.report import verdicts, write_report
    from melodance.ablate.run import run_ablations

    results = run_ablations(Path(args.data), Path(args.work), args.budget, args.params,
                            progress=not args.no_progress)
    md = write_report(results, Path(args.report))
    tracking.setup()
    with tracking.stage_run("ablate", run_id=results["parent_run_id"]):
        tracking.log_artifacts(Path(args.report), "report")
    for claim, line in verdicts(results).items():
        print(f"{claim}: {line}")
    print(f"report: {md}")
    return 0
