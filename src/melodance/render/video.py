"""Writing a skeleton video with its music, and reading the facts of a written video back.

:func:`write_video` streams frames from a renderer through moviepy into
ffmpeg (H.264 + AAC in MP4, no image files on disk), then measures the
written file (:func:`video_facts`) and runs the output checks on it before
the file is renamed into place: a video that fails a check is never left
where the caller asked for it.

The checks (:data:`OUTPUT_CHECKS`) are data, so that the Great Expectations
suite (:mod:`melodance.render.checks`) and the plain evaluator here test the
same things with the same bounds.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from melodance import FPS
from melodance.errors import InputError, MissingInput

AUDIO_SR = 44100
"""Sample rate of the audio track, Hz (one AAC supports; songs are resampled to it)."""


class FrameSource(Protocol):
    """What :func:`write_video` draws from: a length and an RGB frame per index."""

    def __len__(self) -> int: ...

    def frame(self, i: int, out: np.ndarray | None = None) -> np.ndarray: ...


class VideoCheckError(InputError):
    """A written video failed an output check; the message names the file and the checks."""

    def __init__(self, path: Path, failures: list[dict]):
        self.path, self.failures = Path(path), failures
        lines = [f"  {f['check']}: {f['value']} (expected {f['bound']}; {f['why']})"
                 for f in failures]
        super().__init__(f"{path}: rendered video failed {len(failures)} output check(s):\n"
                         + "\n".join(lines))


# ----------------------------------------------------------------------------- audio

def song_span(path: str | Path, start_s: float, duration_s: float,
              sr: int = AUDIO_SR) -> np.ndarray:
    """A span of a song as stereo samples for the video's audio track.

    Positions past the end of the song read as silence, so the track always
    lasts exactly ``duration_s``.

    Args:
        path: the song (anything libsndfile decodes: MP3, WAV, FLAC, OGG).
        start_s: song time of the first sample, seconds (>= 0).
        duration_s: length of the span, seconds.
        sr: output sample rate, Hz.

    Returns:
        [round(duration_s * sr), 2] float32 in [-1, 1].
    """
    import soundfile as sf
    import soxr

    path = Path(path)
    if start_s < 0:
        raise InputError(f"{path}: start must be >= 0 s, got {start_s}")
    n_out = int(round(duration_s * sr))
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise InputError(f"{path}: cannot decode audio ({e})") from e
    with f:
        sr_in = f.samplerate
        a = int(round(start_s * sr_in))
        n_in = int(math.ceil(duration_s * sr_in)) + 1
        x = np.zeros((n_in, f.channels), dtype=np.float32)
        if a < f.frames:
            f.seek(a)
            got = f.read(min(n_in, f.frames - a), dtype="float32", always_2d=True)
            x[: len(got)] = got
    x = x[:, :2] if x.shape[1] >= 2 else np.repeat(x, 2, axis=1)
    if sr_in != sr:
        x = soxr.resample(x, sr_in, sr, quality="HQ")
    out = np.zeros((n_out, 2), dtype=np.float32)
    n = min(n_out, len(x))
    out[:n] = x[:n]
    return np.clip(out, -1.0, 1.0)


# ----------------------------------------------------------------------------- writing

def _exact_duration(n_frames: int, fps: float) -> float:
    """A clip duration d with int(d * fps) == n_frames (moviepy counts frames that way)."""
    d = n_frames / fps
    while int(d * fps) < n_frames:
        d = float(np.nextafter(d, math.inf))
    return d


def _check_request(path: Path, n: int, fps: float, audio: np.ndarray | None, audio_sr: int) -> None:
    """Refuse before encoding: a non-.mp4 path, no frames, an audio track of the wrong length."""
    if path.suffix.lower() != ".mp4":
        raise InputError(f"{path}: the output must be an .mp4 file")
    if n < 1:
        raise InputError("no frames to write")
    if audio is not None:
        want = int(round(n / fps * audio_sr))
        if audio.ndim != 2 or abs(len(audio) - want) > 1:
            raise InputError(f"audio track has shape {list(audio.shape)}; expected "
                             f"[{want}, channels] for {n} frames at {fps:g} fps")


def _frame_function(frames: FrameSource, fps: float, bar) -> Callable[[float], np.ndarray]:
    """moviepy's ``frame_function(t)``: the renderer's frame at time ``t`` s, drawn once into
    one reused buffer (moviepy asks for the same frame again around audio chunks)."""
    n = len(frames)
    buf = frames.frame(0)
    drawn = [-1]

    def make_frame(t: float) -> np.ndarray:
        i = min(int(round(t * fps)), n - 1)
        if i != drawn[0]:
            frames.frame(i, out=buf)
            drawn[0] = i
            if bar is not None and i > 0:
                bar.update()
        return buf

    return make_frame


def write_video(path: str | Path, frames: FrameSource, fps: float = FPS,
                audio: np.ndarray | None = None, audio_sr: int = AUDIO_SR, *,
                preset: str = "veryfast", crf: int = 23, threads: int | None = None,
                progress: bool = False, desc: str = "render",
                check: Callable[[Path, dict], None] | None = None,
                max_still_s: float = 1.0) -> dict:
    """Encode a renderer's frames (and an audio track) into an MP4, atomically.

    Args:
        path: output ``.mp4``; its folder must exist.
        frames: a renderer (``len`` and ``frame(i, out)``), one video frame per motion frame.
        fps: frames per second.
        audio: [samples, 2] float32 audio track lasting ``len(frames) / fps``
            (see :func:`song_span`); None: no audio.
        audio_sr: its sample rate, Hz.
        preset, crf, threads: x264 speed preset, quality (lower is better), threads.
        progress: show a progress bar over frames.
        check: ``check(tmp_path, facts)`` raising on a bad video; default: the
            output checks (:func:`failed_checks`). It runs on the finished file
            before it is renamed onto ``path``.
        max_still_s: longest run without skeleton movement accepted by the default check.

    Returns:
        The facts of the written video (:func:`video_facts`).
    """
    from moviepy import VideoClip
    from moviepy.audio.AudioClip import AudioArrayClip

    from melodance.io import atomic_path

    path = Path(path)
    n = len(frames)
    _check_request(path, n, fps, audio, audio_sr)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc=desc, unit="frame")
    clip = VideoClip(frame_function=_frame_function(frames, fps, bar),
                     duration=_exact_duration(n, fps))
    if audio is not None:
        clip = clip.with_audio(AudioArrayClip(audio.astype(np.float32), fps=audio_sr))
    try:
        with atomic_path(path, ".mp4") as tmp, \
                tempfile.TemporaryDirectory(prefix="melodance-audio-") as td:
            clip.write_videofile(
                str(tmp), fps=fps, codec="libx264", audio_codec="aac", audio_fps=audio_sr,
                audio_bitrate="160k", preset=preset, threads=threads,
                temp_audiofile=str(Path(td) / "audio.m4a"),
                ffmpeg_params=["-crf", str(crf), "-movflags", "+faststart"], logger=None,
            )
            if bar is not None:
                bar.update(n - bar.n)
            facts = video_facts(tmp)
            if check is None:
                failures = failed_checks(facts, expected_frames=n, fps=fps,
                                         audio=audio is not None, max_still_s=max_still_s)
                if failures:
                    raise VideoCheckError(path, failures)
            else:
                check(tmp, facts)
    finally:
        if bar is not None:
            bar.close()
        clip.close()
    facts["path"] = str(path)
    return facts


# ----------------------------------------------------------------------------- reading back

def _ffmpeg() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def _streams(path: Path) -> dict[str, str | None]:
    """Codec names of the first video and audio streams (ffmpeg's stream listing)."""
    r = subprocess.run([_ffmpeg(), "-hide_banner", "-nostdin", "-i", str(path)],
                       capture_output=True, text=True, errors="replace")
    out = {}
    for kind in ("Video", "Audio"):
        m = re.search(rf"Stream #\d+:\d+.*?: {kind}: (\w+)", r.stderr)
        out[kind.lower()] = m.group(1) if m else None
    return out


def audio_seconds(path: str | Path, sr: int = AUDIO_SR) -> float:
    """Duration of the first audio stream, seconds, from the decoded sample count."""
    r = subprocess.run(
        [_ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0",
         "-f", "s16le", "-ac", "1", "-ar", str(sr), "-"],
        capture_output=True)
    if r.returncode != 0:
        raise InputError(f"{path}: cannot decode its audio "
                         f"({r.stderr.decode(errors='replace').strip()[-300:]})")
    return len(r.stdout) / 2 / sr


def limb_saturation(frame: np.ndarray) -> np.ndarray:
    """Saturation above the stage's, at half resolution: [H/2, W/2] uint8.

    The stage (background, grid, shadows, text) has low saturation (< 100 of
    255); limbs are saturated colours. Subtracting 100 leaves only the limbs
    and their anti-aliased edges, whose values shift with sub-pixel movement.
    """
    import cv2

    small = cv2.resize(frame, (frame.shape[1] // 2, frame.shape[0] // 2),
                       interpolation=cv2.INTER_AREA)
    return cv2.subtract(cv2.cvtColor(small, cv2.COLOR_BGR2HSV)[..., 1], 100)


def video_facts(path: str | Path, min_skeleton_px: int = 30, still_level: float = 0.5) -> dict:
    """Measure a written video by decoding it: the facts the output checks test.

    Args:
        path: a video file.
        min_skeleton_px: a frame with fewer limb pixels (half resolution) is blank.
        still_level: consecutive frames whose limbs differ by less than this
            (sum of saturation differences in units of one full pixel, half
            resolution) show no movement. Grey text (the frame counter) does not count.

    Returns:
        dict with ``frames`` (decoded), ``fps``, ``width``, ``height``,
        ``video_s`` (frames / fps), ``audio_s`` (None without audio),
        ``audio_minus_video_s``, ``video_codec``, ``audio_codec``,
        ``blank_frames``, ``longest_still_s`` and ``median_skeleton_px``.
    """
    import cv2

    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"{path}: no such video")
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise InputError(f"{path}: not a readable video")
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS))
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        n = blank = run = longest = 0
        counts = []
        prev = None
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            n += 1
            limbs = limb_saturation(frame)
            px = cv2.countNonZero(cv2.threshold(limbs, 10, 255, cv2.THRESH_BINARY)[1])
            counts.append(px)
            blank += px < min_skeleton_px
            if prev is not None and cv2.norm(limbs, prev, cv2.NORM_L1) / 255 < still_level:
                run += 1
                longest = max(longest, run)
            else:
                run = 0
            prev = limbs
    finally:
        cap.release()
    codecs = _streams(path)
    audio_s = audio_seconds(path) if codecs["audio"] else None
    video_s = n / fps if fps > 0 else 0.0
    return {
        "frames": n, "fps": round(fps, 6), "width": width, "height": height,
        "video_s": video_s, "audio_s": audio_s,
        "audio_minus_video_s": None if audio_s is None else audio_s - video_s,
        "video_codec": codecs["video"], "audio_codec": codecs["audio"],
        "blank_frames": int(blank),
        # k frames in a row without change span k / fps seconds.
        "longest_still_s": (longest + 1) / fps if longest and fps > 0 else 0.0,
        "median_skeleton_px": float(np.median(counts)) if counts else 0.0,
    }


