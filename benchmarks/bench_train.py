"""Benchmark: training throughput and generation speed on the real data's features.

Model: variant ``lstm_autoencoder`` (d) at the size in ``params.yaml``
(``model`` section), on the features of the real sequences built once with the
pipeline's ``features`` settings (window 120, stride 20).

Compared in one run, in turns, on the same training windows:

- ``ours``: the batch step of :func:`melodance.train.loop.fit` (a mini-batch
  of windows, one forward and backward pass, gradient clipping, one Adam
  step), at the ``train.batch_size`` of ``params.yaml`` and at 64;
- ``baseline``: what the public re-implementation did: batch size 10 as a
  per-sample Python loop (each window forwarded and back-propagated alone,
  gradients accumulated over 10 windows, one Adam step).

Throughput is frames seen per second (windows x 120 frames), each measurement
a time-boxed loop over the same shuffled windows. Both sides run with the same
number of torch threads; the figures are reported for ``train.threads`` of
``params.yaml`` and for 1 thread, because on a shared 2-core machine a second
thread can cost more than it brings.

Then: one real epoch of :func:`fit` (seconds per epoch, its own frames/s as a
cross-check), and generation speed: :meth:`DanceModel.generate` on a 60 s song
(seconds of dance per second of one core) and the whole serving path
(:meth:`DanceBundle.generate`: normalisation, generation, joints).

    python benchmarks/bench_train.py [--quick] [--json rows.json] [--workdir DIR]
    python benchmarks/bench_train.py --profile   # where a training step's time goes
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402

WINDOW_GEN_S = 60.0


def per_sample_step(model, opt, train: dict, idx: np.ndarray, recon_weight: float) -> int:
    """Baseline: one Adam step over ``idx`` (10 windows), each window forwarded alone."""
    from melodance.train.loop import batch_loss

    opt.zero_grad()
    for i in idx:
        one = {k: v[i:i + 1] for k, v in train.items()}
        loss, _, _ = batch_loss(model, one, recon_weight)
        (loss / len(idx)).backward()
    opt.step()
    return len(idx)


def batch_step(model, opt, train: dict, idx: np.ndarray, recon_weight: float,
               grad_clip: float) -> int:
    """Ours: the body of fit()'s batch loop (kept identical to train/loop.py)."""
    import torch

    from melodance.train.loop import batch_loss

    idx = torch.from_numpy(idx)
    batch = {k: v[idx] for k, v in train.items()}
    loss, motion, recon = batch_loss(model, batch, recon_weight)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    # fit() reads the three losses every batch; so do we.
    _ = np.array([loss.item(), motion.item(), recon.item()]) * len(idx)
    return len(idx)


class Trainer:
    """A model + Adam that trains on successive batches of a fixed shuffled order."""

    def __init__(self, train, model_cfg, train_cfg, batch: int, per_sample: bool):
        import torch

        from melodance.models import build_model

        dims = (train["music"].shape[-1], train["temporal"].shape[-1], train["motion"].shape[-1])
        self.model = build_model(model_cfg, *dims, seed=train_cfg.seed)
        self.model.train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=train_cfg.lr)
        self.train, self.cfg, self.batch, self.per_sample = train, train_cfg, batch, per_sample
        self.order = np.random.default_rng(train_cfg.seed).permutation(train["music"].shape[0])
        self.pos = 0
        self.frames_per_window = train["music"].shape[1]

    def step(self) -> int:
        """One Adam step; returns the frames it trained on."""
        if self.pos + self.batch > len(self.order):
            self.pos = 0
        idx = self.order[self.pos:self.pos + self.batch]
        self.pos += self.batch
        if self.per_sample:
            n = per_sample_step(self.model, self.opt, self.train, idx, self.cfg.recon_weight)
        else:
            n = batch_step(self.model, self.opt, self.train, idx, self.cfg.recon_weight,
                           self.cfg.grad_clip)
        return n * self.frames_per_window


def throughput(train, model_cfg, train_cfg, threads: int, batch_sizes: list[int],
               repeat: int, min_s: float) -> dict[str, list[float]]:
    """Frames/s samples of ours (each batch size) and the baseline, alternating."""
    import torch

    torch.set_num_threads(threads)
    sides = {f"ours_b{b}": Trainer(train, model_cfg, train_cfg, b, per_sample=False)
             for b in batch_sizes}
    sides["baseline"] = Trainer(train, model_cfg, train_cfg, 10, per_sample=True)
    for t in sides.values():  # warm-up: one step each (allocator, oneDNN kernels)
        t.step()
    return C.alternate({k: (lambda t=t: C.time_boxed(t.step, min_s)) for k, t in sides.items()},
                       repeat, warmup=False)


