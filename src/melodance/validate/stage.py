"""The validate stage: measure every sequence, check the facts, gate the pipeline.

Outputs in ``out_dir`` (each written atomically; ``data_dir`` is only read):

- ``summary.json``: a DVC metric: totals, the range of every checked fact,
  and per sequence pass/fail with each failed check (measured value, bound);
- ``accepted.json``: ``{"sequences": [...], "quarantined": [...]}``, the
  sequences later stages may use (none when validation stops the run);
- ``facts.csv``: the facts table, one row per sequence;
- ``data_docs/``: Great Expectations Data Docs (open ``index.html``).
"""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from melodance.data.layout import sequence_dirs
from melodance.errors import InputError
from melodance.io import write_json, write_text
from melodance.validate.config import ValidateConfig
from melodance.validate.facts import measure_sequence
from melodance.validate.suite import checks, run_suite

SUMMARY = "summary.json"
METRICS = "metrics.json"
"""The DVC metrics file: the headline counts only (the ranges and per-sequence
results stay in summary.json, a plain output), so `dvc metrics show` fits a screen."""
ACCEPTED = "accepted.json"
FACTS = "facts.csv"
DOCS = "data_docs"


class ValidationFailed(InputError):
    """Sequences failed validation and ``on_failure`` is ``stop``."""

    def __init__(self, message: str, report: ValidationReport):
        super().__init__(message)
        self.report = report


@dataclass
class ValidationReport:
    """The outcome of :func:`run_validation`.

    facts: one dict per sequence (see :func:`melodance.validate.facts.measure_sequence`).
    failures: sequence -> failed checks (dicts with check, why, value, bound, message).
    accepted / quarantined: sequence names let through / dropped.
    """

    data_dir: Path
    out_dir: Path
    on_failure: str
    facts: list[dict]
    failures: dict[str, list[dict]]
    accepted: list[str]
    quarantined: list[str]
    summary: dict = field(repr=False)
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def names(self) -> list[str]:
        return [f["sequence"] for f in self.facts]

    def failure_lines(self) -> list[str]:
        """One line per failed check: ``SEQ: check: what was measured, what was expected``."""
        lines = []
        for name in sorted(self.failures):
            for f in self.failures[name]:
                if f.get("message"):
                    lines.append(f"{name}: {f['check']}: {f['message']}")
                else:
                    lines.append(f"{name}: {f['check']} = {_fmt(f['value'])}, expected "
                                 f"{f['bound']} ({f['why']})")
        return lines


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in v.items())
    return str(v)


