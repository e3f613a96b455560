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
from pathlib import Path

import numpy as np

from melodance import FPS, io, tracking
from melodance.evaluate import metrics as M
from melodance.evaluate.config import EvaluateConfig
from melodance.evaluate.scoring import (
    SEED_ROW,
    Dance,
    beat_alignment,
    result_rows,
    retrieval_bundle,
    score_rows,
)


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
        from melodance.serve.gate import gate_scores

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
    ground truth and ground truth under another song. ``music_matters``: the same
    permutation test on the model's dances (does a generated dance score higher under
    its own song than under the split's other songs?), for every metric; the ones the
    ground truth validates are the ones to read.
    """
    from melodance.evaluate.validity.core import INFORMATIVE, consistency_scores, split_validity
    from melodance.evaluate.validity.music import music_info_from_features

    seqs = [fs.sequences[n] for n in names]
    musics = [music_info_from_features(s.music, s.beat_frames, fps) for s in seqs]
    min_frames = int(cfg.validity_min_s * fps)
    gt = [t.world for t in truth]
    validity, consistency, matters = {}, {}, {}
    if sum(len(g) >= min_frames for g in gt) >= 2:
        res = split_validity(gt, musics, fps, [s.style for s in seqs], n_perm=cfg.validity_n_perm,
                             seed=cfg.seed, min_frames=min_frames)
        validity = {k: {"gap": float(r.gap), "p_value": float(r.p_value),
                        "informative": int(r.verdict == INFORMATIVE), "verdict": r.verdict}
                    for k, r in res.items()}
        res_model = split_validity([d.world for d in model], musics, fps, [s.style for s in seqs],
                                   n_perm=cfg.validity_n_perm, seed=cfg.seed, min_frames=min_frames)
        matters = {k: {"gap": float(r.gap), "p_value": float(r.p_value),
                       "validated_on_truth": validity[k]["informative"]}
                   for k, r in res_model.items()}
        consistency = {k: float(v) for k, v in consistency_scores(
            [d.world for d in model], gt, musics, fps, min_frames=min_frames).items()
            if isinstance(v, (int, float))}
    return {"validity": validity, "music_motion_consistency": consistency, "music_matters": matters}


def per_sequence_csv(model: list[Dance], truth: list[Dance], fps: float, cfg) -> str:
    buf = _io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["sequence", "frames", "metric_loss_per_frame_cm", "bas_music", "bas_motion",
                "gt_bas_music", "gt_bas_motion"])
    for d, t in zip(model, truth, strict=True):
        bas = beat_alignment(d.music_beats_s, d.world, fps, cfg) + beat_alignment(
            t.music_beats_s, t.world, fps, cfg)
        w.writerow([d.name, len(t.joints), f"{M.metric_loss_per_frame(d.joints, t.joints):.4f}",
                    *(f"{v:.4f}" for v in bas)])
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
