"""Benchmark: how fast a trained bundle generates a dance, on one core.

Generation of ``--seconds`` (default 60) of dance from a song's features by
``DanceBundle.generate`` (what evaluate, serving, ``melodance dance`` and the
page call), pinned to one torch thread, repeated and summarised by the median.
The baseline in the same run is real time: the figure is "seconds of dance per
second of compute" (target: at least 50x for the generative family, issue 23).
The conditions are a real song's features when ``--features`` holds the
features stage's output, else random arrays of the bundle's shapes (the cost of
sampling does not depend on the values: one token per 4 frames, a fixed-size
network).

    python benchmarks/bench_generate.py [--model outputs/train/model.pt] [--seconds 60]
        [--features outputs/features] [--repeat 5] [--json rows.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402


def conditions(bundle, frames: int, features: Path | None) -> tuple[np.ndarray, np.ndarray, str]:
    """(music [frames, Dm], temporal [frames, Dt], where they came from)."""
    if features is not None and (features / "meta.json").is_file():
        from melodance.features.pipeline import load_features

        fs = load_features(features)
        for name in sorted(fs.sequences, key=lambda n: -len(fs.sequences[n].music)):
            s = fs.sequences[name]
            if len(s.music) >= frames:
                return s.music[:frames], s.temporal[:frames], f"song {name}"
    rng = np.random.default_rng(0)
    m = bundle.model
    return (rng.standard_normal((frames, m.music_dim)).astype(np.float32),
            rng.random((frames, m.temporal_dim)).astype(np.float32), "random arrays")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=str(REPO / "outputs" / "train" / "model.pt"))
    ap.add_argument("--features", default=str(REPO / "outputs" / "features"))
    ap.add_argument("--seconds", type=float, default=60.0)
    C.add_common_args(ap)
    args = ap.parse_args()
    import torch

    from melodance import FPS
    from melodance.models.bundle import DanceBundle

    torch.set_num_threads(1)
    bundle = DanceBundle.load(args.model)
    frames = int(round(args.seconds * FPS))
    music, temporal, source = conditions(bundle, frames, Path(args.features))
    bundle.generate(music[:100], temporal[:100], seed=0)  # warm-up (first-call allocations)
    samples = []
    with C.PeakMemory() as peak:
        for seed in range(1 if args.quick else (args.repeat or 5)):
            t0 = time.perf_counter()
            bundle.generate(music, temporal, seed=seed)
            samples.append(args.seconds / (time.perf_counter() - t0))
    row = C.Row(f"generating {args.seconds:g} s of dance ({bundle.family}), 1 thread",
                "x real time", C.median(samples), None, True, ">= 50x real time",
                C.median(samples) >= 50.0,
                f"{source}; median of {len(samples)}, spread {C.spread(samples):.0%}; "
                f"model {Path(args.model).name}", {"ours": samples}, peak.peak_mb, "generate")
    return C.finish([row], args.json)


if __name__ == "__main__":
    sys.exit(main())
