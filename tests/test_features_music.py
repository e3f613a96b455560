"""Music features on synthetic signals: beats on a click track, exact frame alignment."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from melodance.features.config import FeaturesConfig
from melodance.features.music import (
    MEL80_GROUPS,
    SEED16_GROUPS,
    music_features,
    read_audio_span,
    song_features,
)

CFG = FeaturesConfig()


def click_track(bpm: float, sr: int, seconds: float, first_s: float = 1.0):
    """Clicks (short decaying 1 kHz bursts) every beat, plus faint noise."""
    rng = np.random.default_rng(0)
    y = rng.normal(0, 1e-3, int(seconds * sr))
    times = np.arange(first_s, seconds - 0.5, 60.0 / bpm)
    n = int(0.03 * sr)
    burst = np.sin(2 * np.pi * 1000 * np.arange(n) / sr) * np.exp(-np.arange(n) / (0.005 * sr))
    for t in times:
        i = int(round(t * sr))
        y[i: i + n] += burst
    return y.astype(np.float32), times


def music_signal(sr: int, seconds: float):
    """Chords changing every 2 s over a steady pulse: every feature group varies."""
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * sr)) / sr
    y = np.zeros_like(t)
    for k, f0 in enumerate(rng.uniform(110, 440, int(seconds / 2) + 1)):
        sel = (t >= 2 * k) & (t < 2 * k + 2)
        for ratio in (1.0, 1.26, 1.5):
            y[sel] += 0.2 * np.sin(2 * np.pi * f0 * ratio * t[sel])
    pulse = (np.mod(t, 0.5) < 0.02) * rng.normal(0, 0.5, len(t))
    return (y + pulse).astype(np.float32)


@pytest.mark.parametrize("bpm", [125.0, 93.75])  # beat periods of 12 and 16 frames
def test_click_track_beats_land_on_the_clicks(tmp_path, bpm):
    sr = 44100
    y, times = click_track(bpm, sr, 40.0)
    path = tmp_path / "clicks.wav"
    sf.write(path, y, sr)
    start_s, n = 6.0, 600  # frames 0..599 cover 6.0 s .. 29.96 s of the song
    raw = song_features(path, start_s, n, FeaturesConfig(temporal_normalize=False))
    click_frames = np.round((times - start_s) * 25).astype(int)
    click_frames = click_frames[(click_frames >= 0) & (click_frames < n)]
    np.testing.assert_array_equal(np.flatnonzero(raw["temporal"][:, 1]), click_frames)
    assert raw["tempo_bpm"] == pytest.approx(bpm, rel=0.02)
    # Frames since the last click, counted from each click.
    period = 60.0 / bpm * 25
    k = np.searchsorted(click_frames, np.arange(n), side="right") - 1
    inside = k >= 0
    np.testing.assert_array_equal(raw["temporal"][inside, 0],
                                  np.arange(n)[inside] - click_frames[k[inside]])
    # Before the first click in the span: counted from the click before it.
    np.testing.assert_array_equal(raw["temporal"][~inside, 0],
                                  np.arange(n)[~inside] - (click_frames[0] - period))
    norm = song_features(path, start_s, n, CFG)["temporal"]
    np.testing.assert_allclose(norm[inside, 0], raw["temporal"][inside, 0] / period, atol=1e-6)
    np.testing.assert_allclose(norm[:, 2], np.arange(n) / (n - 1), atol=1e-6)
    assert np.abs(raw["beat_times_s"][(raw["beat_frames"] >= 0) & (raw["beat_frames"] < n)]
                  - (start_s + click_frames / 25)).max() < 1e-9


def test_span_features_equal_whole_song_features(tmp_path):
    """Frame t of a span is frame start + t of the whole song: exact alignment."""
    sr = CFG.sample_rate
    y = music_signal(sr, 30.0)
    path = tmp_path / "song.wav"
    sf.write(path, y, sr, subtype="FLOAT")
    whole, groups = music_features(y, CFG)
    assert groups == SEED16_GROUPS and whole.shape == (1 + len(y) // CFG.hop_length, 16)
    S, n = 200, 300  # the dance starts at song frame 200 (8 s)
    span = song_features(path, S / 25, n, CFG)
    assert span["music"].shape == (n, 16)
    np.testing.assert_allclose(span["music"], whole[S: S + n], rtol=1e-4, atol=1e-3)


def test_span_alignment_through_the_resampler(tmp_path):
    sr_native = 44100
    y = music_signal(sr_native, 20.0)
    path = tmp_path / "song.wav"
    sf.write(path, y, sr_native, subtype="FLOAT")
    import soxr

    whole, _ = music_features(soxr.resample(y, sr_native, CFG.sample_rate, quality="HQ"), CFG)
    S, n = 150, 200
    span = song_features(path, S / 25, n, CFG)["music"]
    ref = whole[S: S + n]
    # Shifting the span by one frame must be far worse than the residual.
    err = np.abs(span - ref).mean(axis=0)
    err_shift = np.abs(span - whole[S + 1: S + 1 + n]).mean(axis=0)
    assert (err[:6] < 0.05 * err_shift[:6]).all(), (err, err_shift)
    np.testing.assert_allclose(span, ref, atol=0.05 * np.abs(ref).max())


def test_read_audio_span_matches_a_full_read(tmp_path):
    sr = CFG.sample_rate
    y = music_signal(sr, 5.0)
    path = tmp_path / "song.wav"
    sf.write(path, y, sr, subtype="FLOAT")
    np.testing.assert_array_equal(read_audio_span(path, sr, 1000, 5000), y[1000:6000])
    # Outside the song: silence.
    out = read_audio_span(path, sr, -300, 600)
    assert (out[:300] == 0).all()
    np.testing.assert_array_equal(out[300:], y[:300])
    tail = read_audio_span(path, sr, len(y) - 10, 40)
    assert (tail[10:] == 0).all()


def test_mel80_and_whole_song(tmp_path):
    sr = 22050
    y = music_signal(sr, 12.0)
    path = tmp_path / "song.wav"
    sf.write(path, y, sr)
    cfg = FeaturesConfig(music="mel80")
    out = song_features(path, 2.0, None, cfg)  # to the end of the song
    assert out["groups"] == MEL80_GROUPS
    assert out["music"].shape == (250, 80) and out["temporal"].shape == (250, 3)
    assert np.isfinite(out["music"]).all()


def test_unreadable_audio_names_the_file(tmp_path):
    bad = tmp_path / "audio.mp3"
    bad.write_bytes(b"not audio at all" * 100)
    with pytest.raises(ValueError, match="audio.mp3: cannot decode audio"):
        song_features(bad, 0.0, 10, CFG)


def test_fast_path_equals_librosa_functions():
    """The derived features equal librosa's own functions on the same signal."""
    import librosa

    sr, hop, n_fft = CFG.sample_rate, CFG.hop_length, CFG.n_fft
    y = music_signal(sr, 20.0)
    feats, groups = music_features(y, CFG)
    g = {name: feats[:, a:b] for name, a, b in groups}
    log_mel = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop), top_db=None)
    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=3)
    # float32 round-off in near-empty mel bands moves log values a little.
    scale = np.abs(mfcc).max()
    np.testing.assert_allclose(g["mfcc"], mfcc.T, atol=1e-3 * scale)
    np.testing.assert_allclose(g["mfcc_delta"], librosa.feature.delta(mfcc).T, atol=1e-3 * scale)
    chroma = librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=hop, n_chroma=4, tuning=0.0)
    np.testing.assert_allclose(g["chroma_cqt"], chroma.T, atol=1e-4)
    # Onset strength: librosa's flux (lag 1, no centring shift), one frame earlier
    # than librosa's centred convention (see onset_envelope).
    flux = librosa.onset.onset_strength(S=log_mel, sr=sr, hop_length=hop, center=False)
    np.testing.assert_allclose(g["onset_strength"][1:, 0], flux[:-1], atol=1e-3 * flux.max())
    tgram = librosa.feature.tempogram(onset_envelope=g["onset_strength"][:, 0], sr=sr,
                                      hop_length=hop, win_length=96)
    bpm = librosa.tempo_frequencies(96, sr=sr, hop_length=hop)
    band = (bpm >= 80) & (bpm < 110)  # the third band
    np.testing.assert_allclose(g["tempogram"][:, 2], tgram[band].mean(axis=0), atol=1e-5)
