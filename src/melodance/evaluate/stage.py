"""The ``evaluate`` stage: whole test sequences generated from their music, scored.

Every metric is computed for four rows (:data:`ROWS`): the model; a real
reference (training dances of the split's styles, as many clips as the split
has: what a real dance that is not the test dance scores); the retrieval
baseline (:mod:`melodance.models.retrieval`, fitted here in well under a
second); the mean training pose standing still. With ``seed_model`` (the
``train_seed`` stage: the seed's variant d), a fifth row ``seed_d`` scores it
the same way, so a new family is compared with the reproduction. Distances are
against the split's real dances, with bootstrap intervals. Definitions:
docs/metrics.md.
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
from melodance.evaluate import realism as R
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


ROWS = ("model", "real_reference", "retrieval", "mean_pose")
SEED_ROW = "seed_d"
"""The optional row of the seed's variant d (``melodance evaluate --seed-model``)."""


def result_rows(result: dict) -> tuple[str, ...]:
    """The rows a result holds: :data:`ROWS`, and ``seed_d`` when it was scored."""
    return ROWS + ((SEED_ROW,) if SEED_ROW in result else ())
"""The rows of the evaluation table, in order (docs/metrics.md)."""


@dataclass
class Reference:
    """What every row is measured against: the split's real dances and the training pool.

    truth_k, truth_g: standardised kinetic / geometric features of the split's real clips;
    scale_k, scale_g: (mean, scale) fitted on all training clips (realism.feature_scaler);
    motion: the split's real motion statistics (denominators of the ratios);
    still_cm_s: the still rule's threshold; bones_cm: the dataset's bone lengths;
    lengths: body lengths of the real skeleton (geometric feature thresholds).
    """

    truth_k: np.ndarray
    truth_g: np.ndarray
    scale_k: tuple
    scale_g: tuple
    motion: dict
    still_cm_s: float
    bones_cm: np.ndarray
    lengths: M.BodyLengths


