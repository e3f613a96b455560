"""``melodance dance`` and ``melodance render``: end to end with a tiny trained model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from melodance.cli import main


def test_dance_cli_real_song_video_and_motion(tiny_bundle, real_data, tmp_path, capsys):
    import cv2

    from melodance.data.layout import read_skeletons
    from melodance.render.bvh import read_bvh

    song = real_data / "DANCE_R_3" / "audio.mp3"
    out = tmp_path / "dance.mp4"
    args = ["dance", str(song), "-o", str(out), "--model", str(tiny_bundle), "--start", "12",
            "--duration", "4", "--motion-out", str(tmp_path / "m.json"),
            "--motion-out", str(tmp_path / "m.bvh"), "--no-progress"]
    # The two-epoch test model barely moves: the still rule refuses it, nothing is written...
    assert main(args) == 1
    assert "stands still" in capsys.readouterr().err and not out.exists()
    rc = main([*args, "--allow-still"])  # ...unless asked to
    assert rc == 0, capsys.readouterr().err
    cap = cv2.VideoCapture(str(out))
    n = 0
    while cap.read()[0]:
        n += 1
    assert n == 100 and cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
    joints, root = read_skeletons(tmp_path / "m.json")  # the dataset's own reader accepts it
    assert joints.shape == (100, 23, 3) and root.shape == (100, 3)
    world = np.load(tmp_path / "m.npy")
    assert world.shape == (100, 23, 3)
    np.testing.assert_allclose(world, joints + root[:, None], atol=2e-4)
    bvh = read_bvh(tmp_path / "m.bvh")
    assert len(bvh.motion) == 100 and bvh.fps == pytest.approx(25.0)
    assert "100 frames" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing", "not_audio", "too_short", "no_folder",
                                  "bad_suffix", "span_past_end", "out_is_folder", "start_inf",
                                  "start_nan", "duration_nan", "duration_negative",
                                  "start_negative", "truncated_mp3", "motion_twice",
                                  "motion_is_folder"])
def test_dance_bad_input_clear_error_no_output(case, tmp_path, capsys):
    import soundfile as sf

    song = tmp_path / "song.wav"
    sf.write(song, np.zeros(int(3.0 * 22050), np.float32), 22050)
    out = tmp_path / "out" / "dance.mp4"
    out.parent.mkdir()
    extra: list[str] = []
    expect = ""
    if case == "missing":
        song, expect = tmp_path / "nope.mp3", "no such file"
    elif case == "not_audio":
        song = tmp_path / "notes.mp3"
        song.write_text("this is not a song\n" * 50)
        expect = "cannot decode audio"
    elif case == "too_short":
        song = tmp_path / "short.wav"
        sf.write(song, np.zeros(11025, np.float32), 22050)
        expect = "at least 1 s"
    elif case == "no_folder":
        out, expect = tmp_path / "missing" / "dance.mp4", "output folder does not exist"
    elif case == "bad_suffix":
        out, expect = tmp_path / "out" / "dance.avi", ".mp4"
    elif case == "span_past_end":
        extra, expect = ["--start", "2.5"], "shorter than 1 s"
    elif case == "out_is_folder":  # issue 22: rendered the whole video, then a traceback
        out = tmp_path / "out" / "existing.mp4"
        out.mkdir()
        expect = "is a folder"
    elif case == "start_inf":  # issue 22: a traceback
        extra, expect = ["--start", "inf"], "--start must be a finite number"
    elif case == "start_nan":
        extra, expect = ["--start", "nan"], "--start must be a finite number"
    elif case == "duration_nan":  # issue 22: silently rendered the whole song
        extra, expect = ["--duration", "nan"], "--duration must be a finite number"
    elif case == "duration_negative":
        extra, expect = ["--duration", "-2"], "--duration must be > 0"
    elif case == "start_negative":
        extra, expect = ["--start=-1"], "--start must be >= 0"
    elif case == "truncated_mp3":  # issue 22: danced to the missing part as silence
        song = tmp_path / "cut.mp3"
        sf.write(song, np.random.default_rng(0).normal(0, .1, 22050 * 6).astype(np.float32),
                 22050, format="MP3")
        data = song.read_bytes()
        song.write_bytes(data[: len(data) // 3])
        expect = "truncated"
    elif case == "motion_twice":  # m.json writes m.npy: asking for both would clash
        extra, expect = ["--motion-out", str(tmp_path / "out" / "m.npy")], "written twice"
    elif case == "motion_is_folder":
        (tmp_path / "out" / "m.bvh").mkdir()
        extra, expect = ["--motion-out", str(tmp_path / "out" / "m.bvh")], "is a folder"
    # No model is loaded: input errors come first (the model path does not even exist).
    rc = main(["dance", str(song), "-o", str(out), "--model", str(tmp_path / "model.pt"),
               "--no-progress", "--motion-out", str(tmp_path / "out" / "m.json"), *extra])
    err = capsys.readouterr().err
    assert rc == 1
    assert expect in err and "Traceback" not in err
    left = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert left == [n for n in ("existing.mp4", "m.bvh") if (tmp_path / "out" / n).is_dir()]
    for d in (tmp_path / "out").iterdir():
        assert not d.is_dir() or list(d.iterdir()) == []


def test_dance_outputs_all_or_none(tmp_path):
    """Outputs appear together at the end; a failure while putting them in place undoes it."""
    from melodance.render.dance import staged_outputs

    out = tmp_path / "out"
    out.mkdir()
    (out / "a.mp4").write_text("the user's old video")
    files = [out / "a.mp4", out / "m.json", out / "m.npy"]
    with pytest.raises(RuntimeError, match="late failure"):
        with staged_outputs(files) as staged:
            for f in files:
                staged[f].write_text("new")
            raise RuntimeError("late failure")
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4"]
    assert (out / "a.mp4").read_text() == "the user's old video"

    # One output cannot be put in place (its name became a folder meanwhile): none is.
    with pytest.raises(OSError):
        with staged_outputs(files) as staged:
            for f in files:
                staged[f].write_text("new")
            (out / "m.npy").mkdir()
    assert (out / "a.mp4").read_text() == "the user's old video"
    assert not (out / "m.json").exists()
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "m.npy"]
    (out / "m.npy").rmdir()

    with staged_outputs(files) as staged:
        for f in files:
            staged[f].write_text("new")
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "m.json", "m.npy"]
    assert all(f.read_text() == "new" for f in files)


def test_render_compare_and_stage(tiny_bundle, tiny_features, synth_corpus, mlflow_store,
                                  tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    from melodance.render.config import RenderConfig
    from melodance.render.stage import render_split

    out = tmp_path / "cmp.mp4"
    rc = main(["render", "--compare", "DANCE_W_2", "--features", str(tiny_features),
               "--model", str(tiny_bundle), "--data", str(synth_corpus), "-o", str(out),
               "--max-seconds", "2", "--no-progress", "--params", str(tmp_path / "none.yaml"),
               "--allow-still"])  # the two-epoch test model barely moves
    assert rc == 0, capsys.readouterr().err
    import cv2

    cap = cv2.VideoCapture(str(out))
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 1280  # two 640-wide panels
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 50

    res = render_split(tiny_features, tiny_bundle, synth_corpus, tmp_path / "render",
                       RenderConfig(max_seconds=2.0, allow_still=True), log_mlflow=True)
    assert res["n_videos"] == 2 and res["n_failed"] == 0
    summary = json.loads((tmp_path / "render" / "videos.json").read_text())
    for name, v in summary["videos"].items():
        assert (tmp_path / "render" / f"{name}.mp4").is_file()
        assert v["frames"] == v["frames_expected"] == 50 and v["failed_checks"] == []
    assert (tmp_path / "render" / "data_docs" / "index.html").is_file()
    client = MlflowClient(mlflow_store)
    (run,) = client.search_runs(client.search_experiments()[0].experiment_id,
                                "tags.`melodance.stage` = 'render'")
    logged = {a.path for a in client.list_artifacts(run.info.run_id, "render")}
    assert {f"render/{n}.mp4" for n in summary["videos"]} <= logged
