"""Compare designs of the generative family (``models/vqgpt.py``) on the real data.

Trains :func:`melodance.models.vqgpt.fit` on the training split with
``VQGPTConfig`` fields given as JSON (or loads a saved model), samples every
song of ``--split`` whole from its music, and scores the dances with the
evaluate stage's own code (``evaluate.scoring.score_set`` against
``make_reference``; KID without intervals): motion energy, low-passed speed
and acceleration ratios, still fraction, bone error, KID_k, KID_g, Div_k,
Div_g. ``--reconstruct`` also scores the VQ-VAE's reconstruction of the real
dances (their own tokens decoded: the ceiling the GPT works under).
docs/models.md ("Tokens of the pose facing one way") has the table these
printed. Needs the features of the real data (``melodance data import
../shared/data/music-to-dance && dvc repro features``)::

    python benchmarks/vqgpt_designs.py --set '{"vq_steps": 1500, "gpt_steps": 560}' \\
        --model outputs/families/facing.pt
    python benchmarks/vqgpt_designs.py --model outputs/families/facing.pt --load --split val \\
        --temperature 1.2
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

KEYS = ("motion_energy_ratio", "speed_lowpass_ratio", "accel_ratio", "still_fraction",
        "bone_error_cm", "kid_k", "kid_g", "div_k", "div_g")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", default=str(REPO / "outputs" / "features"))
    ap.add_argument("--model", required=True, help="where the trained model is written (or read, --load)")
    ap.add_argument("--set", default="{}", help="VQGPTConfig fields as JSON, e.g. '{\"vq_steps\": 1500}'")
    ap.add_argument("--load", action="store_true", help="score a saved model instead of training")
    ap.add_argument("--split", default="test")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--temperature", type=float, default=None)
    ap.add_argument("--reconstruct", action="store_true", help="also score the VQ-VAE's reconstruction")
    args = ap.parse_args()
    import torch

    from melodance import FPS
    from melodance.evaluate import scoring as S
    from melodance.evaluate.config import EvaluateConfig
    from melodance.features.pipeline import load_features
    from melodance.models import vqgpt as V

    torch.set_num_threads(1)
    fs = load_features(args.features)
    if args.load:
        model, _ = V.VQGPTDancer.load(args.model)
    else:
        cfg = V.VQGPTConfig(**json.loads(args.set))
        t0 = time.perf_counter()
        model = V.fit(fs, cfg, on_step=lambda phase, step, el, f: step % 200 == 0 and print(
            phase, step, f"{el:.0f} s", {k: round(v, 3) for k, v in f.items()}, flush=True))
        print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
        Path(args.model).parent.mkdir(parents=True, exist_ok=True)
        model.save(args.model)
    fps, cfg_e, names = float(fs.meta.get("fps", FPS)), EvaluateConfig(), fs.split[args.split]
    truth = S.split_dances(fs, names, fps)
    ref = S.make_reference(truth, S.split_dances(fs, fs.split["train"], fps), fps, cfg_e)

    def show(tag: str, dances) -> None:
        r = S.score_set(dances, ref, cfg_e, fps, None, intervals=False)
        print(f"{args.split} {tag}: " + " ".join(f"{k}={r[k]:.3f}" for k in KEYS), flush=True)

    if args.reconstruct:
        rec, d = [], model.cfg.down
        for n in names:
            s = fs.sequences[n]
            m = torch.from_numpy(s.motion[:len(s.motion) // d * d].astype(np.float32))
            with torch.no_grad():
                _, tok, _ = model.vqvae.encode(model.norm_motion(model.to_rep(m)).unsqueeze(0))
                y = model.denorm_motion(model.vqvae.decode_tokens(tok)[0])
                start = float(V.heading(m[:1])[0]) if model.cfg.canonical else 0.0
                y = model.from_rep(y, start).numpy()
            rec.append(S._dance(n, y, s, fps))
        show("VQ-VAE reconstruction", rec)
    sampling = {} if args.temperature is None else {"temperature": args.temperature}
    for seed in args.seeds:
        gen = []
        for n in names:
            s = fs.sequences[n]
            cond = np.concatenate([s.music, s.temporal], 1).astype(np.float32)
            gen.append(S._dance(n, model.generate(cond, seed=seed, **sampling), s, fps))
        show(f"seed {seed}", gen)
    return 0


if __name__ == "__main__":
    sys.exit(main())
