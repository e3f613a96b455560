"""Music features at 25 fps, frame-aligned with the motion.

Music frame t is the analysis window *centred* on the audio instant of motion
frame t: for a dance whose frame 0 sits at ``start_s`` in the song, frame t is
centred at ``start_s + t / fps``. With sr = 12800 and hop = 512 one hop is
exactly one motion frame (librosa's ``center=True`` convention, frame k
centred on sample k * hop).

Feature sets (``features.music``):

- ``seed16`` (the paper's 16 dims, seed 1a), as five named groups:
  ``mfcc`` (3), ``mfcc_delta`` (3), ``chroma_cqt`` (4, constant-Q chroma folded
  into 4 bins), ``tempogram`` (5: autocorrelation tempogram averaged over five
  tempo bands, TEMPO_BANDS_BPM) and ``onset_strength`` (1).
- ``mel80``: 80-band log-mel spectrum, one group.

Decibel scales use a fixed reference and no ``top_db`` clipping so that a
frame's features do not depend on which span of the song was read.

Speed (see benchmarks/bench_features.py): a span is decoded once (only the
span and its context), mixed to mono, resampled once; one power spectrogram
gives the mel bands, from which the MFCCs, their deltas and the onset
envelope follow, and the tempogram and tempo come from that envelope. The
constant-Q chroma runs librosa's multi-rate CQT with filter banks built once
per process. The numbers equal librosa's functions on the same signal.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np

from melodance.errors import InputError
from melodance.features.config import FeaturesConfig
from melodance.features.temporal import temporal_indexes

SEED16_GROUPS: list[tuple[str, int, int]] = [
    ("mfcc", 0, 3),
    ("mfcc_delta", 3, 6),
    ("chroma_cqt", 6, 10),
    ("tempogram", 10, 15),
    ("onset_strength", 15, 16),
]
MEL80_GROUPS: list[tuple[str, int, int]] = [("log_mel", 0, 80)]

N_MELS_SEED = 128  # librosa's default for mfcc and onset_strength
N_MELS_80 = 80
N_MFCC = 3
N_CHROMA = 4
# Five tempo bands (beats per minute): [40, 60), [60, 80), ... [150, 210).
TEMPO_BANDS_BPM = (40.0, 60.0, 80.0, 110.0, 150.0, 210.0)
TEMPOGRAM_WIN = 96  # frames (3.84 s at 25 fps): covers lags up to the slowest band
# Resampler input read beyond the needed span, so the filter's start-up
# transient falls outside the samples kept.
RESAMPLE_MARGIN_S = 0.05


def music_groups(cfg: FeaturesConfig) -> list[tuple[str, int, int]]:
    return list(SEED16_GROUPS if cfg.music == "seed16" else MEL80_GROUPS)


def music_dim(cfg: FeaturesConfig) -> int:
    return music_groups(cfg)[-1][2]


@functools.lru_cache(maxsize=8)
def tempo_band_weights(win_length: int, fps: float) -> np.ndarray:
    """[win_length, 5] averaging weights from tempogram lags to tempo bands."""
    lags = np.arange(win_length, dtype=np.float64)
    with np.errstate(divide="ignore"):
        bpm = 60.0 * fps / lags
    w = np.zeros((win_length, len(TEMPO_BANDS_BPM) - 1))
    for i, (lo, hi) in enumerate(zip(TEMPO_BANDS_BPM[:-1], TEMPO_BANDS_BPM[1:], strict=True)):
        sel = (bpm >= lo) & (bpm < hi)
        if not sel.any():
            raise InputError(f"tempo band {lo}-{hi} BPM holds no lag at {fps} fps")
        w[sel, i] = 1.0 / sel.sum()
    return w


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    import scipy.signal

    return scipy.signal.get_window("hann", n_fft, fftbins=True).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """[1 + n_fft // 2, n_mels] float32 (librosa's Slaney mel filters, transposed)."""
    import librosa

    return np.ascontiguousarray(librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).T,
                                dtype=np.float32)


