"""``melodance validity``: which music-conditioned metrics carry information on a corpus."""

from __future__ import annotations

import argparse
import shlex
import sys

from melodance.errors import MissingInput


def register(sub) -> None:
    p = sub.add_parser(
        "validity", help="test whether each music-conditioned metric tells own from other songs",
        description="Score every ground-truth dance under its own song and under every other "
        "song (beat alignment both ways, the analytic alignment measures, a learned "
        "music-motion matching model trained on the training split and tracked in MLflow), "
        "with gap, effect size and a seeded permutation p-value per metric. Writes a JSON "
        "(dvc metrics) and the generated block of the docs page. See docs/metrics-validity.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--data", default="data", help="corpus root (Music-to-Dance layout)")
    p.add_argument("--out", default="docs/metrics-validity.md",
                   help="docs page whose generated block is (re)written")
    p.add_argument("--results", default="outputs/validity",
                   help="folder for validity.json, metrics.json and the matching model")
    p.add_argument("--params", default="params.yaml",
                   help="params file (sections validity and features)")
    p.add_argument("--n-perm", type=int, default=None, help="permutations (default: params)")
    p.add_argument("--steps", type=int, default=None,
                   help="matching model training steps (default: params)")
    p.add_argument("--no-mlflow", action="store_true", help="do not track the matching model")
    p.set_defaults(func=_validity)


def _validity(args) -> int:
    import json
    from pathlib import Path

    from melodance import io
    from melodance.evaluate.validity.report import (
        ValidityConfig,
        corpus_validity,
        finite_json,
        load_corpus,
        metrics_summary,
        render_block,
        write_docs,
    )
    from melodance.features.config import FeaturesConfig
    from melodance.params import load_params, load_section

    cfg = load_section("validity", ValidityConfig, args.params)
    over = {}
    if args.n_perm is not None:
        over["n_perm"] = args.n_perm
    if args.steps is not None:
        over["matching"] = cfg.matching.model_copy(update={"steps": args.steps})
    if over:
        cfg = ValidityConfig.model_validate({**cfg.model_dump(), **over})
    # Only the analysis settings of `features` matter here; window/stride/workers do not.
    feats = load_params(args.params).get("features") or {}
    fcfg = FeaturesConfig.model_validate(feats)
    data = Path(args.data)
    if not data.is_dir():
        raise MissingInput(f"{data}: no such corpus folder")
    results_dir = Path(args.results)
    results_dir.mkdir(parents=True, exist_ok=True)

    corpus = load_corpus(data, fcfg)
    res = corpus_validity(corpus, cfg, model_path=results_dir / "matching.pt",
                          log_mlflow=not args.no_mlflow)
    command = "melodance validity " + " ".join(shlex.quote(a) for a in sys.argv[2:]) \
        if len(sys.argv) > 1 and sys.argv[1] == "validity" else \
        f"melodance validity --data {shlex.quote(str(data))} --out {shlex.quote(args.out)}"
    res["command"] = command
    io.write_json(results_dir / "validity.json", finite_json(res))
    io.write_json(results_dir / "metrics.json", metrics_summary(res))
    write_docs(args.out, render_block(res, command))
    for set_name, ms in res["metrics"].items():
        for name, r in ms.items():
            print(f"{set_name:9s} {name:24s} gap {r['gap']:+.4g}  p {r['p_value']:.4f}  {r['verdict']}")
    t = res["matching"]["test"]
    print(f"matching model test ROC AUC {t['auc']:.3f} (within style {t['auc_within_style']:.3f})")
    print(json.dumps({"docs": args.out, "results": str(results_dir / "validity.json")}))
    return 0