def subset(fs, n_train: int, n_val: int):
    """A FeatureSet with only the first segments of train and val (quick mode)."""
    from dataclasses import replace

    split = dict(fs.split)
    split["train"], split["val"] = split["train"][:n_train], split["val"][:n_val]
    return replace(fs, split=split)


def no_overlap(fs):
    """The same features with stride == window (each frame seen once per epoch)."""
    from dataclasses import replace

    meta = dict(fs.meta)
    meta["config"] = {**meta["config"], "stride": meta["config"]["window"]}
    return replace(fs, meta=meta)


def one_epoch(fs, model_cfg, train_cfg, threads: int) -> dict:
    """fit() for one epoch: wall seconds, and its own training frames/s."""
    from melodance.train.loop import fit

    cfg = train_cfg.model_copy(update={"epochs": 1, "threads": threads})
    with C.PeakMemory() as mem:
        t0 = time.perf_counter()
        result = fit(fs, model_cfg, cfg, progress=False)
        wall = time.perf_counter() - t0
    h = result.history[0]
    return {"epoch_s": wall, "fit_frames_per_s": h.frames_per_s, "model": result.model,
            "peak_rss_mb": mem.peak_mb}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(ap)
    ap.add_argument("--workdir", default=None, help="reuse real features built here")
    ap.add_argument("--data", default=str(C.SHARED_DATA))
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="torch threads to measure (default: params.yaml train.threads, and 1)")
    ap.add_argument("--profile", action="store_true",
                    help="only profile 20 steps of ours (batch 64) and of the baseline, then stop")
    args = ap.parse_args()

    from melodance.features.pipeline import load_features
    from melodance.models import ModelConfig
    from melodance.params import load_section
    from melodance.train.config import TrainConfig
    from melodance.train.loop import to_tensors

    params = REPO / "params.yaml"
    model_cfg = load_section("model", ModelConfig, params).model_copy(
        update={"variant": "lstm_autoencoder"})
    train_cfg = load_section("train", TrainConfig, params)
    threads = args.threads or sorted({train_cfg.threads, 1}, reverse=True)
    repeat = args.repeat or (2 if args.quick else 4)
    min_s = 1.0 if args.quick else 3.0

    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="bench-train-")
        args.workdir = tmp.name
    feats_dir, build_s = C.ensure_real_features(Path(args.workdir) / "features_real", args.data)
    fs = load_features(feats_dir)
    if args.quick:
        fs = subset(fs, 4, 2)
    train = to_tensors(fs.windows("train"))
    n_win, W = train["music"].shape[:2]
    frames_per_epoch = n_win * W
    load = os.getloadavg()[0]
    print(f"model {model_cfg.variant} hidden {model_cfg.hidden_size} layers {model_cfg.layers} "
          f"code {model_cfg.code_size}; {len(fs.split['train'])} training segments, {n_win} "
          f"windows of {W} frames = {frames_per_epoch} frames per epoch; load {load:.2f}",
          flush=True)

    if args.profile:
        profile(train, model_cfg, train_cfg, threads[-1])
        return 0
    rows: list[C.Row] = []
    batches = sorted({train_cfg.batch_size, 64})
    fps_at: dict[int, dict] = {}
    for th in threads:
        with C.PeakMemory() as mem:
            samples = throughput(train, model_cfg, train_cfg, th, batches, repeat, min_s)
        fps_at[th] = samples
        for b in batches:
            tag = "params.yaml" if b == train_cfg.batch_size else "code default"
            rows.append(C.compare(
                f"training throughput, batch {b} ({tag}), {th} thread{'s' * (th > 1)}",
                "frames/s", {"ours": samples[f"ours_b{b}"], "baseline": samples["baseline"]},
                higher_is_better=True, target=">= 10x baseline", min_ratio=10.0,
                group="training", peak_rss_mb=mem.peak_mb,
                note="baseline: batch 10 as a per-sample loop, same threads"))
        print(f"{th} thread(s): " + ", ".join(
            f"{k} {C.median(v):.0f} frames/s (spread {C.spread(v):.0%})"
            for k, v in samples.items()), flush=True)

    # A real epoch of fit(), at each thread count; the baseline's epoch is projected
    # from its measured throughput (running it would take minutes).
    model = None
    for th in threads:
        ep = one_epoch(fs, model_cfg, train_cfg, th)
        model = ep["model"]
        base_fps = C.median(fps_at[th]["baseline"])
        train_s = frames_per_epoch / ep["fit_frames_per_s"]
        val_s = max(ep["epoch_s"] - train_s, 0.0)
        base_epoch = frames_per_epoch / base_fps + val_s
        rows.append(C.Row(
            f"seconds per epoch, fit(), {th} thread{'s' * (th > 1)}", "s", ep["epoch_s"],
            base_epoch, higher_is_better=False, target="report",
            note=(f"whole epoch: training {train_s:.1f} s ({ep['fit_frames_per_s']:.0f} frames/s "
                  f"by fit's own count) + {val_s:.1f} s validation and set-up; baseline: its "
                  "training part projected from its throughput, plus the same validation"),
            samples={"ours": [ep["epoch_s"]], "baseline": [base_epoch],
                     "fit_frames_per_s": [ep["fit_frames_per_s"]]},
            peak_rss_mb=ep["peak_rss_mb"], group="training"))
        print(f"fit, 1 epoch, {th} thread(s): {ep['epoch_s']:.1f} s "
              f"({ep['fit_frames_per_s']:.0f} frames/s in training)", flush=True)
    th = threads[-1]
    ep = one_epoch(no_overlap(fs), model_cfg, train_cfg, th)
    rows.append(C.Row(
        f"seconds per epoch, fit(), no-overlap windows (stride = window), {th} thread"
        f"{'s' * (th > 1)}", "s", ep["epoch_s"], None, higher_is_better=False, target="report",
        note="each frame trained on once per epoch instead of window/stride times",
        samples={"ours": [ep["epoch_s"]]}, peak_rss_mb=ep["peak_rss_mb"], group="training"))

    rows += generation_rows(fs, model, args, repeat)
    for r in rows:
        r.note = (r.note + f"; load {load:.1f}").lstrip("; ")
    C.print_rows(rows)
    C.write_rows(args.json, rows, features_build_s=build_s, frames_per_epoch=frames_per_epoch)
    if tmp is not None:
        tmp.cleanup()
    return 0