def frames(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """[T, n_fft] read-only view of centred frames, T = 1 + len(y) // hop.

    Frame t is centred on sample t * hop; the signal is zero-padded by
    n_fft // 2 on both sides (librosa's ``center=True, pad_mode="constant"``).
    """
    padded = np.pad(y, n_fft // 2)
    n = 1 + len(y) // hop
    return np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n]


def stft_power(y: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Hann-windowed power spectrogram, [T, 1 + n_fft // 2] float32 (frames first)."""
    import scipy.fft

    spec = scipy.fft.rfft(frames(y, n_fft, hop) * _hann(n_fft), axis=1)
    return (spec.real ** 2 + spec.imag ** 2).astype(np.float32)


def power_to_db(s: np.ndarray, amin: float = 1e-10) -> np.ndarray:
    """10 log10(max(s, amin)), dB re 1, with no ``top_db`` floor (span-independent)."""
    return 10.0 * np.log10(np.maximum(s, amin))


def onset_envelope(log_mel: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Spectral-flux onset strength, placed on the frame of the onset.

    Args:
        log_mel: [T, n_mels] log-power mel spectrogram, dB.
        n_fft, hop: STFT window and hop, samples.

    Returns:
        [T] float32, the mean positive dB increase per band (librosa's
        ``onset_strength`` with lag 1).

    A sharp onset at frame c first shows in the window of frame
    c - n_fft / (2 hop) + 1 (half way up the Hann window), so the flux into
    that frame is shifted by n_fft / (2 hop) - 1 frames. librosa's
    ``center=True`` shifts one frame further, which puts beats tracked on a
    click track one frame (40 ms) after the clicks.
    """
    T = log_mel.shape[0]
    flux = np.zeros(T, dtype=np.float32)
    flux[1:] = np.maximum(0.0, np.diff(log_mel, axis=0)).mean(axis=1)
    shift = max(n_fft // (2 * hop) - 1, 0)
    env = np.zeros(T, dtype=np.float32)
    env[shift:] = flux[: T - shift]
    return env


# Constant-Q chroma: librosa's CQT (fmin C1, 7 octaves of 36 bins, Hann
# wavelets, filter_scale 1, L1 norm, sparsity 0.01, tuning 0) computed octave
# by octave on a signal halved in rate after each octave, exactly as
# ``librosa.feature.chroma_cqt`` does, but with the filter bases built once
# per process instead of on every call (that rebuild is most of its cost).
CQT_OCTAVES = 7
CQT_BINS_PER_OCTAVE = 36


@functools.lru_cache(maxsize=4)
def _cqt_plan(sr: int, hop: int, n_chroma: int) -> tuple[list, np.ndarray]:
    import librosa

    bpo, n_bins = CQT_BINS_PER_OCTAVE, CQT_OCTAVES * CQT_BINS_PER_OCTAVE
    fmin = librosa.note_to_hz("C1")
    freqs = librosa.cqt_frequencies(n_bins, fmin=fmin, bins_per_octave=bpo)
    r = 2.0 ** (2.0 / bpo)
    alpha = np.full(n_bins, (r - 1.0) / (r + 1.0))  # relative bandwidth of equal-tempered bins
    lengths, cutoff = librosa.filters.wavelet_lengths(freqs=freqs, sr=sr, window="hann",
                                                      filter_scale=1, gamma=0, alpha=alpha)
    if cutoff > sr / 2:
        raise InputError(f"constant-Q chroma needs a sample rate above {2 * cutoff:.0f} Hz")
    if hop % 2 ** (CQT_OCTAVES - 1):
        raise InputError(f"hop_length {hop} must be divisible by {2 ** (CQT_OCTAVES - 1)}")
    octaves = []
    for i in range(CQT_OCTAVES):
        my_sr, my_hop = sr / 2 ** i, hop // 2 ** i
        sl = slice(n_bins - bpo * (i + 1), n_bins - bpo * i)
        basis, blen = librosa.filters.wavelet(freqs=freqs[sl], sr=my_sr, filter_scale=1, norm=1,
                                              pad_fft=True, window="hann", gamma=0,
                                              alpha=alpha[sl])
        n_fft = basis.shape[1]
        basis = basis * (blen[:, None] / n_fft)
        fb = np.fft.fft(basis, n=n_fft, axis=1)[:, : n_fft // 2 + 1]
        fb = librosa.util.sparsify_rows(fb, quantile=0.01, dtype=np.complex64).toarray()
        fb *= np.sqrt(sr / my_sr)
        cols = np.flatnonzero(np.abs(fb).sum(axis=0))
        lo, hi = int(cols[0]), int(cols[-1]) + 1  # only the FFT bins the filters touch
        octaves.append((np.ascontiguousarray(fb[:, lo:hi].T), lo, hi, n_fft, my_hop))
    to_chroma = librosa.filters.cq_to_chroma(n_bins, bins_per_octave=bpo, n_chroma=n_chroma,
                                             fmin=fmin)
    # librosa scales CQT magnitudes by 1 / sqrt(filter length) before folding.
    to_chroma = (to_chroma / np.sqrt(lengths)[None, :]).T.astype(np.float32)
    return octaves, to_chroma


def cqt_chroma(y: np.ndarray, sr: int, hop: int, n_chroma: int = N_CHROMA) -> np.ndarray:
    """Constant-Q chroma, [T, n_chroma] float32, each frame max-normalised.

    Equals ``librosa.feature.chroma_cqt(y=y, sr=sr, hop_length=hop,
    n_chroma=n_chroma, tuning=0.0).T`` (to float32 rounding).
    """
    import scipy.fft
    import soxr

    octaves, to_chroma = _cqt_plan(sr, hop, n_chroma)
    T = 1 + len(y) // hop
    mags = []
    y_oct = y
    for i, (fb, lo, hi, n_fft, my_hop) in enumerate(octaves):
        spec = scipy.fft.rfft(frames(y_oct, n_fft, my_hop), axis=1)[:, lo:hi]
        mags.append(np.abs(spec @ fb)[:T])
        if i + 1 < len(octaves):
            # librosa.resample(orig_sr=2, target_sr=1, res_type="soxr_hq", scale=True)
            y_oct = soxr.resample(y_oct, 2, 1, quality="HQ") * np.float32(np.sqrt(2.0))
    T = min(m.shape[0] for m in mags)
    cq = np.concatenate([m[:T] for m in mags[::-1]], axis=1)  # lowest octave first
    chroma = cq @ to_chroma
    peak = chroma.max(axis=1, keepdims=True)
    return np.where(peak > 0, chroma / np.where(peak > 0, peak, 1.0), 0.0).astype(np.float32)


def _analyse(y: np.ndarray, cfg: FeaturesConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features, onset envelope and tempogram of a mono signal.

    One power spectrogram feeds the mel bands, from which MFCCs, their deltas
    and the onset envelope follow; the tempogram comes from the envelope.
    Only the constant-Q chroma reads the signal again (it needs its own
    multi-rate analysis for semitone resolution in the bass).

    Args:
        y: [samples] float32 at cfg.sample_rate.

    Returns:
        feats [T, D] float32, onset envelope [T] float32 and the
        autocorrelation tempogram [TEMPOGRAM_WIN, T], T = 1 + samples // hop.
    """
    import librosa
    import scipy.fft

    sr, hop, n_fft = cfg.sample_rate, cfg.hop_length, cfg.n_fft
    y = np.ascontiguousarray(y, dtype=np.float32)
    n_mels = N_MELS_SEED if cfg.music == "seed16" else N_MELS_80
    log_mel = power_to_db(stft_power(y, n_fft, hop) @ _mel_basis(sr, n_fft, n_mels))
    env = onset_envelope(log_mel, n_fft, hop)
    tgram = librosa.feature.tempogram(onset_envelope=env, sr=sr, hop_length=hop,
                                      win_length=TEMPOGRAM_WIN)
    if cfg.music == "mel80":
        return log_mel.astype(np.float32), env, tgram

    mfcc = scipy.fft.dct(log_mel, type=2, norm="ortho", axis=1)[:, :N_MFCC]
    delta = librosa.feature.delta(mfcc, axis=0)
    feats = np.concatenate([
        mfcc, delta, cqt_chroma(y, sr, hop), tgram.T @ tempo_band_weights(TEMPOGRAM_WIN, cfg.fps),
        env[:, None],
    ], axis=1)
    return feats.astype(np.float32), env, tgram


def music_features(y: np.ndarray, cfg: FeaturesConfig) -> tuple[np.ndarray, list]:
    """Music features of a whole signal.

    Args:
        y: [samples] mono audio at cfg.sample_rate.
        cfg: feature settings (music set, rates).

    Returns:
        feats [T, D] float32 with T = 1 + samples // hop (frame t centred on
        sample t * hop), and the (group, start, stop) feature groups.
    """
    feats, _, _ = _analyse(y, cfg)
    return feats, music_groups(cfg)


def read_audio_span(path: str | Path, sr: int, start: int, length: int) -> np.ndarray:
    """Samples [start, start + length) of a song resampled to ``sr``, mono.

    Only the span (plus a few milliseconds for the resampler) is decoded.
    Positions outside the song read as silence, like librosa's centre padding.

    Args:
        path: audio file (anything libsndfile reads: MP3, WAV, FLAC, OGG).
        sr: output sample rate, Hz.
        start, length: span in output samples (start may be negative).

    Returns:
        [length] float32.
    """
    import soundfile as sf
    import soxr

    path = Path(path)
    try:
        f = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise InputError(f"{path}: cannot decode audio ({e})") from e
    with f:
        sr_in, n_in = f.samplerate, f.frames
        g = math.gcd(sr_in, sr)
        q, p = sr_in // g, sr // g  # q input samples <-> p output samples, exactly
        margin = math.ceil(RESAMPLE_MARGIN_S * sr / p) if sr_in != sr else 0
        step0 = math.floor(start / p) - margin
        step1 = math.ceil((start + length) / p) + margin
        a, b = step0 * q, step1 * q
        x = np.empty((b - a, f.channels), dtype=np.float32)
        lo, hi = max(a, 0), min(b, n_in)
        got = 0
        if hi > lo:
            f.seek(lo)
            got = len(f.read(hi - lo, dtype="float32", always_2d=True, out=x[lo - a: hi - a]))
        x[: max(lo - a, 0)] = 0.0
        x[lo - a + got:] = 0.0  # past the end of the song (or of what decodes)
    # Mix to mono before resampling (half the work). Adding columns is 20x
    # faster than numpy's mean over a short last axis.
    mono = x[:, 0].copy()
    for c in range(1, x.shape[1]):
        mono += x[:, c]
    x = mono / np.float32(x.shape[1]) if x.shape[1] > 1 else mono
    if sr_in != sr:
        # soxr "HQ", librosa's default (soxr_hq), on the mono mix. Measured
        # here, 44.1 -> 12.8 kHz on one core: HQ 5800x real time, MQ 6300x,
        # LQ 7500x, scipy resample_poly 1900x, scipy FFT resample 1200x, against
        # about 1100-1700x for decoding the MP3 itself. A cheaper soxr setting
        # would save under 5 % of the total: not worth the aliasing.
        x = soxr.resample(x, sr_in, sr, quality="HQ")
    off = start - step0 * p
    y = x[off: off + length]
    if len(y) != length:
        raise InputError(f"{path}: resampled span has {len(y)} samples, expected {length}")
    return np.ascontiguousarray(y, dtype=np.float32)


def audio_duration_s(path: str | Path) -> float:
    import soundfile as sf

    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:
        raise InputError(f"{path}: cannot decode audio ({e})") from e
    return info.frames / info.samplerate


def song_features(audio_path: str | Path, start_s: float, n_frames: int | None,
                  cfg: FeaturesConfig) -> dict:
    """Music and temporal features of a span of a song, frame-aligned.

    Frame t is centred at ``start_s + t / fps`` (fps = sample_rate / hop).
    Only the span plus ``cfg.context_s`` on each side is decoded; the context
    gives the CQT, tempogram and beat tracker real audio at the span's edges.

    Args:
        audio_path: the song.
        start_s: song time of frame 0, seconds (a multiple of 1 / fps).
        n_frames: frames wanted; None: to the end of the song.
        cfg: feature settings.

    Returns:
        dict with ``music`` [n_frames, D] float32, ``temporal`` [n_frames, 3]
        float32, ``groups`` (music feature groups), ``beat_frames`` (int64,
        relative to frame 0, including beats in the context), ``beat_times_s``
        (song time of each beat) and ``tempo_bpm``.
    """
    import librosa

    sr, hop, fps = cfg.sample_rate, cfg.hop_length, cfg.fps
    if start_s < 0:
        raise InputError(f"{audio_path}: start_s must be >= 0, got {start_s}")
    if n_frames is None:
        n_frames = int(math.floor((audio_duration_s(audio_path) - start_s) * fps + 1e-6))
        if n_frames < 1:
            raise InputError(f"{audio_path}: start {start_s:.2f} s is past the end of the song")
    if n_frames < 1:
        raise InputError(f"n_frames must be >= 1, got {n_frames}")
    start = int(round(start_s * sr))
    ctx = int(math.ceil(cfg.context_s * fps))
    y = read_audio_span(audio_path, sr, start - ctx * hop, (n_frames + 2 * ctx) * hop)
    feats, env, tgram = _analyse(y, cfg)
    # librosa's tempo estimate (log-normal prior around 120 BPM) from the
    # tempogram already computed, rather than a second, 8 s one.
    tempo = float(librosa.feature.tempo(tg=tgram, sr=sr, hop_length=hop)[0])
    _, beats = librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=hop, bpm=tempo)
    beat_frames = np.asarray(beats, dtype=np.int64) - ctx
    music = np.ascontiguousarray(feats[ctx: ctx + n_frames])
    return {
        "music": music,
        "temporal": temporal_indexes(n_frames, beat_frames, cfg.temporal_normalize),
        "groups": music_groups(cfg),
        "beat_frames": beat_frames,
        "beat_times_s": start_s + beat_frames / fps,
        "tempo_bpm": tempo,
    }


def warm_up(cfg: FeaturesConfig) -> None:
    """Import librosa, load its compiled beat tracker and build the cached
    filter banks, so that worker processes forked afterwards start ready."""
    import librosa

    rng = np.random.default_rng(0)
    y = rng.normal(0, 0.1, 3 * cfg.sample_rate).astype(np.float32)
    _, env, tgram = _analyse(y, cfg)
    sr, hop = cfg.sample_rate, cfg.hop_length
    tempo = float(librosa.feature.tempo(tg=tgram, sr=sr, hop_length=hop)[0])
    librosa.beat.beat_track(onset_envelope=env, sr=sr, hop_length=hop, bpm=tempo)
