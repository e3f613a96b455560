"""Benchmark: rendering a 60 s dance at 640x480 into an MP4 with its song, and `melodance dance`.

Compares, in one run on the same machine and pinned to one CPU core (the
process and its ffmpeg children share it):

- ``baseline``: what the public re-implementations did: each frame drawn with
  per-point Python loops (project each point, ``cv2.line`` per bone and grid
  line, ``cv2.circle`` per joint), written as a PNG file, then moviepy's
  ``ImageSequenceClip`` of the PNGs with the song's span
  (``AudioFileClip(...).subclipped``) encoded by ``write_videofile``. Run
  twice: with moviepy's default x264 preset (``medium``, as they did) and with
  ours (``veryfast``), so that encoder settings and drawing/PNG overhead can
  be told apart.
- ``melodance``: ``render.draw.SkeletonRenderer`` (all projections vectorised,
  one ``cv2.polylines`` per colour) streamed through
  ``render.video.write_video`` (no image files), same frame content (stage
  grid, shadows, coloured limbs, caption).

Both produce H.264 + AAC at 25 fps from the ground truth of a real sequence
(``DANCE_C_2``, first 60 s) with its song. Frames per second = 1500 / wall
time, including encoding; the melodance figure also includes its output
check (decoding and measuring the written video before it is put in place),
whose share is printed on its own.

Then ``melodance dance`` end to end on 60 s of a real song, in a fresh process
(imports, decoding, features, generation, rendering, output check), with a
trained model (default ``outputs/train/model.pt``, the train stage's; an
untrained one draws no dance, and the output check refuses its video).

    python benchmarks/bench_render.py [--data ../shared/data/music-to-dance] [--seconds 60]
        [--cpu 0] [--model PATH] [--json figures.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from melodance.data.layout import read_sequence  # noqa: E402
from melodance.data.skeleton import BONES, bone_side, with_virtual_points  # noqa: E402
from melodance.render import draw as D  # noqa: E402
from melodance.render.video import song_span, video_facts, write_video  # noqa: E402

FPS = 25.0


def baseline_render(joints, root, audio_path, start_s, out: Path, preset: str) -> None:
    """Per-point Python drawing, one PNG per frame, moviepy ImageSequenceClip."""
    import cv2
    from moviepy import AudioFileClip, ImageSequenceClip

    view = D.View()
    world = with_virtual_points(joints + root[:, None])
    floor_y = D.floor_track(world[:, :23], FPS).tolist()
    eye, axes = D.camera_path(world[:, :23], FPS, view)
    f = view.focal_px
    right, up, fwd = (list(map(float, a)) for a in axes)
    cols = {"a": D.SIDE_COLOURS["a"][::-1], "b": D.SIDE_COLOURS["b"][::-1],
            "centre": D.CENTRE[::-1]}
    g, r = view.grid_cm, view.grid_radius_cm

    def proj(p, e):
        d = (p[0] - e[0], p[1] - e[1], p[2] - e[2])
        x = d[0] * right[0] + d[1] * right[1] + d[2] * right[2]
        y = d[0] * up[0] + d[1] * up[1] + d[2] * up[2]
        z = max(d[0] * fwd[0] + d[1] * fwd[1] + d[2] * fwd[2], D.NEAR_CM)
        return int(round(view.width / 2 + f * x / z)), int(round(view.height / 2 - f * y / z))

    with tempfile.TemporaryDirectory(prefix="bench-png-") as td:
        files = []
        for t in range(len(world)):
            img = np.zeros((view.height, view.width, 3), np.uint8)
            img[:] = D.BACKGROUND[::-1]
            e, fy = eye[t].tolist(), floor_y[t]
            tx, tz = e[0] + view.distance_cm * fwd[0], e[2] + view.distance_cm * fwd[2]
            k = int(r // g)
            for i in range(-k, k + 1):  # grid lines around the target, one cv2.line each
                cx, cz = math.floor(tx / g) * g + i * g, math.floor(tz / g) * g + i * g
                h1 = math.sqrt(max(r * r - (cx - tx) ** 2, 0.0))
                h2 = math.sqrt(max(r * r - (cz - tz) ** 2, 0.0))
                for a, b in (((cx, fy, tz - h1), (cx, fy, tz + h1)),
                             ((tx - h2, fy, cz), (tx + h2, fy, cz))):
                    cv2.line(img, proj(a, e), proj(b, e), D.GRID[::-1], 1, cv2.LINE_AA)
            pts = [proj(p, e) for p in world[t].tolist()]
            shadow = [proj((p[0], fy, p[2]), e) for p in world[t].tolist()]
            for i, j in BONES:
                cv2.line(img, shadow[i], shadow[j], D.SHADOW[::-1], view.thickness + 3,
                         cv2.LINE_AA)
            for i, j in BONES:
                cv2.line(img, pts[i], pts[j], cols[bone_side((i, j))], view.thickness,
                         cv2.LINE_AA)
            for p in pts[:23]:
                cv2.circle(img, p, 2, D.CENTRE[::-1], -1, cv2.LINE_AA)
            cv2.putText(img, f"frame {t + 1}/{len(world)}", (10, view.height - 14),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.5, D.TEXT[::-1], 1, cv2.LINE_AA)
            name = os.path.join(td, f"{t:06d}.png")
            cv2.imwrite(name, img)
            files.append(name)
        audio = AudioFileClip(str(audio_path)).subclipped(start_s, start_s + len(world) / FPS)
        clip = ImageSequenceClip(files, fps=FPS).with_audio(audio)
        clip.write_videofile(str(out), codec="libx264", audio_codec="aac", preset=preset,
                             threads=1, logger=None,
                             temp_audiofile=os.path.join(td, "audio.m4a"))
        clip.close()
        audio.close()


def melodance_render(joints, root, audio_path, start_s, out: Path) -> None:
    r = D.SkeletonRenderer(joints, root, FPS, caption="DANCE_C_2 | ground truth")
    audio = song_span(audio_path, start_s, len(joints) / FPS)
    write_video(out, r, FPS, audio, threads=1, check=lambda p, f: None)


def timed(fn, *a) -> float:
    t = time.perf_counter()
    fn(*a)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "music-to-dance"))
    ap.add_argument("--sequence", default="DANCE_C_2")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--cpu", type=int, default=0, help="core to pin to; -1: no pinning")
    ap.add_argument("--model", default=str(REPO / "outputs" / "train" / "model.pt"),
                    help="trained model (bundle or models:/ URI) for `melodance dance`")
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()

    seq = read_sequence(Path(args.data) / args.sequence)
    n = int(round(args.seconds * FPS))
    if seq.n_frames < n:
        raise SystemExit(f"{seq.name} has {seq.n_frames} frames, fewer than {n}")
    joints, root = seq.joints[:n], seq.root[:n]
    with tempfile.TemporaryDirectory(prefix="bench-render-") as td:
        td = Path(td)
        model = args.model
        # `melodance dance` first, unpinned, in a fresh process: what a user waits for.
        cmd = [sys.executable, "-m", "melodance.cli", "dance", str(seq.audio_path), "-o",
               str(td / "dance.mp4"), "--model", str(model), "--start", f"{seq.start_s:.2f}",
               "--duration", f"{args.seconds:g}", "--no-progress"]
        t = time.perf_counter()
        run = subprocess.run(cmd, capture_output=True, text=True)
        dance_s = time.perf_counter() - t
        if run.returncode != 0:
            raise SystemExit(f"melodance dance failed:\n{run.stderr}")

        if args.cpu >= 0:
            os.sched_setaffinity(0, {args.cpu})  # ffmpeg children inherit it
        melodance_render(joints[:50], root[:50], seq.audio_path, seq.start_s, td / "warm.mp4")
        rows = {}
        s = timed(melodance_render, joints, root, seq.audio_path, seq.start_s, td / "m.mp4")
        rows["melodance"] = s
        check_s = timed(video_facts, td / "m.mp4")
        if not args.skip_baseline:
            for preset in ("medium", "veryfast"):
                rows[f"baseline ({preset})"] = timed(baseline_render, joints, root,
                                                     seq.audio_path, seq.start_s,
                                                     td / f"b-{preset}.mp4", preset)
        sizes = {p.name: p.stat().st_size for p in td.glob("*.mp4")}

    pinned = f"pinned to core {args.cpu}" if args.cpu >= 0 else "not pinned"
    print(f"{seq.name}: {n} frames ({args.seconds:g} s) at 640x480, H.264 + AAC; {pinned}")
    print(f"{'pipeline':<22}{'seconds':>9}{'fps':>8}{'x real time':>13}")
    for k, s in rows.items():
        print(f"{k:<22}{s:>9.2f}{n / s:>8.1f}{args.seconds / s:>13.2f}")
    if not args.skip_baseline:
        for k in ("baseline (medium)", "baseline (veryfast)"):
            print(f"speed-up over {k}: {rows[k] / rows['melodance']:.1f}x")
    print(f"of which the output check (decode + measure the written video): {check_s:.2f} s")
    print(f"melodance dance, {args.seconds:g} s of song, end to end (fresh process, "
          f"both cores): {dance_s:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({
            "frames": n, "seconds": args.seconds, "pinned_core": args.cpu,
            "render_s": rows, "fps": {k: n / s for k, s in rows.items()},
            "check_s": check_s, "dance_end_to_end_s": dance_s, "bytes": sizes}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
