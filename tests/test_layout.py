"""The corpus reader on the real dataset and on broken input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from melodance.data.layout import LayoutError, read_corpus, read_sequence, sequence_dirs


def test_reads_every_real_sequence(real_data):
    seqs = read_corpus(real_data)
    assert len(seqs) == len(sequence_dirs(real_data)) >= 36
    assert {s.style for s in seqs} == {"C", "R", "T", "W"}
    for s in seqs:
        assert s.joints.shape == (s.n_frames, 23, 3)
        assert s.root.shape == (s.n_frames, 3)
        assert s.fps == 25.0
        assert s.audio_path.name == "audio.mp3"
        # measured fact: 0.1 % to 2.2 % fewer frames than the span
        assert 0.97 < s.n_frames / s.span_frames <= 1.0
        # feet sit about 85 cm below the root
        assert -100 < float(np.median(s.joints[:, 10, 1])) < -70


def _copy_seq(real_data, tmp_path, name="DANCE_C_2"):
    dst = tmp_path / "corpus" / name
    shutil.copytree(real_data / name, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    dst.chmod(0o755)
    return dst


def test_not_the_layout(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("hello")
    with pytest.raises(LayoutError, match="not the Music-to-Dance layout"):
        read_corpus(tmp_path / "x")
    with pytest.raises(LayoutError, match="not a folder"):
        read_corpus(tmp_path / "missing")


@pytest.mark.parametrize("fault,match", [
    ("truncated_json", "malformed JSON"),
    ("missing_config", "config.json: missing"),
    ("nan", "NaN"),
    ("22_joints", r"expected \[N, 23, 3\]"),
    ("length_mismatch", "length"),
    ("no_audio", "no audio file"),
    ("end_before_start", "not after start_position"),
])
def test_broken_sequence_names_file_and_problem(real_data, tmp_path, fault, match):
    d = _copy_seq(real_data, tmp_path)
    skel = d / "skeletons.json"
    if fault == "truncated_json":
        skel.write_bytes(skel.read_bytes()[:1000])
    elif fault == "missing_config":
        (d / "config.json").unlink()
    elif fault == "no_audio":
        (d / "audio.mp3").unlink()
    elif fault == "end_before_start":
        (d / "config.json").write_text(json.dumps({"start_position": 50, "end_position": 10}))
    else:
        obj = json.loads(skel.read_text())
        if fault == "nan":
            obj["skeletons"][5][3][1] = float("nan")
        elif fault == "22_joints":
            obj["skeletons"] = [f[:22] for f in obj["skeletons"]]
        elif fault == "length_mismatch":
            obj["length"] += 7
        skel.write_text(json.dumps(obj))
    with pytest.raises(LayoutError, match=match) as e:
        read_sequence(d)
    assert "DANCE_C_2" in str(e.value)
