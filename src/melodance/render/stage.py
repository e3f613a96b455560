"""Side-by-side videos: ground truth and generated dance under the same music.

:func:`render_compare` makes one (``melodance render --compare SEQUENCE``);
:func:`render_split` is the ``render`` stage: every segment of a split,
checked by the Great Expectations output suite (Data Docs beside the
videos), logged to MLflow.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from melodance import io, tracking
from melodance.errors import InputError, MissingInput
from melodance.render.config import RenderConfig


def resolve_segment(fs, name: str) -> str:
    """A feature segment by name (``DANCE_W_1.0``) or by sequence (``DANCE_W_1``: its longest
    segment)."""
    if name in fs.sequences:
        return name
    segs = [n for n, s in fs.sequences.items() if s.source == name]
    if not segs:
        have = sorted({s.source for s in fs.sequences.values()})
        raise InputError(f"no sequence or segment {name!r} in the features "
                         f"(sequences: {', '.join(have[:12])}{' ...' if len(have) > 12 else ''})")
    return max(segs, key=lambda n: (fs.sequences[n].n_frames, n))


def compare_panels(bundle, seg, label: str, view, max_frames: int | None = None, still=None):
    """The side-by-side renderer of a feature segment: ground truth | generated.

    Returns (renderer, frames); ``max_frames`` cuts the dance (generation
    still sees the same music up to there).
    """
    from melodance.features.motion import motion_from_features
    from melodance.render.dance import generate
    from melodance.render.draw import SideBySide, SkeletonRenderer

    n = seg.n_frames if max_frames is None else min(seg.n_frames, max_frames)
    fps = float(bundle.features_meta.get("fps", 25.0))
    gen_j, gen_r = generate(bundle, seg.music[:n], seg.temporal[:n], seg.root_start)
    if still is not None:  # before the slow rendering: a still dance is refused at once
        still(gen_j + gen_r[:, None])
    gt_j, gt_r = motion_from_features(seg.motion[:n], seg.root_start)
    panels = SideBySide([
        SkeletonRenderer(gt_j, gt_r, fps, view, caption=f"{seg.name} | ground truth"),
        SkeletonRenderer(gen_j, gen_r, fps, view, caption=f"generated | {label}"),
    ])
    return panels, n


def _segment_audio(data_dir: Path, seg) -> Path:
    from melodance.data.layout import find_audio

    folder = Path(data_dir) / seg.source
    if not folder.is_dir():
        raise MissingInput(f"{folder}: the song of {seg.name} is not here (pass --data)")
    return find_audio(folder)


def render_compare(features_dir: str | Path, model, data_dir: str | Path, name: str,
                   out: str | Path, cfg: RenderConfig | None = None, *,
                   progress: bool = False, check=None, fs=None, bundle=None,
                   label: str | None = None) -> dict:
    """Write ``out`` (.mp4): ground truth and generated dance of a sequence side by side.

    Args:
        features_dir: the features stage's output (segments, normalisers).
        model: model path or URI (see :func:`melodance.serve.registry.load_bundle`).
        data_dir: the dataset (for the songs).
        name: segment or sequence name.
        cfg: panel size, encoding and check settings, ``max_seconds``.
        check: output check for :func:`~melodance.render.video.write_video` (default: plain).
        fs, bundle, label: already loaded features / model.

    Returns:
        The video's facts, plus ``segment`` and ``frames``.
    """
    from melodance.features.pipeline import load_features
    from melodance.render.dance import check_video_path
    from melodance.render.draw import View
    from melodance.render.video import song_span, write_video
    from melodance.serve.registry import load_bundle

    cfg = cfg or RenderConfig()
    out = check_video_path(out)
    fs = fs if fs is not None else load_features(features_dir)
    seg = fs.sequences[resolve_segment(fs, name)]
    audio_path = _segment_audio(Path(data_dir), seg)
    if bundle is None:
        bundle, label = load_bundle(model)
    fps = float(fs.meta.get("fps", 25.0))
    max_frames = None if cfg.max_seconds is None else int(round(cfg.max_seconds * fps))
    view = replace(View(), width=cfg.width, height=cfg.height)
    from melodance.render.checks import still_check

    fractions = []

    def still(world):
        fractions.append(still_check(world, fps, out.name, cfg.still_speed_cm_s,
                                     1.0 if cfg.allow_still else cfg.max_still_fraction))

    panels, n = compare_panels(bundle, seg, label or "model", view, max_frames, still=still)
    audio = song_span(audio_path, seg.start_s, n / fps)
    facts = write_video(out, panels, fps, audio, preset=cfg.preset, crf=cfg.crf,
                        progress=progress, desc=seg.name, check=check,
                        max_still_s=cfg.max_still_s)
    return {**facts, "segment": seg.name, "frames_expected": n, "still_fraction": fractions[0]}


def render_split(features_dir: str | Path, model_path: str | Path, data_dir: str | Path,
                 out_dir: str | Path, cfg: RenderConfig | None = None, *,
                 log_mlflow: bool = True, progress: bool = False) -> dict:
    """The ``render`` stage: a side-by-side video of every segment of ``cfg.split``.

    Writes into ``out_dir`` (replaced atomically): ``<segment>.mp4``,
    ``videos.json`` (facts and check results per video) and ``data_docs/``
    (the Great Expectations output suite's Data Docs). Fails, naming the
    video and the failed checks, when any video fails the suite.
    """
    from melodance.features.pipeline import load_features
    from melodance.render.checks import KEY, run_output_suite
    from melodance.render.video import VideoCheckError, check_table_row, output_checks
    from melodance.serve.registry import load_bundle

    cfg = cfg or RenderConfig()
    fs = load_features(features_dir)
    names = fs.split.get(cfg.split) or []
    if not names:
        raise InputError(f"{features_dir}: split {cfg.split!r} is empty")
    bundle, label = load_bundle(model_path)
    fps = float(fs.meta.get("fps", 25.0))
    checks = output_checks(fps, audio=True, max_still_s=cfg.max_still_s)
    out_dir = Path(out_dir)
    rows, videos = [], {}
    with io.atomic_dir(out_dir) as tmp:
        for name in names:
            # Each video is measured as it is written; the suite judges them all at the end.
            facts = render_compare(features_dir, None, data_dir, name, tmp / f"{name}.mp4", cfg,
                                   progress=progress, check=lambda p, f: None, fs=fs,
                                   bundle=bundle, label=label)
            facts["path"] = f"{name}.mp4"
            videos[name] = facts
            rows.append({KEY: name, **check_table_row(facts, facts["frames_expected"])})
        outcome = run_output_suite(rows, checks, docs_dir=tmp / "data_docs")
        for name in names:
            videos[name]["failed_checks"] = outcome.failures.get(name, [])
        summary = {"split": cfg.split, "model": label, "n_videos": len(names),
                   "n_failed": sum(bool(v["failed_checks"]) for v in videos.values()),
                   "seconds": round(sum(v["video_s"] for v in videos.values()), 3),
                   "videos": videos, "statistics": outcome.statistics}
        io.write_json(tmp / "videos.json", _jsonable(summary))
        if outcome.failures:
            raise InputError("\n".join(str(VideoCheckError(out_dir / f"{n}.mp4", f))
                                        for n, f in outcome.failures.items()))
    if log_mlflow:
        _log(out_dir, cfg, bundle, summary)
    return summary


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _log(out_dir: Path, cfg: RenderConfig, bundle, summary: dict) -> None:
    train_run = (bundle.extra or {}).get("run_id")
    with tracking.stage_run("render", params={"render": cfg.model_dump()}, run_name="render",
                            tags={"melodance.train_run_id": train_run or "unknown"}):
        tracking.log_metrics({"render.n_videos": summary["n_videos"],
                              "render.n_failed": summary["n_failed"],
                              "render.seconds": summary["seconds"]})
        tracking.log_artifacts(out_dir, "render")
