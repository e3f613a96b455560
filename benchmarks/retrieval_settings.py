"""Choose the retrieval baseline's settings on the validation split (never on test).

Fits :class:`melodance.models.retrieval.RetrievalModel` on the training split
for each setting below and scores it on ``--split`` (default ``val``) with the
evaluate stage's own code (:func:`melodance.evaluate.scoring.score_set` against
:func:`~melodance.evaluate.scoring.make_reference`), beside the real reference
row (training dances of the split's styles). Prints one Markdown table: motion
energy ratio, bone error, KID_k and KID_g with their bootstrap 95 % intervals,
whether each KID lies inside the real reference's interval, the fit time, and
how many distinct training dances and styles a generated dance draws on.

Needs the features of the real data (``melodance data import
../shared/data/music-to-dance && dvc repro features``)::

    python benchmarks/retrieval_settings.py [--features outputs/features] [--split val]
        [--only NAME ...] [--n-boot 300]

The settings chosen here are ``ModelConfig``'s ``retrieval_*`` defaults;
docs/metrics.md has the table this printed and the test figures.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from melodance import FPS  # noqa: E402
from melodance.evaluate import scoring as S  # noqa: E402
from melodance.evaluate.config import EvaluateConfig  # noqa: E402
from melodance.features.pipeline import load_features  # noqa: E402
from melodance.models import ModelConfig  # noqa: E402
from melodance.models.bundle import DanceBundle  # noqa: E402
from melodance.models.retrieval import RetrievalModel  # noqa: E402

SETTINGS: dict[str, dict] = {
    f"beats {b}, tempo {t:g}, pose {p:g}, songs {n}": {
        "retrieval_beats": b, "retrieval_tempo_weight": t, "retrieval_pose_weight": p, "retrieval_songs": n}
    for b in (2, 4, 8) for t in (0.0, 1.0) for p in (1.0, 3.0) for n in (0, 5)
}
"""Name -> ``ModelConfig`` fields that differ from the defaults."""


def lift_share(dances, lengths) -> float:
    """Share of frames with an ankle more than 1.2 humerus lengths above the frame's lowest joint
    (the geometric features' ``foot_raised`` relation), %."""
    w = np.concatenate([d.world for d in dances])
    up = np.maximum(w[:, 9, 1], w[:, 18, 1]) - w[..., 1].min(axis=1)
    return float(100.0 * np.mean(up > 1.2 * lengths.humerus))


def provenance(model: RetrievalModel, fs, train: list[str]) -> tuple[int, int]:
    """Distinct training dances and styles the last generated dance drew its pieces from."""
    first = {}
    offset = 0
    for n in train:
        first[offset] = n
        offset += len(fs.sequences[n].motion)
    src = [first[int(model.seq_start[c])] for _, _, c, _, _ in model.last_pieces]
    return len(set(src)), len({fs.sequences[n].style for n in src})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--features", type=Path, default=REPO / "outputs" / "features")
    ap.add_argument("--split", default="val")
    ap.add_argument("--only", nargs="*", help="setting names to run (default: all)")
    ap.add_argument("--n-boot", type=int, default=EvaluateConfig().n_boot)
    args = ap.parse_args(argv)
    if args.split == "test":
        print("note: settings are chosen on val; scoring test here is a confirmation, not a choice",
              file=sys.stderr)
    import torch

    torch.set_num_threads(1)
    fs = load_features(args.features)
    fps = float(fs.meta.get("fps", FPS))
    cfg = EvaluateConfig(split=args.split, n_boot=args.n_boot)
    names, train = fs.split[args.split], fs.split["train"]
    truth = S.split_dances(fs, names, fps)
    ref = S.make_reference(truth, S.split_dances(fs, train, fps), fps, cfg)
    real_d = S.real_reference_dances(fs, names, fps, cfg)
    real = S.score_set(real_d, ref, cfg, fps)

    def iv(row, key):
        return f"{row[key]:.3f} [{row[key + '_low']:.3f}, {row[key + '_high']:.3f}]"

    def inside(row, key):
        return "yes" if real[key + "_low"] <= row[key] <= real[key + "_high"] else "no"

    print(f"split {args.split}: {len(names)} dances, {len(ref.truth_k)} clips; styles "
          f"{dict(collections.Counter(fs.sequences[n].style for n in names))}\n")
    print("| setting | energy ratio | bone err cm | KID_k [95 %] | in | KID_g [95 %] | in "
          "| fit s | dances/song | styles/song | lifts % |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    print(f"| real reference | {real['motion_energy_ratio']:.2f} | {real['bone_error_cm']:.2f} | "
          f"{iv(real, 'kid_k')} | | {iv(real, 'kid_g')} | | | | | {lift_share(real_d, ref.lengths):.2f} |")
    print(f"| {args.split} dances | 1.00 | | | | | | | | | {lift_share(truth, ref.lengths):.2f} |")
    chosen: list[tuple[float, str]] = []
    for name, fields in SETTINGS.items():
        if args.only and name not in args.only:
            continue
        mcfg = ModelConfig(variant="retrieval", **fields)
        t0 = time.perf_counter()
        model = RetrievalModel.fit(fs, mcfg)
        fit_s = time.perf_counter() - t0
        bundle = DanceBundle(model, fs.normalizers, fs.meta)
        dances, used = [], []
        for n in names:
            dances += S.generated_dances(fs, [n], bundle, fps)
            used.append(provenance(model, fs, train))
        row = S.score_set(dances, ref, cfg, fps, truth)
        u = np.array(used, float)
        print(f"| {name} | {row['motion_energy_ratio']:.2f} | {row['bone_error_cm']:.2f} | "
              f"{iv(row, 'kid_k')} | {inside(row, 'kid_k')} | {iv(row, 'kid_g')} | {inside(row, 'kid_g')} | "
              f"{fit_s:.2f} | {u[:, 0].mean():.1f} | {u[:, 1].mean():.1f} | "
              f"{lift_share(dances, ref.lengths):.2f} |", flush=True)
        if 0.8 <= row["motion_energy_ratio"] <= 1.2 and inside(row, "kid_k") == inside(row, "kid_g") == "yes":
            chosen.append((row["kid_k"] + row["kid_g"], name))
    # The rule, fixed before looking at test: energy ratio 0.8-1.2 and both KIDs inside the real
    # reference's intervals, then the lowest KID_k + KID_g (the champion gate's distance terms).
    print(f"\nchosen by the rule: {min(chosen)[1] if chosen else 'none'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
