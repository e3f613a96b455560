"""``melodance validate``: the data validation gate (Great Expectations)."""

from __future__ import annotations

import argparse

from melodance import options


def register(sub) -> None:
    p = sub.add_parser(
        "validate", help="check every sequence of a dataset folder (Great Expectations gate)",
        description="Measure each DANCE_<style>_<n>/ sequence (files, frame counts against the "
        "config span and the audio, time scale of the motion, body plausibility) and check the "
        "facts with a Great Expectations suite whose bounds are the `validate` section of the "
        "params file. Writes summary.json, accepted.json, facts.csv and the Data Docs (HTML) "
        "to --out and logs them to MLflow. Exits with 1, naming each failing sequence and "
        "check, when a sequence fails and validate.on_failure is `stop`. The data folder is "
        "only read.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("path", nargs="?", default="data", help="dataset folder (DANCE_*/ inside)")
    options.add_out(p, "validate")
    options.add_params(p, "validate")
    p.add_argument("--on-failure", choices=("stop", "quarantine"), default=None,
                   help="override validate.on_failure from the params file")
    p.add_argument("--workers", type=int, default=None,
                   help="processes measuring sequences in parallel (default: up to 2)")
    p.add_argument("--no-docs", action="store_true", help="skip the Data Docs (HTML)")
    options.add_no_mlflow(p, help="do not log to MLflow (quick checks of any folder)")
    p.set_defaults(func=_validate)


def _validate(args) -> int:
    from pathlib import Path

    from melodance.data.layout import sequence_dirs
    from melodance.params import load_section
    from melodance.validate.config import ValidateConfig
    from melodance.validate.stage import DOCS, SUMMARY, run_validation

    overrides = {"on_failure": args.on_failure} if args.on_failure else None
    cfg = load_section("validate", ValidateConfig, args.params, overrides=overrides)
    data, out = Path(args.path), Path(args.out)
    sequence_dirs(data)  # not a dataset folder: say so before opening an MLflow run
    run = lambda: run_validation(data, out, cfg, workers=args.workers, docs=not args.no_docs)
    report = run() if args.no_mlflow else _tracked(run, cfg, data, out, not args.no_docs)
    docs = f", data docs: {out / DOCS / 'index.html'}" if not args.no_docs else ""
    print(f"validated {len(report.names)} sequences in {report.seconds:.1f} s: "
          f"{len(report.accepted)} accepted, {len(report.quarantined)} quarantined; "
          f"summary: {out / SUMMARY}{docs}")
    return 0


def _tracked(run, cfg, data, out, docs: bool):
    """Run the validation inside an MLflow run; log what it found, also when it fails."""
    from melodance import tracking
    from melodance.validate.stage import DOCS, FACTS, ValidationFailed

    tracking.close_stale_runs("validate")
    with tracking.stage_run("validate", params={"validate": cfg.model_dump(),
                                                "data_dir": str(data)}, run_name="validate"):
        try:
            report = run()
        except ValidationFailed as e:
            _log(e.report, out, docs, DOCS, FACTS)
            raise
        _log(report, out, docs, DOCS, FACTS)
    return report


def _log(report, out, docs: bool, docs_name: str, facts_name: str) -> None:
    from melodance import tracking

    s = report.summary
    tracking.log_metrics({
        "validate.n_sequences": s["n_sequences"], "validate.n_passed": s["n_passed"],
        "validate.n_failed": s["n_failed"], "validate.n_quarantined": s["n_quarantined"],
        "validate.seconds": report.seconds,
    })  # the ranges of every fact are in the summary.json artifact, not 60 more charts
    tracking.set_tags({
        "melodance.validate.passed": s["passed"],
        "melodance.validate.quarantined": ",".join(s["quarantined"]) or "none",
        "melodance.validate.failed": ",".join(s["failed"]) or "none",
    })
    tracking.log_dict(s, "validate/summary.json")
    tracking.log_artifact(out / facts_name, "validate")
    if docs:
        tracking.log_artifacts(out / docs_name, "validate/data_docs")
