"""The embedded synthetic corpus: deterministic, in the real layout, learnable."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import wave

import numpy as np
import pytest

from melodance import FPS
from melodance.data.layout import read_corpus
from melodance.data.skeleton import BONES, RIGID_BONES, bone_lengths
from melodance.data.synth import (
    STYLES,
    SynthConfig,
    corpus_plan,
    pcos,
    pexp,
    psin,
    render_dance,
    tree_digest,
    write_corpus,
)

LAYOUT_FILES = ["audio.wav", "config.json", "skeletons.json"]


@pytest.fixture(scope="module")
def corpus(synth_corpus):
    return read_corpus(synth_corpus)


@pytest.fixture(scope="module")
def plans():
    return {p.name: p for p in corpus_plan(SynthConfig())}


def test_twice_gives_identical_bytes(synth_corpus, tmp_path):
    write_corpus(tmp_path / "again", SynthConfig())
    first, second = tree_digest(synth_corpus), tree_digest(tmp_path / "again")
    assert first == second
    assert len(first) == 12 * 3


def test_sequence_bytes_do_not_depend_on_the_other_counts(synth_corpus, tmp_path):
    cfg = SynthConfig(sequences={"cha_cha": 0, "rumba": 0, "tango": 0, "waltz": 2})
    assert write_corpus(tmp_path / "w", cfg) == ["DANCE_W_1", "DANCE_W_2"]
    full = tree_digest(synth_corpus)
    for rel, digest in tree_digest(tmp_path / "w").items():
        assert full[rel] == digest, rel


def test_another_seed_gives_another_corpus(synth_corpus, tmp_path):
    cfg = SynthConfig(seed=7, sequences={"cha_cha": 1, "rumba": 0, "tango": 0, "waltz": 0})
    write_corpus(tmp_path / "c", cfg)
    other = tree_digest(tmp_path / "c")
    assert other["DANCE_C_1/skeletons.json"] != tree_digest(synth_corpus)["DANCE_C_1/skeletons.json"]


def test_layout_and_file_formats(synth_corpus, corpus, plans):
    names = sorted(p.name for p in synth_corpus.iterdir())
    assert names == sorted(plans)
    assert {s.style for s in corpus} == {"C", "R", "T", "W"}
    minutes = 0.0
    for seq in corpus:
        d = synth_corpus / seq.name
        assert sorted(p.name for p in d.iterdir()) == LAYOUT_FILES
        assert seq.n_frames == seq.span_frames  # N == E - S
        assert 20.0 <= seq.duration_s <= 32.0
        minutes += seq.duration_s / 60
        cfg_text = (d / "config.json").read_text()
        assert cfg_text == json.dumps({"start_position": seq.start_frame,
                                       "end_position": seq.end_frame})
        raw = (d / "skeletons.json").read_text()
        assert raw.startswith('{"length":') and " " not in raw[:200]
        obj = json.loads(raw)
        assert list(obj) == ["length", "center", "skeletons"]
        assert all(len(repr(v).split(".")[-1]) <= 4 for v in obj["center"][0])
        with wave.open(str(d / "audio.wav"), "rb") as w:
            assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 22050)
            song_s = w.getnframes() / w.getframerate()
        # the song covers the dance span with music before and after it
        assert seq.start_s >= 1.9 and song_s >= seq.end_s + 0.9
    assert 4.0 < minutes < 7.0


def test_motion_is_plausible(corpus):
    """The thresholds the validation stage takes from the real data."""
    for seq in corpus:
        world = seq.world_joints.astype(np.float64)
        assert np.isfinite(world).all()
        assert np.abs(world).max() < 1000.0
        speed = np.linalg.norm(np.diff(world, axis=0), axis=2) * FPS  # cm/s
        assert 50.0 <= speed.mean() <= 120.0, (seq.name, speed.mean())
        assert speed.max() < 600.0, (seq.name, speed.max())
        root_step = np.linalg.norm(np.diff(seq.root, axis=0), axis=1)
        assert root_step.max() < 20.0, seq.name
        travelled = np.ptp(seq.root[:, [0, 2]], axis=0)
        assert (travelled > 150.0).all(), (seq.name, travelled)  # travels around the floor
        lengths = bone_lengths(seq.joints, RIGID_BONES)
        cv = lengths.std(axis=0) / lengths.mean(axis=0)
        assert cv.max() < 0.08, (seq.name, cv.max())
        # feet about 85 cm below the root; hand-direction points near their joints
        feet = seq.joints[:, [10, 11, 19, 20], 1].mean()
        assert -90.0 < feet < -78.0, (seq.name, feet)
        d21 = np.linalg.norm(seq.joints[:, 21] - seq.joints[:, 14], axis=1).mean()
        d22 = np.linalg.norm(seq.joints[:, 22] - seq.joints[:, 6], axis=1).mean()
        assert 3.0 < d21 < 8.0 and 3.0 < d22 < 8.0


def test_bone_lengths_match_the_real_data(corpus, real_data):
    real = read_corpus(real_data)  # about 1.5 s
    real_median = np.median(np.concatenate([bone_lengths(s.joints) for s in real]), axis=0)
    synth_median = np.median(np.concatenate([bone_lengths(s.joints) for s in corpus]), axis=0)
    rel = np.abs(synth_median - real_median) / real_median
    worst = int(np.argmax(rel))
    assert rel.max() < 0.05, (BONES[worst], synth_median[worst], real_median[worst])


def _landings(height: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Times a foot comes back to the floor after a lift of more than 1.5 cm."""
    base = np.median(height)
    up = height > base + 1.5
    out = []
    for end in np.flatnonzero(up[:-1] & ~up[1:]):
        k = end + 1
        while k < len(height) - 1 and height[k] > base + 0.5:
            k += 1
        out.append(times[k])
    return np.array(out)


