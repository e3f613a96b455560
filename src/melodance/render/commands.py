"""``melodance dance`` and ``melodance render``: skeleton videos with the music."""

from __future__ import annotations

import argparse

from melodance import options
from melodance.errors import InputError


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT, e.g. 640x480, got {text!r}") from None
    if w < 64 or h < 64 or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size {text}: both sides even and at least 64 pixels")
    return w, h


def register(sub) -> None:
    p = sub.add_parser(
        "dance", help="generate a dance for a song and write its video (MP4 with the music)",
        description="Extract the song's features, generate a dance with the registry's champion "
        "(or --model) and render it: an MP4 (H.264 + AAC, 25 fps) showing the skeleton with "
        "the song's span underneath. The written video is checked (frame count, fps, audio "
        "length within one frame, not blank or frozen) before it is put in place.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("song", metavar="SONG", help="audio file (mp3, wav, flac, ogg)")
    p.add_argument("-o", "--out", required=True,
                   help="output video, .mp4 (its folder must exist; an existing file is replaced, "
                   "a folder never). All outputs are checked before any work and put in place "
                   "together at the end, or none of them")
    p.add_argument("--model", default=None,
                   help="model: a models:/ or runs:/ URI, or a model.pt bundle "
                   "(default: the registry's champion)")
    p.add_argument("--start", type=float, default=0.0,
                   help="start in the song, seconds (finite, >= 0)")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds to dance (default: to the end of the song)")
    p.add_argument("--motion-out", action="append", default=[], metavar="PATH",
                   help="also write the motion: x.json (dataset skeletons.json layout, plus x.npy "
                   "of world joints), x.npy or x.bvh; repeatable")
    p.add_argument("--size", type=_size, default=(640, 480), help="frame size WIDTHxHEIGHT")
    p.add_argument("--preset", default="veryfast", help="x264 speed preset")
    p.add_argument("--no-ge-check", dest="ge_check", action="store_false",
                   help="check the video with the same bounds evaluated directly instead of the "
                   "Great Expectations output suite (about 3 s faster)")
    p.add_argument("--seed", type=_seed, default=None, metavar="N",
                   help="sampling seed of a generative model: the same seed gives the same dance, "
                   "another seed another dance (default 0; deterministic models ignore it)")
    options.add_no_progress(p)
    p.add_argument("--allow-still", action="store_true",
                   help="write the video even when the dance stands still (more than 25 %% of its "
                        "1 s windows with less body-centred motion than real dances have)")
    p.set_defaults(func=_dance)

    p = sub.add_parser(
        "render", help="side-by-side videos: ground truth | generated, under the same music",
        description="With --compare SEQUENCE: one video of a sequence (or segment) of the "
        "features. Without: the render stage, a video for every segment of a split into --out, "
        "checked by the Great Expectations output suite (Data Docs in OUT/data_docs) and "
        "logged to MLflow. Settings: the render section of params.yaml.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--compare", metavar="SEQUENCE", default=None,
                   help="render this sequence (DANCE_W_1) or segment (DANCE_W_1.0) only")
    p.add_argument("--split", default=None, help="split to render (default: params render.split)")
    options.add_features(p)
    p.add_argument("--model", default=options.MODEL,
                   help="model bundle or models:/ / runs:/ URI")
    p.add_argument("--data", default="data", help="dataset folder (for the songs)")
    p.add_argument("-o", "--out", default=None,
                   help="output: a .mp4 with --compare, else a folder (default outputs/render)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="cut each video to this many seconds (default: params render.max_seconds)")
    options.add_params(p, "render")
    options.add_no_mlflow(p)
    options.add_no_progress(p)
    p.add_argument("--allow-still", action="store_true",
                   help="write the video even when the dance stands still (more than 25 %% of its "
                        "1 s windows with less body-centred motion than real dances have)")
    p.set_defaults(func=_render)


def _seed(text: str) -> int:
    from melodance.models.families import check_seed

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text[:20]!r}") from None
    try:
        return check_seed(value, "--seed")
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _dance(args) -> int:
    import sys

    from melodance.render.dance import dance
    from melodance.render.draw import View

    w, h = args.size
    res = dance(args.song, args.out, args.model, start_s=args.start, duration_s=args.duration,
                motion_out=args.motion_out, view=View(width=w, height=h),
                progress=not args.no_progress, preset=args.preset, ge_check=args.ge_check,
                allow_still=args.allow_still, seed=args.seed)
    v = res["video"]
    print(f"{args.out}: {res['frames']} frames ({res['seconds']:.2f} s from "
          f"{res['start_s']:.2f} s of {args.song}), model {res['model']}"
          f"{'' if args.seed is None else f', seed {args.seed}'}; audio "
          f"{v['audio_s']:.3f} s, video {v['video_s']:.3f} s", file=sys.stderr)
    t = res["timings"]
    print("seconds: " + ", ".join(f"{k.removesuffix('_s')} {s:.2f}" for k, s in t.items()),
          file=sys.stderr)
    for f in res["files"][1:]:
        print(f"motion: {f}", file=sys.stderr)
    return 0


def _render(args) -> int:
    import sys
    from pathlib import Path

    from melodance.params import load_section
    from melodance.render.config import RenderConfig

    overrides = {}
    if args.split is not None:
        overrides["split"] = args.split
    if args.max_seconds is not None:
        overrides["max_seconds"] = args.max_seconds
    if args.allow_still:
        overrides["allow_still"] = True
    cfg = load_section("render", RenderConfig, args.params, overrides=overrides)
    if args.compare:
        from melodance.render.stage import render_compare

        if not args.out:
            raise InputError("--compare needs -o OUT.mp4")
        facts = render_compare(Path(args.features), args.model, Path(args.data), args.compare,
                               Path(args.out), cfg, progress=not args.no_progress)
        print(f"{args.out}: {facts['segment']}, {facts['frames']} frames, audio "
              f"{facts['audio_s']:.3f} s", file=sys.stderr)
        return 0
    from melodance.render.stage import render_split

    out = Path(args.out or options.OUTPUTS["render"])
    res = render_split(Path(args.features), args.model, Path(args.data), out, cfg,
                       log_mlflow=not args.no_mlflow, progress=not args.no_progress)
    print(f"rendered {res['n_videos']} videos ({res['seconds']:.1f} s) of the {res['split']} split "
          f"with {res['model']}, {res['n_failed']} failing a check: {out}")
    return 0