def clip_features(dances: list[Dance], fps: float, clip_frames: int, lengths: M.BodyLengths
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Kinetic [N, 69] and geometric [N, 32] features of every clip of ``dances``."""
    cl = [c for d in dances for c in clips(d.world, clip_frames)]
    return (np.stack([M.kinetic_features(c, fps) for c in cl]),
            np.stack([M.geometric_features(c, fps, lengths=lengths) for c in cl]))


def make_reference(truth: list[Dance], pool: list[Dance], fps: float, cfg: EvaluateConfig
                   ) -> Reference:
    """The reference of a split: its real dances, scaled by the training pool ``pool``."""
    pool_world = [d.world for d in pool]
    lengths = M.BodyLengths(*np.median([M.body_lengths(w) for w in pool_world], axis=0))
    clip_frames = int(round(cfg.fid_clip_s * fps))
    pool_k, pool_g = clip_features(pool, fps, clip_frames, lengths)
    scale_k = R.feature_scaler(pool_k, cfg.scale_floor_frac)
    scale_g = R.feature_scaler(pool_g, cfg.scale_floor_frac)
    tk, tg = clip_features(truth, fps, clip_frames, lengths)
    stats = [R.motion_stats(d.world, fps) for d in truth]
    motion = {k: float(np.mean([s[k] for s in stats])) for k in stats[0]}
    windows = np.concatenate([R.window_motion(w, fps) for w in pool_world])
    return Reference((tk - scale_k[0]) / scale_k[1], (tg - scale_g[0]) / scale_g[1], scale_k, scale_g,
                     motion, float(np.percentile(windows, cfg.still_percentile)),
                     R.reference_bone_lengths(pool_world), lengths)


def score_set(dances: list[Dance], ref: Reference, cfg: EvaluateConfig, fps: float,
              truth: list[Dance] | None = None, intervals: bool = True) -> dict:
    """Metrics of a set of dances against the reference ``ref``.

    With ``truth`` (the same sequences, same order) the paired metric_loss is
    added; distances get bootstrap intervals when ``intervals``.
    """
    out: dict[str, float] = {}
    if truth is not None:
        ml = [M.metric_loss(d.joints, t.joints) for d, t in zip(dances, truth, strict=True)]
        out["metric_loss_per_frame"] = float(np.sum(ml) / max(sum(len(t.joints) for t in truth), 1))
    stats = [R.motion_stats(d.world, fps) for d in dances]
    for key in stats[0]:
        out[key] = float(np.mean([s[key] for s in stats]))
    for key, name in (("speed_cm_s", "speed_ratio"), ("speed_lowpass_cm_s", "speed_lowpass_ratio"),
                      ("energy_cm2_s2", "motion_energy_ratio"), ("accel_cm_s2", "accel_ratio")):
        out[name] = out[key] / ref.motion[key] if ref.motion[key] > 0 else float("nan")
    out["still_fraction"] = float(np.mean(np.concatenate(
        [R.window_motion(d.world, fps) for d in dances]) < ref.still_cm_s))
    out["bone_error_cm"] = float(np.mean([R.bone_length_error(d.world, ref.bones_cm) for d in dances]))
    clip_frames = int(round(cfg.fid_clip_s * fps))
    gk, gg = clip_features(dances, fps, clip_frames, ref.lengths)
    gk, gg = (gk - ref.scale_k[0]) / ref.scale_k[1], (gg - ref.scale_g[0]) / ref.scale_g[1]
    for feats, truth_f, tag in ((gk, ref.truth_k, "k"), (gg, ref.truth_g, "g")):
        for kind in ("kid", "fid"):
            if intervals:
                iv = R.distance_interval(feats, truth_f, kind, n_boot=cfg.n_boot, seed=cfg.seed)
                out.update({f"{kind}_{tag}": iv.value, f"{kind}_{tag}_low": iv.low,
                            f"{kind}_{tag}_high": iv.high})
            else:
                out[f"{kind}_{tag}"] = (R.kid(feats, truth_f) if kind == "kid"
                                        else M.frechet_distance(feats, truth_f))
        out[f"div_{tag}"] = float(M.diversity(feats)) if len(feats) > 1 else float("nan")
    bas_m, bas_k, no_beats = [], [], 0
    for d in dances:
        kin = B.kinematic_beat_times(d.world, fps, smooth_s=cfg.kin_smooth_s, method=cfg.kin_beats)
        no_beats += int(kin.size == 0)
        m, k = B.dance_bas(d.music_beats_s, kin, sigma_s=cfg.bas_sigma_s)
        bas_m.append(m)
        bas_k.append(k)
    out["bas_music"] = _nanmean(bas_m)
    out["bas_motion"] = _nanmean(bas_k)
    out["n_without_kinematic_beats"] = no_beats
    skate = [M.foot_skating(d.world, fps) for d in dances]
    for key in skate[0]:
        out[key] = _nanmean([s[key] for s in skate])
    out["jitter"] = float(np.mean([M.jitter(d.world, fps) for d in dances]))
    return out


def _dance(name: str, feats: np.ndarray, seq, fps: float) -> Dance:
    from melodance.features.motion import motion_from_features

    j, r = motion_from_features(feats, seq.root_start)
    return Dance(name, j, r, np.flatnonzero(seq.temporal[:, 1] > 0.5) / fps)


def split_dances(fs, names: list[str], fps: float) -> list[Dance]:
    """The real dances of ``names``, with their own music beats."""
    return [_dance(n, fs.sequences[n].motion, fs.sequences[n], fps) for n in names]


def generated_dances(fs, names: list[str], bundle, fps: float) -> list[Dance]:
    """The dances ``bundle`` generates from the music of ``names``."""
    out = []
    for n in names:
        seq = fs.sequences[n]
        j, r = bundle.generate(seq.music, seq.temporal, seq.root_start)
        out.append(Dance(n, j, r, np.flatnonzero(seq.temporal[:, 1] > 0.5) / fps))
    return out


def mean_pose_dances(fs, names: list[str], fps: float) -> list[Dance]:
    """The trivial baseline: the mean training pose, standing where the dance starts."""
    mean = np.concatenate([fs.sequences[n].motion for n in fs.split["train"]]).mean(axis=0)
    out = []
    for n in names:
        still = np.broadcast_to(mean, fs.sequences[n].motion.shape).copy()
        still[:, 69:71] = 0.0  # the baseline stands still where it is (at mean height)
        out.append(_dance(n, still, fs.sequences[n], fps))
    return out


def real_reference_dances(fs, names: list[str], fps: float, cfg: EvaluateConfig) -> list[Dance]:
    """Real dances that are not the split's: training clips of the split's styles, as many clips
    of each style as the split has (drawn with ``cfg.seed``), cut to ``fid_clip_s``."""
    clip_frames = int(round(cfg.fid_clip_s * fps))
    want: dict[str, int] = {}
    for n in names:
        want[fs.sequences[n].style] = want.get(fs.sequences[n].style, 0) + len(
            clips(fs.sequences[n].motion, clip_frames))
    rng = np.random.default_rng(cfg.seed)
    out = []
    for style, count in sorted(want.items()):
        pool = [(n, s) for n in fs.split["train"] if fs.sequences[n].style == style
                for s in range(0, max(len(fs.sequences[n].motion) - clip_frames + 1, 1), clip_frames)]
        if not pool:
            raise ValueError(f"no training dance of style {style!r} for the real reference")
        for i in rng.choice(len(pool), size=count, replace=count > len(pool)):
            n, s = pool[i]
            seq = fs.sequences[n]
            d = _dance(f"{n}@{s}", seq.motion, seq, fps)
            end = s + clip_frames
            out.append(Dance(d.name, d.joints[s:end], d.root[s:end],
                             d.music_beats_s[(d.music_beats_s >= s / fps) & (d.music_beats_s < end / fps)]
                             - s / fps))
    return out


def retrieval_bundle(fs):
    """The retrieval baseline fitted on the training split (seconds)."""
    from melodance.models import ModelConfig
    from melodance.models.bundle import DanceBundle
    from melodance.models.retrieval import RetrievalModel

    return DanceBundle(RetrievalModel.fit(fs, ModelConfig(variant="retrieval")), fs.normalizers, fs.meta)


def score_rows(fs, bundle, split: str, cfg: EvaluateConfig, intervals: bool = True,
               rows: tuple[str, ...] = ROWS, retrieval=None, others: dict | None = None) -> dict:
    """Every row of the table for ``split``: {row: metrics}, plus the real values used.
    ``others``: {row name: bundle} of further models scored like the model."""
    names = fs.split.get(split) or []
    if not names:
        raise ValueError(f"features: split {split!r} is empty")
    fps = float(fs.meta.get("fps", FPS))
    truth = split_dances(fs, names, fps)
    ref = make_reference(truth, split_dances(fs, fs.split["train"], fps), fps, cfg)
    sets: dict[str, tuple[list[Dance], list[Dance] | None]] = {}
    if "model" in rows:
        sets["model"] = (generated_dances(fs, names, bundle, fps), truth)
    if "real_reference" in rows:
        sets["real_reference"] = (real_reference_dances(fs, names, fps, cfg), None)
    if "retrieval" in rows:
        sets["retrieval"] = (generated_dances(fs, names, retrieval or retrieval_bundle(fs), fps), truth)
    if "mean_pose" in rows:
        sets["mean_pose"] = (mean_pose_dances(fs, names, fps), truth)
    for row, other in (others or {}).items():
        sets[row] = (generated_dances(fs, names, other, fps), truth)
    out = {row: score_set(d, ref, cfg, fps, t, intervals) for row, (d, t) in sets.items()}
    out["real"] = {**{f"{k}": round(v, 4) for k, v in ref.motion.items()},
                   "still_threshold_cm_s": round(ref.still_cm_s, 3),
                   "n_sequences": len(names), "n_frames": int(sum(len(t.joints) for t in truth)),
                   "n_clips": int(len(ref.truth_k))}
    out["_dances"] = {row: d for row, (d, _) in sets.items()} | {"truth": truth}
    return out


def run_evaluation(features_dir: Path, model_path: Path, out_dir: Path, cfg: EvaluateConfig,
                   *, log_mlflow: bool = True, gate=None, seed_model: Path | None = None) -> dict:
    from melodance.features.pipeline import load_features
    from melodance.models.bundle import DanceBundle

    fs = load_features(features_dir)
    bundle = DanceBundle.load(model_path)
    fps = float(fs.meta.get("fps", FPS))
    import time

    t0 = time.perf_counter()
    retrieval = retrieval_bundle(fs)
    fit_s = time.perf_counter() - t0
    others = {SEED_ROW: DanceBundle.load(seed_model)} if seed_model is not None else None
    result = score_rows(fs, bundle, cfg.split, cfg, retrieval=retrieval, others=others)
    dances = result.pop("_dances")
    model, truth = dances["model"], dances["truth"]
    result["real"]["retrieval_fit_s"] = round(fit_s, 3)
    if gate is not None:
        from melodance.serve.registry import gate_scores

        result["gate"] = gate_scores(fs, bundle, cfg, gate, retrieval=retrieval)
    result.update(music_validity(fs, fs.split[cfg.split], model, truth, fps, cfg))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = result_rows(result)
    io.write_json(out_dir / "metrics.json", finite(headline(result)))
    io.write_json(out_dir / "all_metrics.json", finite(
        {**{row: {m: _round(v) for m, v in result[row].items()} for row in rows},
         **{k: result[k] for k in result if k not in rows}}))
    io.write_text(out_dir / "per_sequence.csv", per_sequence_csv(model, truth, fps, cfg))
    io.write_text(out_dir / "table.md", markdown_table(result))
    if log_mlflow:
        _log(result, bundle, out_dir, cfg)
    return result


HEADLINE = {"kid_k": "kid_k", "energy": "motion_energy_ratio"}
"""What metrics.json (``dvc metrics show``, ``dvc exp show``) carries per row, under short
names: how far from real dances (KID on kinetic features) and does it move (motion energy
ratio, 1 = like the real dances). The model's figures stand at the top level, each other row
(real reference, retrieval, mean pose, seed_d) as a group beside them, so two experiments
differ in two columns (seed_d's change with the LSTM settings too). Intervals, KID_g, FID,
still fraction, bone error, BAS, metric_loss, the gate's scores and everything else:
all_metrics.json and table.md."""


def headline(result: dict) -> dict:
    """metrics.json's content: :data:`HEADLINE` of the model, then of every other row."""
    def figures(row: str) -> dict:
        return {short: _round(result[row][key]) for short, key in HEADLINE.items() if key in result[row]}

    return {**figures("model"), **{row: figures(row) for row in result_rows(result) if row != "model"}}


def finite(obj):
    """JSON has no infinity or nan: those (a failed gate score, an undefined mean) become null."""
    if isinstance(obj, dict):
        return {k: finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [finite(v) for v in obj]
    if isinstance(obj, float | np.floating) and not np.isfinite(obj):
        return None
    return obj


def _round(v):
    return round(float(v), 5) if isinstance(v, float | np.floating) else v


TABLE = (("speed_lowpass_cm_s", "speed cm/s", "{:.1f}"), ("motion_energy_ratio", "energy ratio", "{:.2f}"),
         ("accel_ratio", "accel ratio", "{:.2f}"), ("still_fraction", "still", "{:.2f}"),
         ("bone_error_cm", "bone err cm", "{:.2f}"), ("root_travel_m_min", "travel m/min", "{:.1f}"),
         ("kid_k", "KID_k [95 %]", "iv"), ("kid_g", "KID_g [95 %]", "iv"),
         ("fid_k", "FID_k [95 %]", "iv"), ("fid_g", "FID_g [95 %]", "iv"),
         ("bas_music", "BAS music", "{:.3f}"), ("bas_motion", "BAS motion", "{:.3f}"),
         ("metric_loss_per_frame", "metric_loss cm/frame", "{:.1f}"))


def markdown_table(result: dict) -> str:
    """The evaluation table (rows model, real reference, retrieval, mean pose) in Markdown."""
    def cell(row: dict, key: str, fmt: str) -> str:
        if key not in row or not np.isfinite(row[key]):
            return "-"
        if fmt == "iv":
            return f"{row[key]:.3g} [{row[key + '_low']:.3g}, {row[key + '_high']:.3g}]"
        return fmt.format(row[key])

    lines = ["| row | " + " | ".join(h for _, h, _ in TABLE) + " |",
             "|---|" + "---|" * len(TABLE)]
    for name in result_rows(result):
        lines.append(f"| {name.replace('_', ' ')} | "
                     + " | ".join(cell(result[name], k, f) for k, _, f in TABLE) + " |")
    return "\n".join(lines) + "\n"


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
    flat = {f"{cfg.split}.{row}.{m}": float(v) for row in result_rows(result)
            for m, v in result[row].items()
            if isinstance(v, int | float) and np.isfinite(v)}
    flat.update({f"{cfg.split}.validity.{k}.{m}": v for k, r in result["validity"].items()
                 for m, v in r.items() if m != "verdict"})
    flat.update({f"{cfg.split}.music_motion_consistency.{k}": v
                 for k, v in result["music_motion_consistency"].items()})
    for row, g in (result.get("gate") or {}).get("scores", {}).items():
        if np.isfinite(g["score"]):
            flat[f"gate.{row}.score"] = g["score"]
    verdicts = {f"validity.{k}": r["verdict"] for k, r in result["validity"].items()}
    with tracking.stage_run("evaluate", params={"evaluate": cfg.model_dump()},
                            run_name="evaluate",
                            tags={"melodance.train_run_id": train_run or "unknown"}):
        tracking.log_metrics(flat)
        tracking.set_tags(verdicts)
        for name in ("metrics.json", "all_metrics.json", "per_sequence.csv", "table.md"):
            tracking.log_artifact(out_dir / name)
    if train_run:
        # The training run carries its test metrics too, for side-by-side comparison in the UI.
        tracking.log_metrics_to_run(train_run, flat)
