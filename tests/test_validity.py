"""The validity test of music-conditioned metrics, the alignment measures and the matching model."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from melodance.evaluate.validity import alignment as A
from melodance.evaluate.validity import core as V
from melodance.evaluate.validity import music as VM

FPS = 25.0
CHECKED = ("bas_music", "bas_motion", "onset_foot_coherence")


def make_song(rng: np.random.Generator, seconds: float) -> tuple[VM.MusicInfo, np.ndarray]:
    """A steady song at a random tempo: onset pulses on its beats.

    Returns the MusicInfo and the full beat grid (covering a beat before and after).
    """
    period = 60.0 / rng.uniform(90.0, 140.0)
    grid = np.arange(rng.uniform(0.0, period) - period, seconds + 2 * period, period)
    grid = grid + rng.normal(0.0, 0.004, grid.size)
    T = int(seconds * FPS)
    t = np.arange(T) / FPS
    onset = np.exp(-((t[:, None] - grid[None, :]) ** 2) / (2 * 0.03**2)).sum(1)
    onset += 0.05 * rng.random(T)
    beats = grid[(grid >= 0) & (grid < T / FPS)]
    return VM.MusicInfo(FPS, beats, onset), grid


def make_dance(grid: np.ndarray, T: int, rng: np.random.Generator) -> np.ndarray:
    """A body that travels one step per beat and stands still on every beat of ``grid``."""
    t = np.arange(T) / FPS
    k = np.searchsorted(grid, t, side="right") - 1
    phase = (t - grid[k]) / (grid[k + 1] - grid[k])
    travel = 30.0 * (k + (1.0 - np.cos(np.pi * phase)) / 2.0)  # cm; zero speed on the beats
    body = rng.normal(0.0, 30.0, (23, 3)) + np.array([0.0, 100.0, 0.0])
    x = np.broadcast_to(body, (T, 23, 3)).copy()
    x[..., 0] += travel[:, None]
    return x + rng.normal(0.0, 0.2, x.shape)


def corpus(n: int, seed: int, seconds: float = 40.0, own: bool = True):
    """``n`` dances with songs. own=False: every dance follows a song left out of the set."""
    rng = np.random.default_rng(seed)
    motions, musics = [], []
    for _ in range(n):
        music, grid = make_song(rng, seconds)
        if not own:  # the dance follows another, unseen song
            _, grid = make_song(rng, seconds)
        motions.append(make_dance(grid, music.n_frames, rng))
        musics.append(music)
    return motions, musics


@pytest.fixture(scope="module")
def on_beat():
    return corpus(8, seed=1)


@pytest.mark.parametrize("name", CHECKED)
def test_dance_on_its_songs_beats_is_informative(on_beat, name):
    motions, musics = on_beat
    res, table = V.validate_metric(motions, musics, A.ANALYTIC_METRICS[name], FPS, n_perm=2000)
    assert table.scores.shape == (8, 8)
    assert res.p_value < 0.01
    assert res.verdict == V.INFORMATIVE
    assert res.gap > 0 and res.effect_dz > 1.0 and res.own_rank_auc > 0.9


@pytest.mark.parametrize("name", CHECKED)
def test_dance_under_unrelated_songs_is_not_informative(name):
    motions, musics = corpus(8, seed=2, own=False)
    res, _ = V.validate_metric(motions, musics, A.ANALYTIC_METRICS[name], FPS, n_perm=2000)
    assert res.p_value > 0.05
    assert res.verdict == V.NOT_INFORMATIVE


def test_permutation_test_is_reproducible(on_beat):
    motions, musics = corpus(6, seed=3, own=False)
    table = V.score_table(motions, musics, A.onset_foot_coherence, FPS)
    a = V.validity_test(table, n_perm=500, seed=7).to_dict()
    b = V.validity_test(table, n_perm=500, seed=7).to_dict()
    np.testing.assert_equal(a, b)  # nan == nan here (no across-style songs)
    c = V.validity_test(table, n_perm=500, seed=8)
    assert c.gap == a["gap"] and c.p_value != a["p_value"]  # only the permutations changed


def test_permutation_p_matches_exact_enumeration():
    rng = np.random.default_rng(0)
    rows = [(float(rng.normal(0.5)), rng.normal(size=2)) for _ in range(4)]
    stats = []
    for own, others in rows:
        v = np.r_[own, others]
        stats.append([v[c] - np.delete(v, c).mean() for c in range(3)])
    observed = sum(s[0] for s in stats)
    # Every assignment of "own" to one of the 3 candidates per row, equally likely.
    totals = [sum(s[c] for s, c in zip(stats, pick, strict=True))
              for pick in itertools.product(range(3), repeat=len(rows))]
    exact = np.mean(np.array(totals) >= observed - 1e-12)
    p = V.permutation_p(rows, n_perm=40_000, seed=1)
    assert abs(p - exact) < 0.01
    assert 0.0 < exact < 1.0


def test_verdict_rule():
    assert V.verdict(0.01) == V.INFORMATIVE
    assert V.verdict(0.0499) == V.INFORMATIVE
    assert V.verdict(0.05) == V.NOT_INFORMATIVE  # strictly below alpha
    assert V.verdict(0.2) == V.NOT_INFORMATIVE
    assert V.verdict(float("nan")) == V.NOT_INFORMATIVE
    assert V.verdict(0.08, alpha=0.1) == V.INFORMATIVE
    with pytest.raises(ValueError, match="alpha"):
        V.verdict(0.01, alpha=1.5)


def _table(S: np.ndarray) -> V.ScoreTable:
    n = len(S)
    return V.ScoreTable(np.asarray(S, float), np.arange(n), np.zeros(n, int), 10)


def test_test_is_one_sided_and_follows_the_direction():
    n = 10
    best_own = np.ones((n, n)) + 0.01 * np.arange(n)[None, :]
    np.fill_diagonal(best_own, 5.0)
    worst_own = -best_own
    up = V.validity_test(_table(best_own), n_perm=1000)
    assert up.verdict == V.INFORMATIVE and up.own_rank_auc == 1.0 and up.gap > 0
    assert up.p_value == pytest.approx(1 / 1001)
    down = V.validity_test(_table(worst_own), n_perm=1000)
    assert down.verdict == V.NOT_INFORMATIVE and down.p_value > 0.99 and down.own_rank_auc == 0.0
    # A lower-is-better metric is informative when its own song scores lowest.
    low = V.validity_test(_table(worst_own), n_perm=1000, higher_is_better=False)
    assert low.verdict == V.INFORMATIVE and low.gap < 0 and low.effect_dz > 0


def test_within_and_across_style():
    # Songs of the dance's style score higher than other styles, own no better than its style.
    styles = ["a"] * 4 + ["b"] * 4
    same = np.equal.outer(styles, styles)
    S = np.where(same, 1.0, 0.0) + np.random.default_rng(0).normal(0, 0.01, (8, 8))
    res = V.validity_test(_table(S), styles, n_perm=2000)
    assert res.p_across < 0.01
    assert res.p_within > 0.05
    assert res.n_within == res.n_across == 8
    assert res.gap_within == pytest.approx(res.own - res.other_within)


def test_score_table_cuts_own_and_other_to_one_length():
    lengths = [100, 80, 130]
    motions = [np.zeros((n, 23, 3)) for n in lengths]
    musics = [VM.MusicInfo(FPS, np.arange(0, n / FPS, 0.5), np.zeros(n)) for n in lengths]
    seen = []

    def score(x, fps, m):
        assert len(x) == m.n_frames
        seen.append(len(x))
        return float(len(x))

    t = V.score_table(motions, musics, score, FPS)
    assert t.clip_frames == 80 and set(seen) == {80}
    assert t.scores.shape == (3, 3) and np.all(t.scores == 80)
    t = V.score_table(motions, musics, score, FPS, clip_frames=40, max_clips=None)
    assert list(t.own) == [0, 0, 1, 1, 2, 2, 2]
    assert np.isnan(t.scores[6, 1])  # the third clip of dance 2: song 1 is too short
    mask = np.zeros((3, 3), bool)
    t = V.score_table(motions, musics, score, FPS, mask=mask)
    assert np.all(np.isnan(t.scores[~np.eye(3, dtype=bool)])) and np.all(np.diag(t.scores) == 80)


def test_music_window_retimes_beats():
    m = VM.MusicInfo(FPS, np.array([0.2, 1.0, 2.0, 3.5]), np.arange(100.0),
                    np.arange(200.0).reshape(100, 2))
    w = m.window(25, 75)  # 1 s to 3 s
    np.testing.assert_allclose(w.beats_s, [0.0, 1.0])
    assert w.n_frames == 50 and w.onset[0] == 25 and w.features.shape == (50, 2)
    with pytest.raises(ValueError, match="empty"):
        m.window(80, 80)


def test_music_info_from_features_seed16():
    music = np.random.default_rng(0).random((50, 16)).astype(np.float32)
    m = VM.music_info_from_features(music, np.array([-3, 5, 30, 60]), FPS)
    np.testing.assert_allclose(m.onset, music[:, 15], rtol=1e-6)
    np.testing.assert_allclose(m.beats_s, [0.2, 1.2])


def test_alignment_measures_on_a_dance_on_the_beat(on_beat):
    motions, musics = on_beat
    x, m = motions[0], musics[0]
    assert A.bas_music_score(x, FPS, m) > 0.9
    assert A.beat_phase_consistency(x, FPS, m) > 0.9
    assert A.onset_foot_coherence(x, FPS, m) > 0.5
    assert A.onset_motion_xcorr(x, FPS, m) > 0.2
    # Too short for two coherence segments: undefined rather than a number near 1.
    assert math.isnan(A.onset_foot_coherence(x[:200], FPS, m.window(0, 200)))
    with pytest.raises(ValueError, match="fps"):
        A.onset_foot_coherence(x, 60.0, m)


def test_consistency_scores(on_beat):
    motions, musics = on_beat
    same = V.consistency_scores(motions, motions, musics, FPS)
    assert same["model"] == pytest.approx(same["ground_truth"])
    assert same["ground_truth"] > same["ground_truth_other_song"] + 0.2
    shuffled = V.consistency_scores(motions[1:] + motions[:1], motions, musics, FPS)
    assert shuffled["model"] < same["ground_truth_other_song"] + 0.1


def test_synth_corpus_dances_follow_their_songs(synth_corpus):
    """The embedded corpus through the real audio analysis: own songs win."""
    from melodance.evaluate.validity.report import load_corpus

    c = load_corpus(synth_corpus, progress=False)
    for name in ("bas_music", "onset_foot_coherence"):
        res, _ = V.validate_metric(c.motions, c.musics, A.ANALYTIC_METRICS[name], c.fps,
                                   c.styles, n_perm=2000)
        assert res.p_value < 0.01 and res.p_within < 0.05, name
    # The same dances under songs that did not drive them: nothing.
    k = len(c.names) // 2
    res, _ = V.validate_metric(c.motions[:k], c.musics[k:2 * k], A.onset_foot_coherence, c.fps,
                               n_perm=2000)
    assert res.p_value > 0.05


def test_roc_auc():
    from melodance.evaluate.validity.matching import roc_auc

    assert roc_auc([2.0, 3.0], [0.0, 1.0]) == 1.0
    assert roc_auc([0.0], [1.0]) == 0.0
    assert roc_auc([1.0, 1.0], [1.0]) == 0.5
    assert roc_auc([1.0, 3.0], [2.0]) == 0.5
    assert math.isnan(roc_auc([], [1.0]))


def test_matching_model_trains_deterministically_and_reloads(on_beat, tmp_path):
    from melodance.evaluate.validity.matching import (
        MatchingConfig,
        MatchingModel,
        matching_score,
        train_matching,
    )

    motions, songs = on_beat
    rng = np.random.default_rng(0)
    # seed16-shaped features: onset strength in its column, noise elsewhere.
    musics = [VM.MusicInfo(FPS, m.beats_s, m.onset,
                          np.c_[rng.random((m.n_frames, 15)), m.onset].astype(np.float32))
              for m in songs]
    cfg = MatchingConfig(steps=20, steps_per_epoch=10, channels=4, embed_dim=8, batch_size=16,
                         threads=1)
    m1, h1 = train_matching(motions[:6], musics[:6], FPS, cfg, val=(motions[6:], musics[6:]))
    m2, h2 = train_matching(motions[:6], musics[:6], FPS, cfg, val=(motions[6:], musics[6:]))
    assert [r["epoch"] for r in h1] == [1, 2] and h1 == h2
    assert all(np.isfinite(r["train_loss"]) and np.isfinite(r["val_loss"]) for r in h1)
    m1.save(tmp_path / "m.pt")
    m3 = MatchingModel.load(tmp_path / "m.pt")
    s1, s3 = matching_score(m1), matching_score(m3)
    assert s1(motions[7], FPS, musics[7]) == pytest.approx(s3(motions[7], FPS, musics[7]))
    assert -1.0 <= s1(motions[7], FPS, musics[0]) <= 1.0
    with pytest.raises(ValueError, match="seed16"):
        s1(motions[7], FPS, songs[7])  # no features


def test_matching_model_is_tracked_in_mlflow(on_beat, tmp_path, mlflow_store):
    from mlflow.tracking import MlflowClient

    from melodance.evaluate.validity.matching import MatchingConfig, train_and_track

    motions, songs = on_beat
    musics = [VM.MusicInfo(FPS, m.beats_s, m.onset, np.tile(m.onset[:, None], 16).astype(np.float32))
              for m in songs]
    cfg = MatchingConfig(steps=20, steps_per_epoch=10, channels=4, embed_dim=8, batch_size=16,
                         threads=1)
    _, info = train_and_track((motions[:5], musics[:5]), (motions[5:6], musics[5:6]),
                              (motions[5:], musics[5:], ["x"] * 3), FPS, cfg,
                              out_path=tmp_path / "matching.pt")
    client = MlflowClient(mlflow_store)
    run = client.get_run(info["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["melodance.stage"] == "matching"
    assert run.data.params["steps"] == "20"
    assert [m.step for m in client.get_metric_history(info["run_id"], "train_loss")] == [1, 2]
    assert run.data.metrics["test_roc_auc"] == pytest.approx(info["test"]["auc"])
    assert (tmp_path / "matching.pt").is_file()


def test_write_docs_keeps_hand_written_text(tmp_path):
    from melodance.evaluate.validity.report import BEGIN, END, write_docs

    p = tmp_path / "page.md"
    write_docs(p, f"{BEGIN}\nfirst\n{END}", header="# Title\n\nIntro.\n")
    p.write_text(p.read_text() + "\nExplanation below.\n")
    write_docs(p, f"{BEGIN}\nsecond\n{END}")
    text = p.read_text()
    assert "Intro." in text and "Explanation below." in text
    assert "second" in text and "first" not in text
