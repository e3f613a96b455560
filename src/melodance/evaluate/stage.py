"""The ``evaluate`` stage: whole test sequences generated from their music, scored.

Every metric is computed for the model, for the ground truth of the same
sequences, and for a trivial baseline (the mean training pose, standing
still), so each number has references beside it.
"""

from __future__ import annotations

import csv
import io as _io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from melodance import FPS, io, tracking
from melodance.evaluate import beats as B
from melodance.evaluate import metrics as M
from melodance.evaluate.config import EvaluateConfig


@dataclass
class Dance:
    """One scored dance: world joints [T, 23, 3] cm, root-relative joints, music beats (s)."""

    name: str
    joints: np.ndarray
    root: np.ndarray
    music_beats_s: np.ndarray

    @property
    def world(self) -> np.ndarray:
        return self.joints + self.root[:, None, :]


def clips(x: np.ndarray, clip_frames: int) -> list[np.ndarray]:
    """Non-overlapping clips of ``clip_frames`` frames (the tail shorter than a clip is dropped,
    unless the whole sequence is shorter: then it is one clip)."""
    if len(x) < clip_frames:
        return [x]
    return [x[s:s + clip_frames] for s in range(0, len(x) - clip_frames + 1, clip_frames)]


def _nanmean(values) -> float:
    """Mean over the defined values; nan when none is (e.g. a dance that never stops)."""
    v = np.asarray(values, dtype=float)
    return float(v[np.isfinite(v)].mean()) if np.isfinite(v).any() else float("nan")


def score_set(dances: list[Dance], truth: list[Dance], cfg: EvaluateConfig, fps: float) -> dict:
    """Metrics of ``dances`` against ground truth ``truth`` (same order, same sequences)."""
    out: dict[str, float] = {}
    ml = [M.metric_loss(d.joints, t.joints) for d, t in zip(dances, truth, strict=True)]
    frames = sum(len(t.joints) for t in truth)
    out["metric_loss"] = float(np.sum(ml))
    out["metric_loss_per_frame"] = float(np.sum(ml) / max(frames, 1))
    per_joint = np.stack([M.metric_loss_per_joint(d.joints, t.joints) * len(t.joints)
                          for d, t in zip(dances, truth, strict=True)]).sum(0) / max(frames, 1)
    out.update({f"metric_loss_joint_{j:02d}": float(v) for j, v in enumerate(per_joint)})
    bas_m, bas_k = [], []
    for d in dances:
        kin = B.kinematic_beat_times(d.world, fps, smooth_s=cfg.kin_smooth_s)
        bas_m.append(B.bas_music(d.music_beats_s, kin, sigma_s=cfg.bas_sigma_s))
        bas_k.append(B.bas_motion(d.music_beats_s, kin, sigma_s=cfg.bas_sigma_s))
    out["bas_music"] = _nanmean(bas_m)
    out["bas_motion"] = _nanmean(bas_k)
    clip_frames = int(round(cfg.fid_clip_s * fps))
    gen_k = np.stack([M.kinetic_features(c, fps) for d in dances for c in clips(d.world, clip_frames)])
    gt_k = np.stack([M.kinetic_features(c, fps) for t in truth for c in clips(t.world, clip_frames)])
    gen_g = np.stack([M.geometric_features(c, fps) for d in dances
                      for c in clips(d.world, clip_frames)])
    gt_g = np.stack([M.geometric_features(c, fps) for t in truth for c in clips(t.world, clip_frames)])
    out["fid_k"] = float(M.fid(gen_k, gt_k))
    out["fid_g"] = float(M.fid(gen_g, gt_g))
    out["div_k"] = float(M.diversity(gen_k, gt_k))
    out["div_g"] = float(M.diversity(gen_g, gt_g))
    skate = [M.foot_skating(d.world, fps) for d in dances]
    for key in skate[0]:
        out[key] = _nanmean([s[key] for s in skate])
    out["jitter"] = float(np.mean([M.jitter(d.world, fps) for d in dances]))
    return out


