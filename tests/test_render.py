"""Rendering: real songs under real dances, read back from the written file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

FPS = 25.0
SPAN_START = 250   # frame of the sequence where the rendered span starts
SPAN_FRAMES = 150  # 6 s


def _decode_audio(path: Path, sr: int = 44100) -> np.ndarray:
    """Mono float32 samples of a video's audio, decoded by ffmpeg (independent of our code)."""
    import imageio_ffmpeg

    r = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-i", str(path),
                        "-map", "0:a:0", "-f", "f32le", "-ac", "1", "-ar", str(sr), "-"],
                       capture_output=True, check=True)
    return np.frombuffer(r.stdout, dtype=np.float32)


def _frames(path: Path) -> list[np.ndarray]:
    import cv2

    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, f = cap.read()
        if not ok:
            break
        out.append(f)
    cap.release()
    return out


@pytest.fixture(scope="module")
def real_video(real_data, tmp_path_factory):
    """6 s of DANCE_C_2's ground truth rendered with its song; (path, facts, sequence)."""
    from melodance.data.layout import read_sequence
    from melodance.render.draw import SkeletonRenderer
    from melodance.render.video import song_span, write_video

    seq = read_sequence(real_data / "DANCE_C_2")
    sl = slice(SPAN_START, SPAN_START + SPAN_FRAMES)
    r = SkeletonRenderer(seq.joints[sl], seq.root[sl], FPS, caption="DANCE_C_2 | ground truth")
    start_s = seq.start_s + SPAN_START / FPS
    audio = song_span(seq.audio_path, start_s, SPAN_FRAMES / FPS)
    out = tmp_path_factory.mktemp("render") / "gt.mp4"
    facts = write_video(out, r, FPS, audio)
    return out, facts, seq, start_s


def test_real_song_frame_count_fps_and_audio_duration(real_video):
    import cv2
    import imageio_ffmpeg
    from moviepy import AudioFileClip

    path, facts, _, _ = real_video
    assert path.is_file()
    assert not list(path.parent.glob(".*tmp*")), "temporary files left behind"
    cap = cv2.VideoCapture(str(path))
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(FPS)
    cap.release()
    n_frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    assert n_frames == SPAN_FRAMES == facts["frames"]
    video_s = SPAN_FRAMES / FPS
    audio_s = len(_decode_audio(path)) / 44100
    assert abs(audio_s - video_s) <= 1 / FPS
    clip = AudioFileClip(str(path))
    try:
        assert abs(clip.duration - video_s) <= 1 / FPS
    finally:
        clip.close()
    assert facts["video_codec"] == "h264" and facts["audio_codec"] == "aac"


def test_audio_is_the_songs_matching_span(real_video):
    """The track is the dance's span of the song, not offset by more than a few ms."""
    import scipy.signal

    from melodance.render.video import song_span

    path, _, seq, start_s = real_video
    got = _decode_audio(path)
    want = song_span(seq.audio_path, start_s, SPAN_FRAMES / FPS).mean(axis=1)
    n = min(len(got), len(want))
    got, want = got[:n], want[:n]
    max_lag = 4410  # 0.1 s
    xc = scipy.signal.correlate(got, want, mode="full", method="fft")
    lags = np.arange(-n + 1, n)
    sel = np.abs(lags) <= max_lag
    lag = lags[sel][np.argmax(xc[sel])]
    assert abs(lag) <= 0.005 * 44100, f"audio offset by {lag / 44.1:.1f} ms"
    r = np.corrcoef(got, want)[0, 1]
    assert r > 0.9, f"audio does not match the song span (correlation {r:.3f})"
    # Against a span one second later the match is gone: the test can tell spans apart.
    other = song_span(seq.audio_path, start_s + 1.0, SPAN_FRAMES / FPS).mean(axis=1)[:n]
    assert abs(np.corrcoef(got, other)[0, 1]) < 0.5


def test_skeleton_pixels_move_between_frames(real_video):
    path, facts, _, _ = real_video
    frames = _frames(path)
    assert len(frames) == SPAN_FRAMES

    def limbs(f: np.ndarray) -> np.ndarray:
        # Coloured pixels (limbs); the stage is grey. Independent of the renderer's own mask.
        f = f.astype(np.int16)
        return (f.max(axis=2) - f.min(axis=2)) > 80

    masks = [limbs(frames[i]) for i in (0, 50, 100, 149)]
    for m in masks:
        assert m.sum() > 500, "a frame shows no skeleton"
    for a, b in zip(masks, masks[1:], strict=False):
        assert (a ^ b).sum() > 200, "the skeleton did not move between frames"
    assert facts["blank_frames"] == 0 and facts["longest_still_s"] < 0.5


