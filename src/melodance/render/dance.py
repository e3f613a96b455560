"""``melodance dance``: a song in, a skeleton video (and optionally the motion) out.

Feature extraction, generation and rendering use the same code as training
and serving (``features.music.song_features``, ``DanceBundle.generate``), with
the feature settings stored in the model bundle.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from melodance.errors import InputError, MissingInput, OutputExists
from melodance.serve.registry import load_bundle
from melodance.values import seconds

MIN_SONG_S = 1.0


def check_video_path(path: str | Path) -> Path:
    path = Path(path)
    if path.suffix.lower() != ".mp4":
        raise InputError(f"{path}: the video output must be an .mp4 file")
    return check_output_file(path)


def check_output_file(path: str | Path) -> Path:
    """Fail before any work on an output that cannot be put in place.

    An existing regular file is replaced (it is the output named); a folder,
    or anything else that is not a regular file, is never touched.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise MissingInput(f"{path.parent}: output folder does not exist")
    if path.is_dir():
        raise InputError(f"{path}: is a folder; name the output file inside it")
    if path.exists() or path.is_symlink():
        if path.is_symlink() or not path.is_file():
            raise InputError(f"{path}: exists and is not a regular file; refusing to replace it")
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise InputError(f"{path.parent}: output folder is not writable")
    return path


def output_files(video: Path, motion_paths: list[Path]) -> list[Path]:
    """Every file ``dance`` writes: the video, then each motion output (``x.json`` adds ``x.npy``)."""
    files = [video]
    for p in motion_paths:
        files.append(p)
        if p.suffix.lower() == ".json":
            files.append(p.with_suffix(".npy"))
    seen: dict[Path, Path] = {}
    for f in files:
        key = f.parent.resolve() / f.name
        if key in seen:
            raise InputError(f"{f}: written twice (a motion .json writes its .npy beside it); "
                             "give each output its own name")
        seen[key] = f
        check_output_file(f)
    return files


def song_span_frames(song: Path, start_s: float, duration_s: float | None,
                     fps: float) -> tuple[float, int, float]:
    """Check a song and a requested span; return (start_s, n_frames, song length s).

    The song must decode completely (:func:`melodance.features.audio.check_song`:
    a truncated file is refused, not danced to as silence). The start is rounded
    to a whole frame; a span past the song's end is cut there.
    """
    from melodance.features.audio import check_song

    start_s = seconds(start_s, "--start")
    if duration_s is not None:
        duration_s = seconds(duration_s, "--duration", positive=True)
    length = check_song(song).duration_s  # names the file and what is wrong with it
    if length < MIN_SONG_S:
        raise InputError(f"{song}: the song lasts {length:.2f} s; at least {MIN_SONG_S:g} s "
                         "is needed")
    if start_s >= length:
        raise InputError(f"--start {start_s:g} s is past the end of {song} ({length:.2f} s)")
    start_s = round(start_s * fps) / fps
    end_s = length if duration_s is None else min(length, start_s + duration_s)
    n_frames = int(math.floor((end_s - start_s) * fps + 1e-6))
    if n_frames < MIN_SONG_S * fps:
        raise InputError(f"{song}: the span from {start_s:.2f} s to {end_s:.2f} s is shorter "
                         f"than {MIN_SONG_S:g} s (the song lasts {length:.2f} s)")
    return start_s, n_frames, length


@contextlib.contextmanager
def staged_outputs(files: list[Path]):
    """Write outputs beside their places, then put them all in place, or none.

    Yields ``{final path: temporary path}``; the temporary files sit in a
    hidden folder in each output's own folder (same file system: renames are
    atomic). On success every file is renamed onto its place; if one rename
    fails, those done are undone (a replaced file comes back). On any error
    nothing is left behind.
    """
    stage_dirs: dict[Path, Path] = {}
    staged: dict[Path, Path] = {}
    try:
        for f in files:
            parent = f.parent
            if parent not in stage_dirs:
                stage_dirs[parent] = Path(tempfile.mkdtemp(prefix=".melodance-dance-",
                                                           dir=parent))
            staged[f] = stage_dirs[parent] / f.name
        yield staged
        done: list[tuple[Path, Path | None]] = []
        try:
            for f, tmp in staged.items():
                if not tmp.is_file():
                    raise RuntimeError(f"{f}: was not written")
                backup = None
                if f.is_symlink() or (f.exists() and not f.is_file()):
                    # Appeared since the checks: never move a folder (or a link) away.
                    raise OutputExists(f"{f}: is not a regular file (any more); "
                                            "no output was put in place")
                if f.exists():
                    backup = tmp.with_name(f".old-{f.name}")
                    os.replace(f, backup)
                done.append((f, backup))
                os.replace(tmp, f)
        except BaseException:
            for f, backup in reversed(done):
                if backup is not None:
                    os.replace(backup, f)
                elif f.exists():
                    f.unlink()
            raise
    finally:
        for d in stage_dirs.values():
            shutil.rmtree(d, ignore_errors=True)


