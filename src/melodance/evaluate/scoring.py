"""Scoring dances: one home for what the evaluate stage, the ablations, the champion gate and the
page measure.

A split's dances are generated from their music (:func:`generated_dances`: the one
"generate a split" function), read back as real dances (:func:`split_dances`) and scored
against a reference of real dances (:func:`make_reference`, :func:`score_set`);
:func:`score_rows` does all of it for the rows of the evaluation table. Definitions:
docs/metrics.md. Settings: the ``evaluate`` section (:class:`EvaluateConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from melodance import FPS
from melodance.errors import InputError
from melodance.evaluate import beats as B
from melodance.evaluate import metrics as M
from melodance.evaluate import realism as R
from melodance.evaluate.config import EvaluateConfig
from melodance.features.motion import ROOT_VELOCITY
from melodance.features.temporal import flagged_beats


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


def beat_alignment(music_beats_s: np.ndarray, world: np.ndarray, fps: float, cfg: EvaluateConfig
                   ) -> tuple[float, float]:
    """``(bas_music, bas_motion)`` of one dance (world joints [T, 23, 3] cm) against its music beats
    (seconds), with the evaluate section's detector and tolerance; ``bas_motion`` is nan for a dance
    without kinematic beats (:func:`score_set` averages ``beats.dance_bas`` instead, which scores 0)."""
    kin = B.kinematic_beat_times(world, fps, smooth_s=cfg.kin_smooth_s, method=cfg.kin_beats)
    return (B.bas_music(music_beats_s, kin, sigma_s=cfg.bas_sigma_s),
            B.bas_motion(music_beats_s, kin, sigma_s=cfg.bas_sigma_s))


def _dance(name: str, feats: np.ndarray, seq, fps: float) -> Dance:
    from melodance.features.motion import motion_from_features

    j, r = motion_from_features(feats, seq.root_start)
    return Dance(name, j, r, flagged_beats(seq.temporal) / fps)


def split_dances(fs, names: list[str], fps: float) -> list[Dance]:
    """The real dances of ``names``, with their own music beats."""
    return [_dance(n, fs.sequences[n].motion, fs.sequences[n], fps) for n in names]


def generated_dances(fs, names: list[str], bundle, fps: float) -> list[Dance]:
    """The dances ``bundle`` generates from the music of ``names``."""
    out = []
    for n in names:
        seq = fs.sequences[n]
        j, r = bundle.generate(seq.music, seq.temporal, seq.root_start)
        out.append(Dance(n, j, r, flagged_beats(seq.temporal) / fps))
    return out


def mean_pose_dances(fs, names: list[str], fps: float) -> list[Dance]:
    """The trivial baseline: the mean training pose, standing where the dance starts."""
    mean = np.concatenate([fs.sequences[n].motion for n in fs.split["train"]]).mean(axis=0)
    out = []
    for n in names:
        still = np.broadcast_to(mean, fs.sequences[n].motion.shape).copy()
        still[:, ROOT_VELOCITY] = 0.0  # the baseline stands still where it is (at mean height)
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
            raise InputError(f"no training dance of style {style!r} for the real reference")
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
        raise InputError(f"features: split {split!r} is empty")
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
