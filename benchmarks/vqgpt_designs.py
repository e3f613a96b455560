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
    python benchmarks/vqgpt_designs.py --set '{"vq_steps": 1000, "gpt_steps": 0, "turn_weight": 10}' \\
        --model outputs/families/turn10.pt --split val --reconstruct --seeds    # the VQ-VAE alone
    python benchmarks/vqgpt_designs.py --tokenizer outputs/train/model.pt --set '{"token_shifts": 1}' \\
        --model outputs/families/shifts1.pt --split val --music                # the GPT alone

``--load`` and ``--tokenizer`` also take the train stage's bundle (``outputs/train/model.pt``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

KEYS = ("motion_energy_ratio", "speed_lowpass_ratio", "accel_ratio", "still_fraction",
        "bone_error_cm", "kid_k", "kid_g", "div_k", "div_g")


def load_dancer(path: str):
    """The VQGPTDancer of this script's file or of a pipeline bundle (``outputs/train/model.pt``)."""
    from melodance.errors import InputError
    from melodance.models import vqgpt as V
    from melodance.models.bundle import DanceBundle

    try:
        return V.VQGPTDancer.load(path)[0]
    except InputError:  # not this script's format: a bundle of the train stage
        bundle = DanceBundle.load(path)
        if bundle.family != "vqgpt":
            raise SystemExit(f"{path}: a {bundle.family} bundle, not vqgpt") from None
        return bundle.model.dancer


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features", default=str(REPO / "outputs" / "features"))
    ap.add_argument("--model", required=True, help="where the trained model is written (or read, --load: "
                    "this script's file or the train stage's outputs/train/model.pt)")
    ap.add_argument("--set", default="{}", help="VQGPTConfig fields as JSON, e.g. '{\"vq_steps\": 1500}'")
    ap.add_argument("--load", action="store_true", help="score a saved model instead of training")
    ap.add_argument("--split", default="test")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0, 1],
                    help="sampling seeds (none: score only the reconstruction)")
    ap.add_argument("--tokenizer", help="train only the GPT, on the VQ-VAE of this saved model or bundle")
    ap.add_argument("--music", action="store_true",
                    help="also the music-matters permutation test of onset_foot_coherence per seed")
    ap.add_argument("--temperature", type=float, default=None)
    ap.add_argument("--top-k", type=int, default=None, help="sample from the k likeliest codes only")
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
        model = load_dancer(args.model)
    else:
        tokenizer = load_dancer(args.tokenizer) if args.tokenizer else None
        base = tokenizer.cfg if tokenizer is not None else V.VQGPTConfig()
        cfg = dataclasses.replace(base, **json.loads(args.set))
        t0 = time.perf_counter()
        def on_step(phase, step, elapsed_s, figures):
            if step % 200 == 0:
                rounded = {k: round(v, 3) for k, v in figures.items()}
                print(phase, step, f"{elapsed_s:.0f} s", rounded, flush=True)

        model = V.fit(fs, cfg, tokenizer=tokenizer, on_step=on_step)
        print(f"trained in {time.perf_counter() - t0:.0f} s", flush=True)
        Path(args.model).parent.mkdir(parents=True, exist_ok=True)
        model.save(args.model)
    fps, cfg_e, names = float(fs.meta.get("fps", FPS)), EvaluateConfig(), fs.split[args.split]
    truth = S.split_dances(fs, names, fps)
    ref = S.make_reference(truth, S.split_dances(fs, fs.split["train"], fps), fps, cfg_e)

    def show(tag: str, dances) -> None:
        r = S.score_set(dances, ref, cfg_e, fps, None, intervals=False)
        line = " ".join(f"{k}={r[k]:.3f}" for k in KEYS)
        if args.music:
            from melodance.evaluate.stage import music_validity

            mm = music_validity(fs, names, dances, truth, fps, cfg_e)["music_matters"]
            m = mm.get("onset_foot_coherence")
            if m:
                line += f" onset_foot_own_song_gap={m['gap']:+.4f} p={m['p_value']:.3f}"
        print(f"{args.split} {tag}: {line}", flush=True)

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
        from melodance.evaluate.realism import motion_stats

        # Per song, reconstructed / real: low-passed body-centred speed and floor travel
        # (the fast Cha-cha is where the tokens lose most, docs/models.md).
        per_song = []
        for r, t in zip(rec, truth, strict=True):
            a, b = motion_stats(r.world, fps), motion_stats(t.world, fps)
            per_song.append(f"{r.name} {a['speed_lowpass_cm_s'] / b['speed_lowpass_cm_s']:.2f}"
                            f"/{a['root_travel_m_min'] / b['root_travel_m_min']:.2f}")
        print("reconstruction per song, speed/travel:", " ".join(per_song), flush=True)
    sampling = {k: v for k, v in (("temperature", args.temperature), ("top_k", args.top_k)) if v is not None}
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
