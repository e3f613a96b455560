"""Experiment: generative model families on the real data, trained on a small budget and measured.

Candidates (issue 23):

- ``vqgpt``: motion tokens (VQ-VAE, x4 downsampling, 512 codes, a decoder that
  upsamples by nearest repeat + convolution, losses on velocity, acceleration and
  rigid bone lengths) and a music-conditioned sliding-window GPT over them
  (``melodance.models.vqgpt``, the family kept).
- ``acrnn``: an auto-conditioned recurrent model of its own past motion (acLSTM,
  Zhou et al. 2018): a 2-layer GRU reads the previous frame and the music, outputs
  a Gaussian over the next frame's change, is trained on its own outputs for
  alternate 5-frame stretches so it never freezes, and samples at generation.
  Defined here only: it lost the comparison (docs/models.md).

Each candidate trains on one core under a wall-time budget, logs its curve as an
MLflow run in the experiment ``melodance-families`` (SQLite ``mlflow.db`` in the
worktree), then generates every test song from its music over several seeds and is
measured with the realism figures below (`measure` section: small, pure numpy
functions, to be replaced by the project's realism metrics when they land).

    python benchmarks/families.py train vqgpt --budget-s 600
    python benchmarks/families.py train acrnn --budget-s 600
    python benchmarks/families.py measure vqgpt acrnn --seeds 0 1 2 --json outputs/families/table.json
    python benchmarks/families.py speed vqgpt
    python benchmarks/families.py render vqgpt --out docs/images/vqgpt_frames.png

Weights go to outputs/families/<candidate>.pt (git-ignored).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "outputs" / "families"
FPS = 25.0
EXPERIMENT = "melodance-families"


# ============================================================================================
# measure: realism figures (numpy in, numbers out; cm, seconds)
# ============================================================================================
RIGID_BONES = ((3, 4), (4, 5), (12, 13), (13, 14), (7, 8), (8, 9), (16, 17), (17, 18))
STILL_CM_S = 15.0   # a 1 s window whose body-centred joint speed is below this stands still


def body_joints(motion: np.ndarray) -> np.ndarray:
    """Raw motion features [T, 72] -> root-relative joints [T, 23, 3], cm."""
    from melodance.features.motion import motion_from_features

    return motion_from_features(motion, np.zeros(3))[0].astype(np.float64)


def lowpass(j: np.ndarray, seconds: float = 0.2) -> np.ndarray:
    """Moving average over ``seconds`` along time."""
    from scipy.ndimage import uniform_filter1d

    return uniform_filter1d(j, size=max(1, int(round(seconds * FPS))), axis=0, mode="nearest")


def mean_speed(j: np.ndarray) -> float:
    """Mean joint speed, cm/s, of root-relative joints [T, 23, 3]."""
    return float(np.linalg.norm(np.diff(j, axis=0), axis=-1).mean() * FPS)


def mean_acc(j: np.ndarray) -> float:
    """Mean joint acceleration magnitude, cm/s^2."""
    return float(np.linalg.norm(np.diff(j, n=2, axis=0), axis=-1).mean() * FPS * FPS)


def still_fraction(j: np.ndarray, window_s: float = 1.0) -> float:
    """Fraction of non-overlapping 1 s windows whose mean joint speed is under STILL_CM_S."""
    w = int(window_s * FPS)
    sp = np.linalg.norm(np.diff(j, axis=0), axis=-1).mean(axis=1) * FPS
    n = len(sp) // w
    if n == 0:
        return float("nan")
    return float((sp[:n * w].reshape(n, w).mean(axis=1) < STILL_CM_S).mean())


def bone_lengths(j: np.ndarray) -> np.ndarray:
    b = np.asarray(RIGID_BONES)
    return np.linalg.norm(j[:, b[:, 0]] - j[:, b[:, 1]], axis=-1)


def bone_error(j: np.ndarray, ref: np.ndarray) -> float:
    """Mean relative deviation of rigid bone lengths from the dataset's per-bone mean ``ref``."""
    return float((np.abs(bone_lengths(j) - ref) / ref).mean())