def generate(bundle, music, temporal, root_start=None, seed: int | None = None):
    """``bundle.generate`` on one torch thread.

    A batch of one runs the LSTM step by step: each step is too small to
    share, and with two threads on a busy machine every step waits for the
    other thread to be scheduled (measured here: 1500 frames took 7-45 s on
    2 threads under load, 0.02-0.3 s on one).
    """
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return bundle.generate(music, temporal, root_start, seed=seed)
    finally:
        torch.set_num_threads(prev)


def _bar(progress: bool, total: int, desc: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=not progress, file=sys.stderr)


def dance(song: str | Path, out: str | Path, model: str | Path | None = None,
          start_s: float = 0.0, duration_s: float | None = None,
          motion_out: list[str | Path] | tuple = (), *, view=None, progress: bool = True,
          preset: str = "veryfast", ge_check: bool = True, bundle=None,
          label: str | None = None, allow_still: bool = False, seed: int | None = None) -> dict:
    """Generate a dance for a song (or a span of it) and write its video.

    Args:
        song: an audio file (mp3, wav, flac, ogg).
        out: the video, ``.mp4`` (H.264 + AAC, 25 fps) in an existing folder.
        model: see :func:`load_bundle` (None: the registry's champion).
        start_s, duration_s: the span of the song; None: to the end.
        motion_out: motion files to write as well (``.json`` + ``.npy``, ``.npy``, ``.bvh``).
        view: :class:`~melodance.render.draw.View` (frame size, camera).
        progress: progress bars on stderr.
        preset: x264 speed preset.
        ge_check: check the written video with the Great Expectations output
            suite (:mod:`melodance.render.checks`) instead of evaluating the
            same checks directly (same bounds; GE costs a few seconds).
        bundle, label: an already loaded model (then ``model`` is ignored).
        allow_still: write the video even when the dance stands still (the still
            rule, :func:`melodance.render.checks.still_check`, refuses it otherwise).
        seed: picks one of the dances a generative model gives (same seed, same dance;
            None: 0); deterministic models ignore it.

    Returns:
        A summary: frames, seconds, model label, span, files written, the
        video's facts and the seconds each step took.

    Nothing is written when any step fails.
    """
    from melodance import FPS
    from melodance.features.music import song_features
    from melodance.render.draw import SkeletonRenderer, View
    from melodance.render.export import check_motion_path, write_motion
    from melodance.render.video import song_span, write_video

    # Everything the user can get wrong is checked before the slow steps: every
    # output path, the options and the whole song.
    song, out = Path(song), check_video_path(out)
    motion_paths = [check_motion_path(p) for p in motion_out]
    files = output_files(out, motion_paths)
    start_s, n, _ = song_span_frames(song, start_s, duration_s, FPS)
    timings = {}
    t0 = time.perf_counter()
    if bundle is None:
        bundle, label = load_bundle(model)
    timings["load_model_s"] = time.perf_counter() - t0
    cfg = bundle.feature_settings
    fps = cfg.fps  # == FPS: the features config enforces one music frame per motion frame

    t = time.perf_counter()
    with _bar(progress, n, "features") as bar:
        feats = song_features(song, start_s, n, cfg)
        bar.update(n)
    timings["features_s"] = time.perf_counter() - t

    t = time.perf_counter()
    with _bar(progress, n, "generate") as bar:
        joints, root = generate(bundle, feats["music"], feats["temporal"], seed=seed)
        bar.update(n)
    timings["generate_s"] = time.perf_counter() - t
    from melodance.render.checks import MAX_STILL_FRACTION, still_check

    still_fraction = still_check(joints + root[:, None], fps, str(out),
                                 max_fraction=1.0 if allow_still else MAX_STILL_FRACTION)

    t = time.perf_counter()
    # Dataset songs are all called audio.mp3: name their folder too.
    song_name = f"{song.parent.name}/{song.name}" if song.stem == "audio" else song.name
    caption = f"{song_name} | {label or 'model'}"
    renderer = SkeletonRenderer(joints, root, fps, view or View(), caption=caption)
    audio = song_span(song, start_s, n / fps)
    check = None
    if ge_check:
        from melodance.render.checks import ge_check as make_ge_check

        check = make_ge_check(n, fps, name=str(out))
    # All outputs are written beside their places and put there together at the end.
    with staged_outputs(files) as staged:
        facts = write_video(staged[out], renderer, fps, audio, preset=preset,
                            progress=progress, desc="render", check=check)
        timings["render_s"] = time.perf_counter() - t
        for p in motion_paths:
            write_motion(staged[p], joints, root, fps)
    facts["path"] = str(out)
    written = files
    timings["total_s"] = time.perf_counter() - t0
    return {"song": str(song), "model": label, "seed": seed, "start_s": start_s, "frames": n,
            "seconds": n / fps, "files": [str(p) for p in written], "video": facts,
            "still_fraction": still_fraction,
            "timings": {k: round(v, 3) for k, v in timings.items()}}