def _off_grid(times: np.ndarray, origin: float, step: float, shift: float) -> np.ndarray:
    """Distance (s) of each time to the nearest point of ``origin + (k + shift) * step``."""
    g = (times - origin) / step + shift
    return np.abs(g - np.round(g)) * step


def test_feet_land_on_the_beat(corpus, plans):
    for seq in corpus:
        plan = plans[seq.name]
        # cha-cha has its "4-and" step on the half beat
        grid = plan.beat_s / 2 if seq.style == "C" else plan.beat_s
        t = (seq.start_frame + np.arange(seq.n_frames)) / FPS
        world = seq.world_joints
        land = np.concatenate([_landings(world[:, a, 1], t) for a in (9, 18)])
        assert len(land) >= seq.duration_s / (4 * plan.beat_s), seq.name  # several per bar

        on = _off_grid(land, plan.first_beat_s, grid, 0.0)
        assert (on < 0.06).mean() > 0.9, (seq.name, np.sort(on)[-5:])
        # the same landings against a grid half a step off are far from it
        off = _off_grid(land, plan.first_beat_s, grid, 0.5)
        assert np.median(off) > 2 * np.median(on) + 0.04, seq.name


def test_waltz_falls_on_one_and_rises_on_two_three(corpus, plans):
    for seq in (s for s in corpus if s.style == "W"):
        plan = plans[seq.name]
        t = (seq.start_frame + np.arange(seq.n_frames)) / FPS
        pos = np.mod((t - plan.first_beat_s) / plan.beat_s, 3.0)
        y = seq.root[:, 1]
        low, high = y[pos < 0.25].mean(), y[(pos > 1.5) & (pos < 2.5)].mean()
        assert high - low > 2.0, (seq.name, low, high)


def test_songs_have_their_styles_tempo_and_accented_downbeats(synth_corpus, plans):
    librosa = pytest.importorskip("librosa")
    import soundfile as sf

    for name, plan in plans.items():
        style = STYLES[plan.style]
        assert style.bpm[0] <= plan.bpm <= style.bpm[1]
        y, sr = sf.read(synth_corpus / name / "audio.wav", dtype="float32")
        onset = librosa.onset.onset_strength(y=y, sr=sr)
        tempo, _ = librosa.beat.beat_track(onset_envelope=onset, sr=sr)
        tempo = float(np.atleast_1d(tempo)[0])
        assert abs(tempo - plan.bpm) / plan.bpm < 0.05, (name, tempo, plan.bpm)
        # metre: the downbeats are louder and have stronger onsets than the other beats
        frames = librosa.time_to_frames(plan.beat_times(), sr=sr)
        frames = frames[frames < len(onset) - 2]
        down = np.arange(len(frames)) % plan.beats_per_bar == 0
        loud = librosa.feature.rms(y=y)[0][frames + 2]
        assert loud[down].mean() > 1.4 * loud[~down].mean(), name
        peak = np.max([onset[frames + k] for k in range(3)], axis=0)
        assert peak[down].mean() > 1.05 * peak[~down].mean(), name


