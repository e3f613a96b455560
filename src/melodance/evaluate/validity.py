"""Does a music-conditioned metric carry information on this data? A validity test.

A metric ``score(motion_world, fps, music) -> float`` that claims to measure
how well a dance fits its music must give the real dances a better score
under their own song than under other songs. The test:

1. Score every ground-truth dance ``i`` of a set under every song ``j`` of
   the set: ``S[i, j]``, both cut to the shorter of the two (``S[i, i]`` is the
   dance under its own song, whole). See :func:`score_matrix`.
2. ``gap = own - other``: the mean over dances of ``S[i, i]`` minus the mean
   over dances of the mean of ``S[i, j]`` over the other songs ``j``, for all
   other songs and separately for songs of the same style (within-style) and
   of other styles (across-style).
3. Effect sizes: Cohen's ``d_z`` of the per-dance differences
   ``S[i, i] - mean_j S[i, j]``, and the own-song rank AUC: the chance that a
   dance scores better under its own song than under a random other song of
   the set (0.5: no information; 1: its own song always wins).
4. A seeded permutation p-value, one-sided (own better than other): under
   the null hypothesis that the score of dance ``i`` does not depend on which
   of its candidate songs is its own, the label "own" can be moved to any
   candidate song of the row. Each permutation draws, independently per
   dance, which candidate plays "own" and recomputes the gap;
   ``p = (1 + #{permuted gap >= observed gap}) / (1 + n_perm)``.
5. Verdict: ``"informative"`` when ``p < alpha`` (0.05), otherwise
   ``"not informative on this data"``. The rule is on the all-other-songs
   test; within- and across-style p-values are reported beside it (a metric
   that only tells a waltz song from a cha-cha song measures style or tempo,
   not alignment: read ``p_within``).

The own score uses the dance's full length while the other scores are cut to
the shorter of the pair; for metrics that are averages over time (all of
ours) the length only changes their noise, not their expected value.

Everything here is pure (arrays in, numbers out) except :func:`music_info`,
which reads a song.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

INFORMATIVE = "informative"
NOT_INFORMATIVE = "not informative on this data"
DEFAULT_ALPHA = 0.05
DEFAULT_N_PERM = 10_000


@dataclass(frozen=True)
class MusicInfo:
    """The music of one dance span, on the dance's clock (frame 0 at time 0).

    Attributes:
        fps: frames per second of the per-frame arrays (the dance's).
        beats_s: ``[n]`` music beat times, seconds from frame 0, increasing;
            only beats inside ``[0, n_frames / fps)``.
        onset: ``[T]`` onset strength per frame (librosa's spectral flux, mean
            positive dB increase per mel band).
        features: ``[T, D]`` per-frame music features (``features.music``,
            unnormalised), or ``None`` when a metric does not need them.
    """

    fps: float
    beats_s: np.ndarray
    onset: np.ndarray
    features: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_frames(self) -> int:
        return int(len(self.onset))

    def cut(self, n_frames: int) -> MusicInfo:
        """The first ``n_frames`` frames (beats past the new end dropped)."""
        n = int(n_frames)
        if n < 1:
            raise ValueError(f"cannot cut music to {n} frames")
        if n >= self.n_frames:
            return self
        return MusicInfo(
            fps=self.fps,
            beats_s=self.beats_s[self.beats_s < n / self.fps],
            onset=self.onset[:n],
            features=None if self.features is None else self.features[:n],
        )


ScoreFn = Callable[[np.ndarray, float, MusicInfo], float]


def music_info(audio_path: str | Path, start_s: float, n_frames: int, cfg=None) -> MusicInfo:
    """Music of a dance span read from its song (``features.music.song_features``).

    Args:
        audio_path: the song.
        start_s: song time of dance frame 0, seconds.
        n_frames: frames of the dance.
        cfg: a ``FeaturesConfig`` (default: the package defaults, ``seed16``).

    Returns:
        :class:`MusicInfo` with the beats inside the span, the onset strength
        and the seed16 (or mel80) features, all at the dance's frame rate.
    """
    from melodance.features.config import FeaturesConfig
    from melodance.features.music import SEED16_GROUPS, song_features

    cfg = cfg or FeaturesConfig()
    song = song_features(audio_path, start_s, n_frames, cfg)
    beats = np.asarray(song["beat_frames"], dtype=np.float64) / cfg.fps
    beats = beats[(beats >= 0) & (beats < n_frames / cfg.fps)]
    if cfg.music == "seed16":
        (_, lo, hi), = [g for g in SEED16_GROUPS if g[0] == "onset_strength"]
        onset = song["music"][:, lo]
    else:
        # mel80 has no onset column: spectral flux of its log-mel bands, as in seed16.
        onset = np.r_[0.0, np.maximum(np.diff(song["music"], axis=0), 0.0).mean(axis=1)]
    return MusicInfo(fps=cfg.fps, beats_s=beats, onset=np.asarray(onset, np.float64),
                     features=song["music"])


def score_matrix(motions: Sequence[np.ndarray], musics: Sequence[MusicInfo], score: ScoreFn,
                 fps: float, mask: np.ndarray | None = None) -> np.ndarray:
    """Every dance scored under every song.

    Args:
        motions: ``n`` dances, each ``[T_i, J, 3]`` world joint positions, cm.
        musics: their ``n`` songs, ``musics[i]`` belonging to ``motions[i]``.
        score: the metric.
        fps: frames per second of the dances.
        mask: optional ``[n, n]`` bool, which pairs to score (the diagonal is
            always scored); the others are left ``nan``.

    Returns:
        ``[n, n]`` float64: ``S[i, j]`` = dance ``i`` under song ``j``, both cut
        to ``min(T_i, T_j)`` frames; ``S[i, i]`` the dance under its own song,
        whole. ``nan`` where the metric is undefined (e.g. no beats).
    """
    n = len(motions)
    if len(musics) != n:
        raise ValueError(f"{n} dances but {len(musics)} songs")
    if mask is not None and np.shape(mask) != (n, n):
        raise ValueError(f"mask must be [{n}, {n}], got {np.shape(mask)}")
    S = np.full((n, n), np.nan)
    for i, x in enumerate(motions):
        for j, m in enumerate(musics):
            if i != j and mask is not None and not mask[i, j]:
                continue
            L = len(x) if i == j else min(len(x), m.n_frames)
            S[i, j] = float(score(x[:L], fps, m.cut(L)))
    return S


@dataclass
class ValidityResult:
    """Outcome of :func:`validity_test` for one metric (all scores in the metric's units)."""

    n_dances: int            # rows with a defined own score and at least one other song
    own: float               # mean over dances of the own-song score
    other: float             # mean over dances of the mean score under other songs
    gap: float               # own - other (sign as the metric; see higher_is_better)
    effect_dz: float         # Cohen's d_z of the per-dance own - mean(other) differences
    own_rank_auc: float      # P(own song beats a random other song), ties 1/2
    p_value: float           # one-sided permutation p-value, all other songs
    verdict: str
    other_within: float = math.nan   # same-style other songs only
    gap_within: float = math.nan
    p_within: float = math.nan
    n_within: int = 0
    other_across: float = math.nan   # other-style songs only
    gap_across: float = math.nan
    p_across: float = math.nan
    n_across: int = 0
    higher_is_better: bool = True
    alpha: float = DEFAULT_ALPHA
    n_perm: int = DEFAULT_N_PERM
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def verdict(p_value: float, alpha: float = DEFAULT_ALPHA) -> str:
    """``"informative"`` when ``p_value < alpha``, else ``"not informative on this data"``.

    A ``nan`` p-value (too few dances to test) is not informative.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return INFORMATIVE if np.isfinite(p_value) and p_value < alpha else NOT_INFORMATIVE


def _rows(S: np.ndarray, cand: np.ndarray, sign: float):
    """Per usable row: own score, candidate scores (own first) and the per-row statistic."""
    out = []
    for i in range(S.shape[0]):
        if not np.isfinite(S[i, i]):
            continue
        others = np.flatnonzero(cand[i] & np.isfinite(S[i]) & (np.arange(S.shape[1]) != i))
        if others.size == 0:
            continue
        out.append((i, sign * S[i, i], sign * S[i, others]))
    return out


def own_minus_other(S: np.ndarray, cand: np.ndarray | None = None,
                    higher_is_better: bool = True) -> np.ndarray:
    """Per-dance ``S[i, i] - mean_j S[i, j]`` over the candidate other songs ``j``.

    Rows without a defined own score or without a candidate are dropped. The
    sign is flipped for metrics where lower is better, so positive always
    means "own song scores better".
    """
    S = np.asarray(S, dtype=np.float64)
    cand = _default_cand(S) if cand is None else np.asarray(cand, bool)
    sign = 1.0 if higher_is_better else -1.0
    return np.array([own - oth.mean() for _, own, oth in _rows(S, cand, sign)])


def permutation_p(S: np.ndarray, cand: np.ndarray | None = None, n_perm: int = DEFAULT_N_PERM,
                  seed: int = 0, higher_is_better: bool = True) -> float:
    """One-sided permutation p-value of the own-song gap (see the module docstring).

    Args:
        S: ``[n, n]`` score matrix (:func:`score_matrix`).
        cand: ``[n, n]`` bool, which other songs are candidates for each
            dance (default: all); the own song always is.
        n_perm: permutations; the smallest possible p is ``1 / (1 + n_perm)``.
        seed: seeds the permutations (same seed, same p).
        higher_is_better: direction of the metric.

    Returns:
        p in ``(0, 1]``; ``nan`` with no usable row.
    """
    S = np.asarray(S, dtype=np.float64)
    cand = _default_cand(S) if cand is None else np.asarray(cand, bool)
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    rows = _rows(S, cand, 1.0 if higher_is_better else -1.0)
    if not rows:
        return math.nan
    rng = np.random.default_rng(seed)
    observed = 0.0
    permuted = np.zeros(n_perm)
    for _, own, oth in rows:
        v = np.r_[own, oth]
        k = v.size
        # Gap of the row if candidate c were the own song: v[c] - mean of the rest.
        stat = (k * v - v.sum()) / (k - 1)
        observed += stat[0]
        permuted += stat[rng.integers(0, k, size=n_perm)]
    # Rounding: sums over rows in another order may differ in the last bits.
    hits = np.count_nonzero(permuted >= observed - 1e-12 * max(1.0, abs(observed)))
    return float((1 + hits) / (1 + n_perm))


def _default_cand(S: np.ndarray) -> np.ndarray:
    return np.ones(S.shape, dtype=bool)


def _mean_other(S: np.ndarray, cand: np.ndarray, sign: float) -> tuple[float, float, float, int]:
    """(own mean, other mean, gap, rows) over rows with a candidate, in the metric's sign."""
    rows = _rows(S, cand, sign)
    if not rows:
        return math.nan, math.nan, math.nan, 0
    own = float(np.mean([o for _, o, _ in rows])) * sign
    other = float(np.mean([oth.mean() for _, _, oth in rows])) * sign
    return own, other, own - other, len(rows)


def validity_test(S: np.ndarray, styles: Sequence[str] | None = None,
                  mask: np.ndarray | None = None, n_perm: int = DEFAULT_N_PERM, seed: int = 0,
                  higher_is_better: bool = True, alpha: float = DEFAULT_ALPHA) -> ValidityResult:
    """Gap, effect sizes, permutation p-values and the verdict of one metric.

    Args:
        S: ``[n, n]`` score matrix from :func:`score_matrix`.
        styles: ``n`` style labels (for the within/across-style split); None:
            everything counts as one style.
        mask: ``[n, n]`` bool, which other songs count for each dance (e.g.
            only songs the metric was not trained on); default all.
        n_perm, seed: permutations and their seed.
        higher_is_better: the metric's direction (the test is one-sided).
        alpha: significance level of the verdict.

    Returns:
        :class:`ValidityResult`.
    """
    S = np.asarray(S, dtype=np.float64)
    n = S.shape[0]
    if S.ndim != 2 or S.shape[1] != n:
        raise ValueError(f"score matrix must be square [n, n], got {S.shape}")
    cand = _default_cand(S) if mask is None else np.asarray(mask, bool).copy()
    np.fill_diagonal(cand, True)
    styles = list(styles) if styles is not None else ["-"] * n
    if len(styles) != n:
        raise ValueError(f"{n} dances but {len(styles)} style labels")
    st = np.asarray(styles)
    same = st[:, None] == st[None, :]
    sign = 1.0 if higher_is_better else -1.0

    own, other, gap, n_rows = _mean_other(S, cand, sign)
    d = own_minus_other(S, cand, higher_is_better)
    dz = float(d.mean() / d.std(ddof=1)) if d.size > 1 and d.std(ddof=1) > 0 else math.nan
    aucs = [np.mean((o > oth) + 0.5 * (o == oth)) for _, o, oth in _rows(S, cand, sign)]
    p = permutation_p(S, cand, n_perm, seed, higher_is_better)
    _, ow, gw, nw = _mean_other(S, cand & same, sign)
    _, oa, ga, na = _mean_other(S, cand & ~same, sign)
    return ValidityResult(
        n_dances=n_rows, own=own, other=other, gap=gap, effect_dz=dz,
        own_rank_auc=float(np.mean(aucs)) if aucs else math.nan,
        p_value=p, verdict=verdict(p, alpha),
        other_within=ow, gap_within=gw, n_within=nw,
        p_within=permutation_p(S, cand & same, n_perm, seed, higher_is_better) if nw else math.nan,
        other_across=oa, gap_across=ga, n_across=na,
        p_across=permutation_p(S, cand & ~same, n_perm, seed, higher_is_better) if na else math.nan,
        higher_is_better=higher_is_better, alpha=alpha, n_perm=n_perm, seed=seed,
    )


def validate_metric(motions: Sequence[np.ndarray], musics: Sequence[MusicInfo], score: ScoreFn,
                    fps: float, styles: Sequence[str] | None = None, **kw) -> ValidityResult:
    """:func:`score_matrix` then :func:`validity_test` (``kw`` go to the test)."""
    S = score_matrix(motions, musics, score, fps, mask=kw.get("mask"))
    return validity_test(S, styles, **kw)