def run_evaluation(features_dir: Path, model_path: Path, out_dir: Path, cfg: EvaluateConfig,
                   *, log_mlflow: bool = True) -> dict:
    from melodance.features.motion import motion_from_features
    from melodance.features.pipeline import load_features
    from melodance.models.bundle import DanceBundle

    fs = load_features(features_dir)
    bundle = DanceBundle.load(model_path)
    names = fs.split.get(cfg.split) or []
    if not names:
        raise ValueError(f"{features_dir}: split {cfg.split!r} is empty")
    fps = float(fs.meta.get("fps", FPS))
    train_pose = np.concatenate([fs.sequences[n].motion for n in fs.split["train"]])
    mean_features = train_pose.mean(axis=0)

    model, truth, still = [], [], []
    for name in names:
        seq = fs.sequences[name]
        beats = np.flatnonzero(seq.temporal[:, 1] > 0.5) / fps
        gt_j, gt_r = motion_from_features(seq.motion, seq.root_start)
        truth.append(Dance(name, gt_j, gt_r, beats))
        j, r = bundle.generate(seq.music, seq.temporal, seq.root_start)
        model.append(Dance(name, j, r, beats))
        still_feats = np.broadcast_to(mean_features, seq.motion.shape).copy()
        still_feats[:, 69:71] = 0.0  # the baseline stands still where it is (at mean height)
        sj, sr = motion_from_features(still_feats, seq.root_start)
        still.append(Dance(name, sj, sr, beats))

    result = {
        "model": score_set(model, truth, cfg, fps),
        "ground_truth": score_set(truth, truth, cfg, fps),
        "mean_pose_baseline": score_set(still, truth, cfg, fps),
        "n_sequences": len(names),
        "n_frames": int(sum(len(t.joints) for t in truth)),
    }
    result.update(music_validity(fs, names, model, truth, fps, cfg))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    headline = {k: {m: round(v, 5) for m, v in result[k].items() if not m.startswith("metric_loss_joint")}
                for k in ("model", "ground_truth", "mean_pose_baseline")}
    headline.update(n_sequences=result["n_sequences"], n_frames=result["n_frames"],
                    validity=result["validity"],
                    music_motion_consistency=result["music_motion_consistency"])
    io.write_json(out_dir / "metrics.json", headline)
    io.write_text(out_dir / "per_sequence.csv", per_sequence_csv(model, truth, fps, cfg))
    if log_mlflow:
        _log(result, bundle, out_dir, cfg)
    return headline


def music_validity(fs, names, model: list[Dance], truth: list[Dance], fps: float,
                   cfg: EvaluateConfig) -> dict:
    """Does each music-conditioned metric carry information on this split? (docs/metrics-validity.md)

    Scores the split's ground truth under its own and under the other songs
    (permutation test), and ``music_motion_consistency`` of the model beside
    ground truth and ground truth under another song.
    """
    from melodance.evaluate.validity import (
        INFORMATIVE,
        consistency_scores,
        music_info_from_features,
        split_validity,
    )

    seqs = [fs.sequences[n] for n in names]
    musics = [music_info_from_features(s.music, s.beat_frames, fps) for s in seqs]
    min_frames = int(cfg.validity_min_s * fps)
    gt = [t.world for t in truth]
    validity, consistency = {}, {}
    if sum(len(g) >= min_frames for g in gt) >= 2:
        res = split_validity(gt, musics, fps, [s.style for s in seqs], n_perm=cfg.validity_n_perm,
                             seed=cfg.seed, min_frames=min_frames)
        validity = {k: {"gap": float(r.gap), "p_value": float(r.p_value),
                        "informative": int(r.verdict == INFORMATIVE), "verdict": r.verdict}
                    for k, r in res.items()}
        consistency = {k: float(v) for k, v in consistency_scores(
            [d.world for d in model], gt, musics, fps, min_frames=min_frames).items()
            if isinstance(v, (int, float))}
    return {"validity": validity, "music_motion_consistency": consistency}


def per_sequence_csv(model: list[Dance], truth: list[Dance], fps: float, cfg) -> str:
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["sequence", "frames", "metric_loss_per_frame_cm", "bas_music", "bas_motion",
                "gt_bas_music", "gt_bas_motion"])
    for d, t in zip(model, truth, strict=True):
        kin = B.kinematic_beat_times(d.world, fps, smooth_s=cfg.kin_smooth_s)
        kin_t = B.kinematic_beat_times(t.world, fps, smooth_s=cfg.kin_smooth_s)
        w.writerow([d.name, len(t.joints), f"{M.metric_loss_per_frame(d.joints, t.joints):.4f}",
                    f"{B.bas_music(d.music_beats_s, kin, sigma_s=cfg.bas_sigma_s):.4f}",
                    f"{B.bas_motion(d.music_beats_s, kin, sigma_s=cfg.bas_sigma_s):.4f}",
                    f"{B.bas_music(t.music_beats_s, kin_t, sigma_s=cfg.bas_sigma_s):.4f}",
                    f"{B.bas_motion(t.music_beats_s, kin_t, sigma_s=cfg.bas_sigma_s):.4f}"])
    return buf.getvalue()


def _log(result: dict, bundle, out_dir: Path, cfg: EvaluateConfig) -> None:
    train_run = (bundle.extra or {}).get("run_id")
    flat = {f"test.{k}.{m}": v for k in ("model", "ground_truth", "mean_pose_baseline")
            for m, v in result[k].items()}
    flat.update({f"test.validity.{k}.{m}": v for k, r in result["validity"].items()
                 for m, v in r.items() if m != "verdict"})
    flat.update({f"test.music_motion_consistency.{k}": v
                 for k, v in result["music_motion_consistency"].items()})
    verdicts = {f"validity.{k}": r["verdict"] for k, r in result["validity"].items()}
    with tracking.stage_run("evaluate", params={"evaluate": cfg.model_dump()},
                            run_name="evaluate",
                            tags={"melodance.train_run_id": train_run or "unknown"}):
        tracking.log_metrics(flat)
        tracking.set_tags(verdicts)
        tracking.log_artifact(out_dir / "metrics.json")
        tracking.log_artifact(out_dir / "per_sequence.csv")
    if train_run:
        # The training run carries its test metrics too, for side-by-side comparison in the UI.
        tracking.log_metrics_to_run(train_run, flat)