def measure_corpus(data_dir: str | Path, cfg: ValidateConfig,
                   workers: int | None = None) -> list[dict]:
    """Facts of every ``DANCE_*`` folder under ``data_dir``, in name order.

    Raises LayoutError when ``data_dir`` holds no sequence folder. ``workers``:
    processes measuring in parallel (default: up to 2, the cores of the
    machines this runs on; 1 measures in this process).
    """
    dirs = sequence_dirs(data_dir)
    if workers is None:
        workers = min(2, os.cpu_count() or 1)
    measure = partial(measure_sequence, onset_max_lag_s=cfg.onset_max_lag_s)
    if workers <= 1 or len(dirs) < 4:
        return [measure(d) for d in dirs]
    import multiprocessing as mp

    # forkserver: no fork of a process that may hold MLflow or GE threads.
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("forkserver")) as pool:
            return list(pool.map(measure, dirs, chunksize=max(1, len(dirs) // (4 * workers))))
    except BrokenProcessPool:
        # Workers cannot start where __main__ is not importable (python - < script).
        print("validate: worker processes failed to start; measuring in this process",
              file=sys.stderr)
        return [measure(d) for d in dirs]


def facts_table(facts: list[dict]):
    """The facts as a pandas DataFrame (without the error messages)."""
    import pandas as pd

    return pd.DataFrame([{k: v for k, v in f.items() if k != "errors"} for f in facts])


def _ranges(table, cfg: ValidateConfig) -> dict:
    """Min and max of every numeric checked fact: how close the data is to each bound."""
    out = {}
    for c in checks(cfg):
        if c.kind != "between":
            continue
        col = table[c.columns[0]].dropna()
        if len(col):
            out[c.columns[0]] = {"min": float(col.min()), "max": float(col.max())}
    return out


def headline(summary: dict) -> dict:
    """The counts of a validation summary that `dvc metrics show` lists."""
    keys = ("passed", "n_sequences", "n_passed", "n_failed", "n_quarantined", "n_checks")
    return {k: summary[k] for k in keys}


def run_validation(data_dir: str | Path, out_dir: str | Path, cfg: ValidateConfig,
                   workers: int | None = None, docs: bool = True) -> ValidationReport:
    """Validate every sequence under ``data_dir``; write the outputs to ``out_dir``.

    Raises :class:`ValidationFailed` (a ValueError) naming each failing sequence
    and check when a sequence fails and ``cfg.on_failure == "stop"`` (outputs are
    written first, with no sequence accepted). With ``"quarantine"`` failing
    sequences are dropped from ``accepted.json`` and reported on stderr, unless
    none passes: that raises too.
    """
    t0 = time.perf_counter()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    facts = measure_corpus(data_dir, cfg, workers)
    table = facts_table(facts)
    out_dir.mkdir(parents=True, exist_ok=True)
    outcome = run_suite(table, cfg, out_dir / DOCS if docs else None)

    failures = outcome.failures
    for f in facts:  # attach the reader's message to the check that failed on it
        for failed in failures.get(f["sequence"], []):
            if failed["check"] in f["errors"]:
                failed["message"] = f["errors"][failed["check"]]
    names = [f["sequence"] for f in facts]
    failing = [n for n in names if n in failures]
    # Quarantine that leaves nothing to train on is a stop too.
    stop = bool(failing) and (cfg.on_failure == "stop" or len(failing) == len(names))
    accepted = [] if stop else [n for n in names if n not in failures]
    quarantined = failing if not stop else []

    summary = {
        "data_dir": str(data_dir),
        "on_failure": cfg.on_failure,
        "passed": not failing,
        "n_sequences": len(names),
        "n_passed": len(names) - len(failing),
        "n_failed": len(failing),
        "n_quarantined": len(quarantined),
        "n_checks": len(checks(cfg)),
        "failed": failing,
        "quarantined": quarantined,
        "fact_ranges": _ranges(table, cfg),
        "sequences": {n: {"passed": n not in failures, "failed_checks": failures.get(n, [])}
                      for n in names},
    }
    write_text(out_dir / FACTS, table.to_csv(index=False, float_format="%.6g"))
    write_json(out_dir / SUMMARY, summary)
    write_json(out_dir / METRICS, headline(summary))
    write_json(out_dir / ACCEPTED, {"sequences": accepted, "quarantined": quarantined})

    report = ValidationReport(data_dir, out_dir, cfg.on_failure, facts, failures, accepted,
                              quarantined, summary, time.perf_counter() - t0)
    if stop:
        details = [str(out_dir / SUMMARY)] + ([str(out_dir / DOCS / "index.html")] if docs else [])
        hint = ("To drop failing sequences instead, set validate.on_failure: quarantine in "
                "params.yaml." if cfg.on_failure == "stop" else "No sequence passes, so "
                "quarantine would leave nothing to train on.")
        raise ValidationFailed(
            f"data validation failed: {len(failing)} of {len(names)} sequences in {data_dir} "
            f"fail ({', '.join(failing)}):\n  " + "\n  ".join(report.failure_lines()) +
            f"\nDetails: {', '.join(details)}. {hint}", report)
    if quarantined:
        bar = "!" * 72
        print(f"{bar}\nQUARANTINED {len(quarantined)} of {len(names)} sequences: they fail "
              f"validation and are left out of training:\n  " +
              "\n  ".join(report.failure_lines()) + f"\n{bar}", file=sys.stderr)
    return report