# ----------------------------------------------------------------------------- checks

@dataclass(frozen=True)
class OutputCheck:
    """One check on a written video's facts: ``min_value <= column <= max_value``, or
    ``column in value_set``."""

    name: str
    column: str
    why: str
    min_value: float | None = None
    max_value: float | None = None
    value_set: tuple = ()

    @property
    def bound(self) -> str:
        from melodance.validate.gx import bound_text

        if self.min_value is not None and self.min_value == self.max_value and not self.value_set:
            return f"== {self.min_value:g}"
        return bound_text(self.min_value, self.max_value, self.value_set)

    def passes(self, value) -> bool:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return False
        if self.value_set:
            return value in self.value_set
        lo = -math.inf if self.min_value is None else self.min_value
        hi = math.inf if self.max_value is None else self.max_value
        return lo <= value <= hi


def output_checks(fps: float = FPS, audio: bool = True,
                  max_still_s: float = 1.0) -> list[OutputCheck]:
    """The checks every rendered video must pass (columns of :func:`check_table_row`)."""
    checks = [
        OutputCheck("frame_count", "frames_minus_expected",
                    "decoded video frames minus motion frames", 0, 0),
        OutputCheck("fps", "fps", f"video frame rate equals the motion's {fps:g} fps",
                    fps - 1e-3, fps + 1e-3),
        OutputCheck("video_codec", "video_codec", "H.264 video", value_set=("h264",)),
        OutputCheck("not_blank", "blank_frames", "frames without a visible skeleton", 0, 0),
        OutputCheck("not_frozen", "longest_still_s",
                    "longest stretch without skeleton movement, s", None, max_still_s),
    ]
    if audio:
        checks += [
            OutputCheck("audio_codec", "audio_codec", "AAC audio", value_set=("aac",)),
            OutputCheck("audio_duration", "audio_minus_video_s",
                        "audio duration minus video duration, s (within one frame)",
                        -1.0 / fps, 1.0 / fps),
        ]
    return checks


def check_table_row(facts: dict, expected_frames: int) -> dict:
    """The facts as one row of the checks' table (adds ``frames_minus_expected``)."""
    return {**facts, "expected_frames": int(expected_frames),
            "frames_minus_expected": int(facts["frames"]) - int(expected_frames)}


def failed_checks(facts: dict, expected_frames: int, fps: float = FPS, audio: bool = True,
                  max_still_s: float = 1.0) -> list[dict]:
    """The output checks a video's facts fail: ``[{check, why, value, bound}]`` (empty: ok)."""
    row = check_table_row(facts, expected_frames)
    return [{"check": c.name, "why": c.why, "value": row.get(c.column), "bound": c.bound}
            for c in output_checks(fps, audio, max_still_s) if not c.passes(row.get(c.column))]
