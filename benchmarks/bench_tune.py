"""Benchmark: Optuna trials per minute with 1 and 2 worker processes on one study.

Each trial trains the default variant (small size) for a few epochs on the
embedded corpus's features, on one torch thread (as tuning workers do). Runs
alternate 1 worker / 2 workers; the ratio of trials per minute is reported
(issue target: >= 1.6x with 2 workers on 2 cores).

    python benchmarks/bench_tune.py [--trials 16] [--repeat 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

PARAMS = """
model: {variant: lstm_autoencoder, hidden_size: 64, layers: 2, code_size: 16, mlp_hidden: 64}
train: {batch_size: 16}
tune:
  n_trials: TRIALS
  epochs: 15
  pruner: none
  storage: STORAGE
  space:
    train.lr: {low: 0.0005, high: 0.005, log: true}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()

    from melodance.data.synth import SynthConfig, write_corpus
    from melodance.features.config import FeaturesConfig
    from melodance.features.pipeline import build_features
    from melodance.tune.study import run_tune

    work = Path(tempfile.mkdtemp(prefix="bench-tune-"))
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    os.environ["MELODANCE_ARTIFACT_ROOT"] = (work / "artifacts").as_uri()
    os.chdir(work)
    write_corpus(work / "data", SynthConfig())
    build_features(work / "data", work / "features", FeaturesConfig(window=120, stride=30))
    rates: dict[int, list[float]] = {1: [], 2: []}
    run = 0
    for _ in range(args.repeat):
        for workers in (1, 2):
            run += 1
            params = work / f"params-{run}.yaml"
            params.write_text(PARAMS.replace("TRIALS", str(args.trials))
                              .replace("STORAGE", str(work / f"journal-{run}.log")))
            t0 = time.perf_counter()
            best = run_tune(work / "features", work / f"tune-{run}", str(params), workers=workers,
                            progress=False)
            minutes = (time.perf_counter() - t0) / 60
            rates[workers].append(best["n_trials"] / minutes)
            print(f"workers={workers}: {best['n_trials']} trials ({best['n_complete']} complete, "
                  f"{best['n_failed']} failed) in {minutes * 60:.1f} s "
                  f"= {rates[workers][-1]:.2f} trials/min", flush=True)
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"\ntrials/min: 1 worker {one:.2f}, 2 workers {two:.2f}; ratio {two / one:.2f}x "
          f"(target >= 1.6x); load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