def test_dance_depends_on_its_song_tempo(plans):
    """Same seed, another tempo: the steps follow the music, not a fixed clock."""
    from dataclasses import replace

    plan = plans["DANCE_W_1"]
    slow = replace(plan, bpm=plan.bpm * 0.9)
    a, _ = render_dance(plan, 0.0)
    b, _ = render_dance(slow, 0.0)
    assert np.abs(a - b).max() > 5.0


def test_same_bytes_with_other_simd_kernels(tmp_path, synth_corpus):
    """numpy's own exp/sin change with the CPU's SIMD level; the corpus must not.

    Emulates a machine without AVX2/AVX-512 by switching numpy's dispatch off.
    """
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    levels = [f for f in ("X86_V3", "X86_V4", "AVX512_ICL", "AVX512_SPR")
              if f in __cpu_dispatch__ and __cpu_features__.get(f)]
    if not levels:
        pytest.skip("this CPU has no SIMD dispatch level above the baseline to switch off")
    script = ("from melodance.data.synth import SynthConfig, write_corpus; "
              "write_corpus(r'%s', SynthConfig(sequences=dict(cha_cha=1, rumba=0, tango=1, "
              "waltz=0)))" % (tmp_path / "plain"))
    env = {**os.environ, "NPY_DISABLE_CPU_FEATURES": " ".join(levels)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    full = tree_digest(synth_corpus)
    plain = tree_digest(tmp_path / "plain")
    assert plain == {k: full[k] for k in plain}


def test_portable_math_matches_numpy():
    x = np.linspace(-2000.0, 2000.0, 400001)
    assert np.abs(psin(x) - np.sin(x)).max() < 1e-12
    assert np.abs(pcos(x) - np.cos(x)).max() < 1e-12
    e = np.linspace(-50.0, 5.0, 100001)
    assert (np.abs(pexp(e) / np.exp(e) - 1.0)).max() < 1e-13


def test_config_is_checked():
    with pytest.raises(ValueError, match="min_dance_s"):
        SynthConfig(min_dance_s=30.0, max_dance_s=25.0)
    with pytest.raises(ValueError):
        SynthConfig(unknown_key=1)
    with pytest.raises(ValueError, match="at least one"):
        SynthConfig(sequences={"cha_cha": 0, "rumba": 0, "tango": 0, "waltz": 0})


# ---------------------------------------------------------------------------
# the command


def _run(argv):
    from melodance.data import commands

    parser = argparse.ArgumentParser(prog="melodance")
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_synth_command(tmp_path, monkeypatch, capsys):
    from melodance.errors import UserError

    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(
        "data:\n  synth:\n    sequences: {cha_cha: 1, rumba: 0, tango: 0, waltz: 1}\n")
    assert _run(["data", "synth"]) == 0
    out = tmp_path / "data"
    assert sorted(p.name for p in out.iterdir()) == ["DANCE_C_1", "DANCE_W_1"]
    assert "wrote 2 sequences" in capsys.readouterr().out
    before = tree_digest(out)

    assert _run(["data", "synth"]) == 0
    assert "up to date" in capsys.readouterr().out

    edited = out / "DANCE_C_1" / "config.json"
    edited.write_text('{"start_position": 0, "end_position": 5}')
    with pytest.raises(UserError, match="--force"):
        _run(["data", "synth"])
    assert edited.read_text() == '{"start_position": 0, "end_position": 5}'

    assert _run(["data", "synth", "--force"]) == 0
    assert tree_digest(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_synth_command_rejects_bad_params(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text("data:\n  synth:\n    sed: 3\n")
    with pytest.raises(ValueError, match="data.synth"):
        _run(["data", "synth"])
    assert not (tmp_path / "data").exists()