def profile(train, model_cfg, train_cfg, threads: int, steps: int = 20) -> None:
    """torch.profiler's top operators for ours (batch 64) and the baseline."""
    import torch

    torch.set_num_threads(threads)
    for name, t in (("ours, batch 64", Trainer(train, model_cfg, train_cfg, 64, False)),
                    ("baseline, batch 10 per sample", Trainer(train, model_cfg, train_cfg, 10,
                                                              True))):
        for _ in range(3):
            t.step()
        with torch.profiler.profile() as prof:
            for _ in range(steps):
                t.step()
        print(f"\n{name}, {threads} thread(s), {steps} steps")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))


def song_span_features(data: Path, seconds: float):
    """Raw music and temporal features of the first ``seconds`` of a real dance span."""
    from melodance.data.layout import read_corpus
    from melodance.features.config import FeaturesConfig
    from melodance.features.music import song_features
    from melodance.params import load_section

    cfg = load_section("features", FeaturesConfig, REPO / "params.yaml")
    n = int(round(seconds * cfg.fps))
    seq = next(s for s in read_corpus(data) if s.n_frames >= n)
    f = song_features(seq.audio_path, seq.start_s, n, cfg)
    return f["music"], f["temporal"]


def generation_rows(fs, model, args, repeat: int) -> list[C.Row]:
    """Seconds of dance per second: the model alone, and the bundle's whole path."""
    import torch

    from melodance.models.bundle import DanceBundle

    music, temporal = song_span_features(Path(args.data), WINDOW_GEN_S)
    bundle = DanceBundle(model, fs.normalizers, fs.meta)
    m = torch.from_numpy(fs.normalizers["music"].transform(music).astype(np.float32))
    t = torch.from_numpy(fs.normalizers["temporal"].transform(temporal).astype(np.float32))
    reps = max(repeat, 3) * 2
    with C.PeakMemory() as mem:
        samples = C.alternate({"model": lambda: model.generate(m, t),
                               "bundle": lambda: bundle.generate(music, temporal)}, reps)
    rows = []
    for key, name in (("model", "DanceModel.generate"),
                      ("bundle", "DanceBundle.generate (normalise, generate, joints)")):
        speed = [WINDOW_GEN_S / s for s in samples[key]]
        rows.append(C.Row(f"generation, 60 s song, {name}, 1 thread", "x real time",
                          C.median(speed), None, True, "> 100x real time",
                          C.median(speed) > 100, f"spread {C.spread(speed):.0%}",
                          {"ours": speed}, mem.peak_mb, "generation"))
    print(f"generation of {WINDOW_GEN_S:.0f} s: model {C.median(samples['model']) * 1e3:.0f} ms, "
          f"bundle {C.median(samples['bundle']) * 1e3:.0f} ms", flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main())
