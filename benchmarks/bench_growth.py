"""Benchmark: how feature extraction and generation time grow with song length.

A long song is made by concatenating real songs (44.1 kHz stereo, written as
a temporary WAV with soundfile); then, for 30, 60, 120 and 240 s of it, on one
core:

- feature extraction: :func:`melodance.features.music.song_features` (decode,
  resample, spectrogram, MFCC, CQT chroma, tempogram, onsets, beats);
- generation: :meth:`DanceModel.generate` of the ``params.yaml``-sized
  autoencoder on those features (weights untouched by training: the cost
  does not depend on them).

Lengths are timed in turns (the order flips each round); each cost is fitted
with a line t = a + b * seconds, and the report gives the slope (seconds of
compute per minute of song), the R^2 of the fit and t(240 s) / t(30 s)
(8 for a linear cost without fixed overhead).

    python benchmarks/bench_growth.py [--quick] [--json rows.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402

LENGTHS_S = (30.0, 60.0, 120.0, 240.0)
MIN_R2 = 0.99
GEN_CALLS = 5


def long_song(data: Path, seconds: float, out: Path) -> Path:
    """Concatenate whole real songs until ``seconds`` of audio; write a WAV."""
    import soundfile as sf

    from melodance.data.layout import sequence_dirs

    parts, total, sr = [], 0, None
    for d in sequence_dirs(data):
        audio = next(iter(sorted(d.glob("audio.*"))), None)
        if audio is None:
            continue
        y, r = sf.read(str(audio), dtype="float32", always_2d=True)
        if sr is None:
            sr = r
        if r != sr or y.shape[1] != 2:
            continue  # keep one format: a WAV has one rate and channel count
        parts.append(y)
        total += len(y)
        if total >= seconds * sr:
            break
    if sr is None or total < seconds * sr:
        raise SystemExit(f"{data}: not enough audio for a {seconds:.0f} s song")
    sf.write(str(out), np.concatenate(parts), sr, subtype="PCM_16")
    return out


def growth_row(name: str, times: dict[float, list[float]], peaks: dict[float, float],
               group: str) -> C.Row:
    xs = [s for s, v in times.items() for _ in v]
    ys = [t for v in times.values() for t in v]
    med = {s: C.median(v) for s, v in times.items()}
    # The line through the medians: one slow spell on a shared machine must not
    # read as non-linearity.
    a, b, r2 = C.linear_fit(list(med), list(med.values()))
    lo, hi = min(med), max(med)
    per = ", ".join(f"{s:.0f} s: {m * 1e3:.0f} ms" for s, m in med.items())
    return C.Row(
        f"{name} vs song length ({', '.join(f'{s:.0f}' for s in med)} s), 1 thread",
        "s per min of song", b * 60.0, None, False, f"linear (R^2 >= {MIN_R2})", r2 >= MIN_R2,
        f"slope {b * 1e3:.2f} ms per s of song, intercept {a * 1e3:.0f} ms, R^2 {r2:.4f}, "
        f"t({hi:.0f}s)/t({lo:.0f}s) = {med[hi] / med[lo]:.2f} (ideal {hi / lo:.0f}); {per}",
        {"ours": ys, "seconds": xs, "median_s": {str(k): v for k, v in med.items()},
         "r2": r2, "intercept_s": a, "slope_s_per_s": b,
         "peak_rss_mb_by_length": {str(k): v for k, v in peaks.items()}},
        max(peaks.values()), group)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(ap)
    ap.add_argument("--data", default=str(C.SHARED_DATA))
    args = ap.parse_args()
    lengths = LENGTHS_S[:3] if args.quick else LENGTHS_S
    repeat = args.repeat or (2 if args.quick else 3)

    import torch
    from threadpoolctl import threadpool_limits

    from melodance.features.config import FeaturesConfig
    from melodance.features.music import song_features, warm_up
    from melodance.models import ModelConfig, build_model
    from melodance.params import load_section

    fcfg = load_section("features", FeaturesConfig, REPO / "params.yaml")
    mcfg = load_section("model", ModelConfig, REPO / "params.yaml").model_copy(
        update={"variant": "lstm_autoencoder"})
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-growth-") as td, threadpool_limits(1):
        torch.set_num_threads(1)
        song = long_song(Path(args.data), max(lengths) + 2 * fcfg.context_s, Path(td) / "long.wav")
        warm_up(fcfg)
        start = fcfg.context_s  # real audio in the context before frame 0, like a dance span

        def extract(s: float) -> dict:
            return song_features(song, start, int(round(s * fcfg.fps)), fcfg)

        full = extract(max(lengths))
        model = build_model(mcfg, full["music"].shape[1], full["temporal"].shape[1], 72, seed=0)
        music, temporal = torch.from_numpy(full["music"]), torch.from_numpy(full["temporal"])

        def generate(s: float) -> float:
            """Seconds per call, averaged over several calls (one takes milliseconds)."""
            import time

            n = int(round(s * fcfg.fps))
            t0 = time.perf_counter()
            for _ in range(GEN_CALLS):
                model.generate(music[:n], temporal[:n])
            return (time.perf_counter() - t0) / GEN_CALLS

        for name, fn, group in (("feature extraction (song_features)", extract, "features"),
                                ("generation (DanceModel.generate)", generate, "generation")):
            times: dict[float, list[float]] = {s: [] for s in lengths}
            peaks: dict[float, float] = {}
            fn(lengths[0])  # warm-up
            for r in range(repeat):
                for s in lengths if r % 2 == 0 else lengths[::-1]:
                    with C.PeakMemory() as mem:
                        times[s].append(C.measure(lambda s=s, fn=fn: fn(s)))
                    peaks[s] = max(peaks.get(s, 0.0), mem.peak_mb or 0.0)
            rows.append(growth_row(name, times, peaks, group))
            print(rows[-1].workload + ": " + rows[-1].note, flush=True)
    return C.finish(rows, args.json)


if __name__ == "__main__":
    sys.exit(main())