def windows_2s(j: np.ndarray, stride: int) -> np.ndarray:
    """[T, 23, 3] -> [n, 50 * 69] flattened 2 s windows."""
    w = int(2 * FPS)
    starts = np.arange(0, len(j) - w + 1, stride)
    return np.stack([j[s:s + w].reshape(-1) for s in starts]) if len(starts) else np.zeros((0, w * 69))


def nearest_distance(queries: np.ndarray, bank: torch.Tensor) -> np.ndarray:
    """RMS joint distance (cm) from each query window to its nearest window in ``bank``."""
    q = torch.from_numpy(queries.astype(np.float32))
    out = []
    for s in range(0, len(q), 64):
        out.append(torch.cdist(q[s:s + 64], bank).min(dim=1).values)
    d = torch.cat(out).numpy() if out else np.zeros(0)
    return d / np.sqrt(queries.shape[1] / 3)  # per joint-frame


def descriptor(j: np.ndarray) -> np.ndarray:
    """Per 2 s window: mean pose and per-joint mean speed (for diversity)."""
    w = int(2 * FPS)
    out = []
    for s in range(0, len(j) - w + 1, w):
        x = j[s:s + w]
        out.append(np.concatenate([x.mean(0).ravel(),
                                   np.linalg.norm(np.diff(x, axis=0), axis=-1).mean(0) * FPS]))
    return np.array(out)


def diversity(desc: np.ndarray, rng: np.random.Generator, n: int = 400) -> float:
    """Mean pairwise distance between window descriptors (a random subset of n)."""
    if len(desc) > n:
        desc = desc[rng.choice(len(desc), n, replace=False)]
    d = np.linalg.norm(desc[:, None] - desc[None], axis=-1)
    return float(d[np.triu_indices(len(desc), 1)].mean())


def figures(dances: list[np.ndarray], ref_bones: np.ndarray, bank: torch.Tensor) -> dict:
    """Realism figures of a set of dances (root-relative joints [T, 23, 3] each)."""
    rng = np.random.default_rng(0)
    frames = np.array([len(j) for j in dances], dtype=np.float64)
    wavg = lambda xs: float(np.average(xs, weights=frames))
    return {
        "speed_cm_s": wavg([mean_speed(j) for j in dances]),
        "speed_lp_cm_s": wavg([mean_speed(lowpass(j)) for j in dances]),
        "acc_cm_s2": wavg([mean_acc(j) for j in dances]),
        "still_fraction": wavg([still_fraction(j) for j in dances]),
        "bone_error": wavg([bone_error(j, ref_bones) for j in dances]),
        "diversity_cm": diversity(np.concatenate([descriptor(j) for j in dances]), rng),
        "nn_train_cm": float(np.median(np.concatenate(
            [nearest_distance(windows_2s(j, 25), bank) for j in dances]))),
    }


