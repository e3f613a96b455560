"""How long validating the real dataset takes (issue target: well under a minute on 2 cores).

    python benchmarks/bench_validate.py [DATA_DIR] [--workers 1 2] [--repeat 1]

Each configuration runs ``melodance validate DATA --no-mlflow`` in a fresh
process (what a user or ``dvc repro`` waits for, imports included; wall and
CPU seconds, the latter for one worker only) and then
times the two phases in this process: measuring the sequences (JSON parsing,
audio decoding, onsets, motion statistics) and the Great Expectations suite
with its Data Docs. Prints one JSON line per configuration.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "music-to-dance"


def cold_run(data: Path, workers: int, out: Path) -> tuple[float, float]:
    """Wall seconds and CPU seconds of one CLI run.

    The CPU figure is complete for one worker only: pool workers are children of
    the multiprocessing fork server, whose usage never reaches this process.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "melodance.cli", "validate", str(data), "--out",
                    str(out), "--no-mlflow", "--workers", str(workers)], check=True,
                   capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu if workers == 1 else None


def phases(data: Path, workers: int, out: Path) -> dict[str, float]:
    from melodance.validate.config import ValidateConfig
    from melodance.validate.stage import facts_table, measure_corpus
    from melodance.validate.suite import run_suite

    cfg = ValidateConfig()
    t0 = time.perf_counter()
    facts = measure_corpus(data, cfg, workers)
    t1 = time.perf_counter()
    outcome = run_suite(facts_table(facts), cfg, out / "data_docs")
    t2 = time.perf_counter()
    assert not outcome.failures, outcome.failures
    return {"measure_s": t1 - t0, "suite_and_docs_s": t2 - t1, "n_sequences": len(facts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("data", nargs="?", default=str(DEFAULT_DATA))
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    data = Path(args.data)
    for workers in args.workers:
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                cold, cpu = cold_run(data, workers, Path(tmp) / "cold")
                warm = phases(data, workers, Path(tmp) / "warm")
            # On a shared machine wall time depends on other jobs; CPU time much less.
            print(json.dumps({"workers": workers, "cold_process_s": round(cold, 2),
                              "cold_process_cpu_s": cpu and round(cpu, 2),
                              **{k: round(v, 2) for k, v in warm.items()},
                              "cpus": os.cpu_count(),
                              "load_avg_1min": round(os.getloadavg()[0], 2)}), flush=True)


if __name__ == "__main__":
    main()
