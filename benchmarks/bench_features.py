"""Benchmark: music feature extraction for the dance spans of the real songs.

Compares, in one run on the same machine:

- ``baseline``: the straightforward per-feature librosa pipeline of the public
  re-implementations, in one process: ``librosa.load(path, sr=12800,
  offset=..., duration=...)``, then each feature function on the signal on
  its own (each recomputes its spectrogram), and ``beat_track`` from the signal;
- ``floor``: decoding the span and resampling it to 12.8 kHz, nothing else;
- ``melodance``: ``melodance.features.pipeline.extract_music`` (what
  ``melodance features`` runs), in one process and with a pool of workers.

Throughput is seconds of dance-span audio per second: of wall-clock time, and
per second of CPU time (``x real time per core``; CPU time of this process and
its finished workers). Each pipeline is warmed up on one short span first
(imports, JIT loading) so that fixed start-up costs are not counted.

    python benchmarks/bench_features.py [--data ../shared/data/music-to-dance] [--workers 2]
        [--repeat 3] [--json figures.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from melodance.data.layout import read_corpus  # noqa: E402
from melodance.features.config import FeaturesConfig  # noqa: E402
from melodance.features.music import read_audio_span  # noqa: E402
from melodance.features.pipeline import extract_music  # noqa: E402

SR, HOP = 12800, 512


def baseline_features(path, start_s: float, n_frames: int) -> np.ndarray:
    """The straightforward pipeline: [n_frames, 16]."""
    import librosa

    y, sr = librosa.load(path, sr=SR, offset=start_s, duration=n_frames / 25)
    mfcc = librosa.feature.mfcc(y=y, sr=sr, n_mfcc=3, hop_length=HOP)
    delta = librosa.feature.delta(mfcc)
    chroma = librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=HOP, n_chroma=4)
    tempogram = librosa.feature.tempogram(y=y, sr=sr, hop_length=HOP, win_length=96)[:5]
    onset = librosa.onset.onset_strength(y=y, sr=sr, hop_length=HOP)
    librosa.beat.beat_track(y=y, sr=sr, hop_length=HOP)
    return np.concatenate([mfcc, delta, chroma, tempogram, onset[None]])[:, :n_frames].T


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def measure(name: str, fn, audio_s: float, repeat: int = 1) -> dict:
    """Best (least wall time) of ``repeat`` runs; the machine may be shared."""
    runs = []
    for _ in range(repeat):
        c0, t0 = cpu_seconds(), time.perf_counter()
        fn()
        runs.append((time.perf_counter() - t0, cpu_seconds() - c0))
    wall, cpu = min(runs)
    row = {"name": name, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
           "x_real_time": round(audio_s / wall, 1), "x_real_time_per_core": round(audio_s / cpu, 1)}
    print(f"{name:24s} wall {wall:7.2f} s  cpu {cpu:7.2f} s  "
          f"{audio_s / wall:7.0f}x real time  {audio_s / cpu:7.0f}x per core", flush=True)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "music-to-dance"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--limit", type=int, default=None, help="only the first N sequences")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs of each pipeline")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits

    seqs = read_corpus(args.data)[: args.limit]
    spans = [(s.name, s.audio_path, s.start_s, s.n_frames) for s in seqs]
    audio_s = sum(s.n_frames for s in seqs) / 25
    cfg = FeaturesConfig()
    print(f"{len(spans)} dance spans, {audio_s:.0f} s of audio; {os.cpu_count()} cpus; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)

    # Warm up both pipelines (imports, numba cache, filter banks) on one short span.
    name, path, start_s, _ = spans[0]
    baseline_features(path, start_s, 100)
    list(extract_music([(name, path, start_s, 100)], cfg, workers=1))

    rows = []
    r = args.repeat
    with threadpool_limits(1):  # one core per process, for both pipelines
        rows.append(measure("floor (decode+resample)", lambda: [
            read_audio_span(p, SR, round(s0 * SR), n * HOP) for _, p, s0, n in spans], audio_s, r))
        if not args.skip_baseline:
            rows.append(measure("baseline (librosa)", lambda: [
                baseline_features(p, s0, n) for _, p, s0, n in spans], audio_s, r))
        rows.append(measure("melodance, 1 process",
                            lambda: list(extract_music(spans, cfg, workers=1)), audio_s, r))
    rows.append(measure(f"melodance, {args.workers} workers",
                        lambda: list(extract_music(spans, cfg, workers=args.workers)), audio_s, r))
    if not args.skip_baseline:
        base = rows[1]["x_real_time"]
        print(f"speed-up over the baseline: {rows[-1]['x_real_time'] / base:.2f}x "
              f"({args.workers} workers, wall clock), "
              f"{rows[2]['x_real_time_per_core'] / rows[1]['x_real_time_per_core']:.2f}x per core")
    if args.json:
        Path(args.json).write_text(json.dumps({"audio_s": audio_s, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