# ============================================================================================
# candidate B: auto-conditioned recurrent model (kept here for the record)
# ============================================================================================
class ACRNN(nn.Module):
    """Previous frame + music -> Gaussian over the next frame's change (standardised units)."""

    def __init__(self, cond_dim: int, motion_dim: int, hidden: int = 256):
        super().__init__()
        self.cond_dim, self.motion_dim, self.hidden = cond_dim, motion_dim, hidden
        self.inp = nn.Linear(motion_dim + cond_dim, hidden)
        self.cells = nn.ModuleList([nn.GRUCell(hidden, hidden), nn.GRUCell(hidden, hidden)])
        self.out = nn.Linear(hidden, 2 * motion_dim)
        for name, dim in (("motion_mean", motion_dim), ("motion_std", motion_dim),
                          ("cond_mean", cond_dim), ("cond_std", cond_dim)):
            self.register_buffer(name, torch.zeros(dim) if "mean" in name else torch.ones(dim))

    def step(self, x, c, h):
        z = F.gelu(self.inp(torch.cat([x, c], -1)))
        new = []
        for cell, hh in zip(self.cells, h, strict=True):
            z = cell(z, hh)
            new.append(z)
        mu, log_sigma = self.out(z).chunk(2, -1)
        return x + mu, log_sigma.clamp(-6, 2), new

    def unroll(self, x, c, gt_len=5, own_len=5):
        """Auto-conditioned pass over [B, T, D]: ground truth input for gt_len frames, then own means."""
        B, T, _ = x.shape
        h = [x.new_zeros(B, self.hidden) for _ in self.cells]
        prev, mus, sig = x[:, 0], [], []
        for t in range(T - 1):
            if t % (gt_len + own_len) < gt_len:
                prev = x[:, t]
            mu, ls, h = self.step(prev, c[:, t + 1], h)
            mus.append(mu)
            sig.append(ls)
            prev = mu
        return torch.stack(mus, 1), torch.stack(sig, 1)

    @torch.no_grad()
    def generate(self, cond_raw: np.ndarray, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
        g = torch.Generator().manual_seed(int(seed))
        c = (torch.from_numpy(cond_raw.astype(np.float32)) - self.cond_mean) / self.cond_std
        h = [torch.zeros(1, self.hidden) for _ in self.cells]
        x = torch.zeros(1, self.motion_dim)  # the training mean pose
        out = [x[0]]
        for t in range(1, len(c)):
            mu, ls, h = self.step(x, c[t:t + 1], h)
            x = mu + temperature * ls.exp() * torch.randn(mu.shape, generator=g)
            out.append(x[0])
        return (torch.stack(out) * self.motion_std + self.motion_mean).numpy()


def fit_acrnn(fs, budget_s: float, on_step, seed: int = 0, window: int = 100, batch: int = 32):
    from melodance.models.vqgpt import _windows, song_arrays

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    train = song_arrays(fs, "train")
    conds, motions = [c for c, _ in train], [m for _, m in train]
    model = ACRNN(conds[0].shape[1], motions[0].shape[1])
    allm, allc = np.concatenate(motions), np.concatenate(conds)
    model.motion_mean.copy_(torch.from_numpy(allm.mean(0)))
    model.motion_std.copy_(torch.from_numpy(np.maximum(allm.std(0), 1e-3)))
    model.cond_mean.copy_(torch.from_numpy(allc.mean(0)))
    model.cond_std.copy_(torch.from_numpy(np.maximum(allc.std(0), 1e-3)))
    nm = [(torch.from_numpy(m) - model.motion_mean) / model.motion_std for m in motions]
    nc = [(torch.from_numpy(c) - model.cond_mean) / model.cond_std for c in conds]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    t0, step = time.perf_counter(), 0
    while time.perf_counter() - t0 < budget_s:
        step += 1
        which, starts = _windows(motions, window, rng, batch)
        x = torch.stack([nm[i][s:s + window] for i, s in zip(which, starts, strict=True)])
        c = torch.stack([nc[i][s:s + window] for i, s in zip(which, starts, strict=True)])
        mu, ls = model.unroll(x, c)
        tgt = x[:, 1:]
        nll = (ls + 0.5 * ((tgt - mu) / ls.exp()) ** 2).mean()
        vel = F.mse_loss(mu.diff(dim=1), tgt.diff(dim=1))
        loss = nll + vel
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 50 == 0:
            on_step("acrnn", step, time.perf_counter() - t0, {"loss": loss.item(), "nll": nll.item(),
                                                              "vel": vel.item()})
    return model


# ============================================================================================
# commands
# ============================================================================================
def _setup_mlflow():
    import mlflow

    db = REPO / "mlflow.db"
    mlflow.set_tracking_uri(f"sqlite:///{db.as_posix()}")
    if mlflow.get_experiment_by_name(EXPERIMENT) is None:
        mlflow.create_experiment(EXPERIMENT, artifact_location=(REPO / "mlartifacts").as_uri())
    mlflow.set_experiment(EXPERIMENT)
    return mlflow


def load_candidate(name: str):
    path = OUT / f"{name}.pt"
    if name.startswith("vqgpt"):
        from melodance.models.vqgpt import VQGPTDancer

        model, extra = VQGPTDancer.load(path)
        return model, extra
    payload = torch.load(path, map_location="cpu", weights_only=True)
    model = ACRNN(*payload["dims"])
    model.load_state_dict(payload["state_dict"])
    return model.eval(), payload["extra"]


def cmd_train(args) -> None:
    from melodance.features.pipeline import load_features
    from melodance.io import atomic_path

    torch.set_num_threads(1)
    fs = load_features(args.features)
    mlflow = _setup_mlflow()
    OUT.mkdir(parents=True, exist_ok=True)
    name = args.name or args.candidate
    with mlflow.start_run(run_name=f"{name}-train") as run:
        mlflow.set_tag("candidate", args.candidate)
        curve = []

        def on_step(stage, step, elapsed, figs):
            curve.append({"stage": stage, "step": step, "elapsed_s": elapsed, **figs})
            mlflow.log_metrics({f"{stage}.{k}": v for k, v in figs.items()}
                               | {f"{stage}.elapsed_s": elapsed}, step=step)
            print(stage, step, f"{elapsed:.0f}s", {k: round(v, 4) for k, v in figs.items()}, flush=True)

        t0 = time.perf_counter()
        if args.candidate == "vqgpt":
            from dataclasses import asdict

            from melodance.models.vqgpt import VQGPTConfig, fit

            if args.defaults:  # the family's own recipe: step counts, not time
                cfg = VQGPTConfig()
            else:
                cfg = VQGPTConfig(vq_budget_s=args.budget_s * args.vq_share,
                                  gpt_budget_s=args.budget_s * (1 - args.vq_share),
                                  vq_steps=10**6, gpt_steps=10**6)
            tokenizer = None
            if args.tokenizer:  # reuse a trained VQ-VAE: train the GPT only
                tokenizer, _ = load_candidate(args.tokenizer)
                cfg.gpt_budget_s = args.budget_s
                mlflow.set_tag("tokenizer", args.tokenizer)
            mlflow.log_params(asdict(cfg))
            model = fit(fs, cfg, on_step=on_step, tokenizer=tokenizer)
            train_s = time.perf_counter() - t0
            model.save(OUT / f"{name}.pt", extra={"run_id": run.info.run_id, "train_s": train_s})
        else:
            mlflow.log_params({"hidden": 256, "window": 100, "batch": 32, "gt_len": 5, "own_len": 5,
                               "budget_s": args.budget_s})
            model = fit_acrnn(fs, args.budget_s, on_step)
            train_s = time.perf_counter() - t0
            with atomic_path(OUT / f"{name}.pt") as tmp:
                torch.save({"dims": [model.cond_dim, model.motion_dim], "state_dict": model.state_dict(),
                            "extra": {"run_id": run.info.run_id, "train_s": train_s}}, tmp)
        mlflow.log_metric("train_wall_s", train_s)
        (OUT / f"{name}_curve.json").write_text(json.dumps(curve))
        mlflow.log_artifact(str(OUT / f"{name}_curve.json"))
    print(f"{name}: trained in {train_s:.0f} s -> {OUT / (name + '.pt')}")


def real_reference(fs):
    """Dataset bone lengths (train mean), the bank of training windows, the real test dances."""
    from melodance.models.vqgpt import song_arrays

    train = [body_joints(m) for _, m in song_arrays(fs, "train")]
    ref_bones = np.concatenate([bone_lengths(j) for j in train]).mean(0)
    bank = torch.from_numpy(np.concatenate([windows_2s(j, 5) for j in train]).astype(np.float32))
    test = song_arrays(fs, "test")
    return ref_bones, bank, test


@torch.no_grad()
def vq_reconstruction_cm(model, motions: list[np.ndarray]) -> float:
    """Mean per-joint distance (cm) between real dances and their VQ-VAE reconstruction (for a
    model of the pose facing one way, in that frame: the turn it integrates is not an error of
    the pose)."""
    errs, frames = [], []
    d = model.cfg.down
    for m in motions:
        m = m[:len(m) // d * d]
        rep = model.to_rep(torch.from_numpy(m))
        _, tok, _ = model.vqvae.encode(model.norm_motion(rep).unsqueeze(0))
        rec = model.denorm_motion(model.vqvae.decode_tokens(tok)[0])
        if model.cfg.canonical:  # back to motion features, still facing one way (no turn)
            from melodance.models.vqgpt import from_canonical

            rep, rec = (from_canonical(torch.cat([x[:, :-1], torch.zeros_like(x[:, -1:])], dim=1))
                        for x in (rep, rec))
        errs.append(np.linalg.norm(body_joints(rec.numpy()) - body_joints(rep.numpy()), axis=-1).mean())
        frames.append(len(m))
    return float(np.average(errs, weights=frames))


def cmd_measure(args) -> None:
    from melodance.features.pipeline import load_features

    torch.set_num_threads(1)
    fs = load_features(args.features)
    ref_bones, bank, test = real_reference(fs)
    real = figures([body_joints(m) for _, m in test], ref_bones, bank)
    rows = {"real test": real}
    mean_pose = [np.repeat(m.mean(0, keepdims=True), len(m), 0) for _, m in test]
    rows["mean pose"] = figures([body_joints(m) for m in mean_pose], ref_bones, bank)
    mlflow = _setup_mlflow()
    for name in args.candidates:
        model, extra = load_candidate(name)
        per_seed, gen_s, frames = [], 0.0, 0
        seed_div = []
        for seed in args.seeds:
            dances = []
            for cond, _ in test:
                t0 = time.perf_counter()
                dances.append(body_joints(model.generate(cond, seed=seed, temperature=args.temperature)))
                gen_s += time.perf_counter() - t0
                frames += len(cond)
            per_seed.append(figures(dances, ref_bones, bank))
            if seed_div:
                seed_div.append(float(np.mean([np.linalg.norm(a - b, axis=-1).mean()
                                               for a, b in zip(dances, seed_div[0], strict=True)])))
            else:
                seed_div.append(dances)
        row = {k: float(np.mean([f[k] for f in per_seed])) for k in per_seed[0]}
        row |= {f"{k}_sd": float(np.std([f[k] for f in per_seed])) for k in per_seed[0]}
        row["seed_pair_distance_cm"] = float(np.mean(seed_div[1:])) if len(seed_div) > 1 else float("nan")
        row["x_real_time"] = frames / FPS / gen_s
        row["train_s"] = float(extra.get("train_s", float("nan")))
        for k in ("speed_cm_s", "speed_lp_cm_s", "acc_cm_s2", "diversity_cm", "nn_train_cm"):
            row[f"{k}_ratio"] = row[k] / real[k]
        row["bone_error_ratio"] = row["bone_error"] / real["bone_error"]
        if name.startswith("vqgpt"):
            row["vq_recon_cm"] = vq_reconstruction_cm(model, [m for _, m in test])
        label = name if args.temperature == 1.0 else f"{name} T={args.temperature:g}"
        rows[label] = row
        run_id = extra.get("run_id")
        if run_id:
            with mlflow.start_run(run_id=run_id):
                pre = "test." if args.temperature == 1.0 else f"test_T{args.temperature:g}."
                mlflow.log_metrics({pre + k: v for k, v in row.items() if np.isfinite(v)})
                mlflow.set_tag(f"{pre}seeds", " ".join(map(str, args.seeds)))
    for k in ("real test", "mean pose"):
        for m in ("speed_cm_s", "speed_lp_cm_s", "acc_cm_s2", "diversity_cm", "nn_train_cm"):
            rows[k][f"{m}_ratio"] = rows[k][m] / real[m]
        rows[k]["bone_error_ratio"] = rows[k]["bone_error"] / real["bone_error"]
    cols = ["speed_cm_s_ratio", "speed_lp_cm_s_ratio", "acc_cm_s2_ratio", "still_fraction", "bone_error",
            "bone_error_ratio", "diversity_cm_ratio", "nn_train_cm_ratio", "vq_recon_cm", "x_real_time",
            "train_s"]
    print("| | " + " | ".join(cols) + " |")
    for name, r in rows.items():
        print(f"| {name} | " + " | ".join(f"{r.get(c, float('nan')):.3g}" for c in cols) + " |")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(rows, indent=1))


def cmd_speed(args) -> None:
    """Seconds to generate a 60 s song on one thread (median of repeats), and x real time."""
    from melodance.features.pipeline import load_features
    from melodance.models.vqgpt import song_arrays

    torch.set_num_threads(1)
    fs = load_features(args.features)
    cond = np.concatenate([c for c, _ in song_arrays(fs, "test")])[:int(60 * FPS)]
    for name in args.candidates:
        model, _ = load_candidate(name)
        model.generate(cond[:100], seed=0)  # warm-up
        times = []
        for r in range(args.repeat):
            t0 = time.perf_counter()
            model.generate(cond, seed=r)
            times.append(time.perf_counter() - t0)
        med = float(np.median(times))
        print(f"{name}: 60 s song in {med:.2f} s (median of {args.repeat}) = {60 / med:.0f}x real time")


def cmd_render(args) -> None:
    """Frames of a generated dance beside the real one on a test song, as one PNG."""
    from PIL import Image

    from melodance.features.motion import motion_from_features
    from melodance.features.pipeline import load_features
    from melodance.io import atomic_path
    from melodance.render.draw import SkeletonRenderer, View

    torch.set_num_threads(1)
    fs = load_features(args.features)
    name = fs.split["test"][args.song]
    seq = fs.sequences[name]
    cond = np.concatenate([seq.music, seq.temporal], axis=1)
    model, _ = load_candidate(args.candidate)
    gen = model.generate(cond, seed=args.seed)
    view = View(width=320, height=320)
    frames = [int(args.start_s * FPS + i * args.every_s * FPS) for i in range(args.n)]
    rows = []
    for label, feats in (("real", seq.motion), (f"{args.candidate} seed {args.seed}", gen)):
        j, r = motion_from_features(feats, seq.root_start)
        rend = SkeletonRenderer(j, r, FPS, view, caption=f"{label}: {seq.source}", show_frame=True)
        rows.append(np.concatenate([rend.frame(f) for f in frames], axis=1))
    img = np.concatenate(rows, axis=0)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        # 64 colours: a skeleton on a flat background loses nothing visible, the file 5x less.
        Image.fromarray(img).quantize(64).save(tmp, format="PNG", optimize=True)
    print(f"{out}: frames {frames} of {name}")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--features", default=str(REPO / "outputs" / "features"))
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("candidate", choices=["vqgpt", "acrnn"])
    t.add_argument("--name", help="weights file and run name (default: the candidate)")
    t.add_argument("--budget-s", type=float, default=600.0)
    t.add_argument("--vq-share", type=float, default=0.5, help="vqgpt: share of the budget for the VQ-VAE")
    t.add_argument("--defaults", action="store_true",
                   help="vqgpt: train with VQGPTConfig's defaults (step counts) instead of --budget-s")
    t.add_argument("--tokenizer", help="vqgpt: reuse this trained candidate's VQ-VAE, train the GPT only")
    m = sub.add_parser("measure")
    m.add_argument("candidates", nargs="+")
    m.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    m.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    m.add_argument("--json")
    sp = sub.add_parser("speed")
    sp.add_argument("candidates", nargs="+")
    sp.add_argument("--repeat", type=int, default=5)
    r = sub.add_parser("render")
    r.add_argument("candidate")
    r.add_argument("--out", required=True)
    r.add_argument("--song", type=int, default=0, help="index into the test split")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--start-s", type=float, default=20.0)
    r.add_argument("--every-s", type=float, default=0.4)
    r.add_argument("--n", type=int, default=6)
    args = p.parse_args(argv)
    {"train": cmd_train, "measure": cmd_measure, "speed": cmd_speed, "render": cmd_render}[args.cmd](args)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO / "src"))
    main()