def test_renderer_shapes_and_colours():
    from melodance.render.draw import SIDE_COLOURS, SideBySide, SkeletonRenderer, View

    rng = np.random.default_rng(0)
    T = 10
    joints = np.zeros((T, 23, 3))
    joints[:, :, 1] = np.linspace(-85, 70, 23)
    joints[:, :, 0] = rng.normal(0, 15, (T, 23))
    root = np.stack([np.linspace(0, 300, T), np.full(T, 95.0), np.zeros(T)], axis=1)
    r = SkeletonRenderer(joints, root, FPS, View(width=320, height=240), caption="x")
    img = r.frame(3)
    assert img.shape == (240, 320, 3) and img.dtype == np.uint8
    for colour in SIDE_COLOURS.values():
        assert (np.abs(img.astype(int) - colour).sum(axis=2) < 30).any()
    sbs = SideBySide([r, r])
    assert sbs.frame(0).shape == (240, 640, 3)
    with pytest.raises(IndexError):
        r.frame(T)
    with pytest.raises(ValueError, match="23, 3"):
        SkeletonRenderer(joints[:, :20], root, FPS)
    bad = joints.copy()
    bad[2, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SkeletonRenderer(bad, root, FPS)


def _still_and_moving(T: int = 60):
    """A dance that moves, and one frozen in one pose (root-relative joints, root)."""

    t = np.arange(T) / FPS
    joints = np.zeros((T, 23, 3))
    joints[:, :, 1] = np.linspace(-85, 70, 23)
    joints[:, :, 0] = 20 * np.sin(2 * np.pi * t[:, None] + np.arange(23)[None])
    root = np.stack([np.zeros(T), np.full(T, 95.0), np.zeros(T)], axis=1)
    still = np.broadcast_to(joints[:1], joints.shape).copy()
    return (joints, root), (still, root)


def test_frozen_video_fails_its_check_and_leaves_nothing(tmp_path):
    from melodance.render.checks import ge_check
    from melodance.render.draw import SkeletonRenderer, View
    from melodance.render.video import VideoCheckError, write_video

    (moving, root), (still, _) = _still_and_moving()
    view = View(width=320, height=240)
    ok = write_video(tmp_path / "moving.mp4", SkeletonRenderer(moving, root, FPS, view), FPS)
    assert ok["frames"] == len(moving) and ok["audio_s"] is None
    with pytest.raises(VideoCheckError, match="not_frozen") as e:
        write_video(tmp_path / "still.mp4", SkeletonRenderer(still, root, FPS, view), FPS)
    assert "still.mp4" in str(e.value)
    # The same verdict from the Great Expectations suite (`melodance dance --ge-check`).
    with pytest.raises(VideoCheckError, match="not_frozen"):
        write_video(tmp_path / "still.mp4", SkeletonRenderer(still, root, FPS, view), FPS,
                    check=ge_check(len(still), FPS, audio=False, name="still.mp4"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["moving.mp4"]


def test_output_suite_names_the_failed_check(tmp_path):
    """Great Expectations catches audio 1 s longer than the frames, and a dropped frame."""
    from moviepy import VideoClip
    from moviepy.audio.AudioClip import AudioArrayClip

    from melodance.render.checks import KEY, run_output_suite
    from melodance.render.draw import SkeletonRenderer, View
    from melodance.render.video import check_table_row, output_checks, video_facts

    (moving, root), _ = _still_and_moving(50)
    r = SkeletonRenderer(moving, root, FPS, View(width=320, height=240))
    sr = 44100
    tone = np.sin(2 * np.pi * 440 * np.arange(int(3 * sr)) / sr)[:, None].repeat(2, 1) * 0.3

    def encode(path: Path, n_frames: int, audio_s: float) -> None:
        clip = VideoClip(frame_function=lambda t: r.frame(min(int(round(t * FPS)), 49)),
                         duration=(n_frames + 0.5) / FPS)
        clip = clip.with_audio(AudioArrayClip(tone[: int(audio_s * sr)], fps=sr))
        clip.write_videofile(str(path), fps=FPS, codec="libx264", audio_codec="aac",
                             temp_audiofile=str(path.with_suffix(".m4a")), logger=None)

    encode(tmp_path / "good.mp4", 50, 2.0)
    encode(tmp_path / "long_audio.mp4", 50, 3.0)
    encode(tmp_path / "dropped.mp4", 49, 1.96)
    rows = [{KEY: p, **check_table_row(video_facts(tmp_path / p), 50)}
            for p in ("good.mp4", "long_audio.mp4", "dropped.mp4")]
    out = run_output_suite(rows, output_checks(FPS), docs_dir=tmp_path / "docs")
    assert "good.mp4" not in out.failures
    assert [f["check"] for f in out.failures["long_audio.mp4"]] == ["audio_duration"]
    assert out.failures["long_audio.mp4"][0]["value"] == pytest.approx(1.0, abs=0.03)
    assert [f["check"] for f in out.failures["dropped.mp4"]] == ["frame_count"]
    assert (tmp_path / "docs" / "index.html").is_file()


def test_song_span_pads_past_the_end(tmp_path):
    import soundfile as sf

    from melodance.render.video import song_span

    sr = 22050
    y = np.full(int(1.5 * sr), 0.25, dtype=np.float32)
    sf.write(tmp_path / "s.wav", y, sr)
    a = song_span(tmp_path / "s.wav", 1.0, 2.0)
    assert a.shape == (88200, 2)
    assert np.allclose(a[1000:20000], 0.25, atol=0.01)  # the song, resampled, both channels
    assert np.all(a[-30000:] == 0.0)                     # past its end: silence
