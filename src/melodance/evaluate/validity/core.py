"""Does a music-conditioned metric carry information on this data? A validity test.

A metric ``score(motion_world, fps, music) -> float`` that claims to measure
how well a dance fits its music must give the real dances a better score
under their own song than under other songs. The test:

1. **Score table** (:func:`score_table`). Every dance and every song is cut
   into consecutive clips of one length (``clip_frames``; by default the
   shortest dance of the set, and only the first clip of each dance: one
   clip per dance). Clip ``c`` of dance ``i`` is scored under clip ``c`` of
   its own song and under clip ``c`` (the same stretch of the dance span) of
   every other song that has one. Own and other scores are thus always
   computed on the same length: some metrics (coherence, correlations,
   anything estimated) are biased by length, and a dance scored whole under
   its own song but cut short under another would be compared unfairly.
2. ``gap = own - other``: the mean over clips of the own-song score minus the
   mean over clips of the mean score under the other songs, for all other
   songs and separately for songs of the same style (within-style) and of
   other styles (across-style).
3. Effect sizes: Cohen's ``d_z`` of the per-clip differences
   ``own - mean(other)``, and the own-song rank AUC: the chance that a clip
   scores better under its own song than under a random other song
   (0.5: no information; 1: its own song always wins).
4. A seeded permutation p-value, one-sided (own better than other): under
   the null hypothesis that a clip's score does not depend on which of its
   candidate songs is its own, the label "own" can sit on any candidate song
   of the row. Each permutation draws, independently per row, which
   candidate plays "own" and recomputes the gap;
   ``p = (1 + #{permuted gap >= observed gap}) / (1 + n_perm)``.
   Rows are treated as independent, which they are not quite when a dance
   gives several clips (``max_clips > 1``): keep one clip per dance (the
   default) for the strict test.
5. **Verdict**: ``"informative"`` when ``p < alpha`` (0.05), otherwise
   ``"not informative on this data"``. The rule is on the all-other-songs
   test; within- and across-style p-values are reported beside it (a metric
   that only tells a waltz song from a cha-cha song measures style or tempo,
   not alignment: read ``p_within``).

Everything here is pure (arrays in, numbers out); reading a song is ``music.music_info``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from melodance.errors import InputError
from melodance.evaluate.validity.music import MusicInfo, ScoreFn

INFORMATIVE = "informative"
NOT_INFORMATIVE = "not informative on this data"
DEFAULT_ALPHA = 0.05
DEFAULT_N_PERM = 10_000


@dataclass
class ScoreTable:
    """Scores of dance clips under every song (see :func:`score_table`).

    Attributes:
        scores: ``[R, n]`` float64, row ``r`` = one clip of dance ``own[r]``,
            column ``j`` = under the same clip of song ``j``; ``nan`` where song
            ``j`` is too short, the pair is masked out or the metric is undefined.
        own: ``[R]`` int, the dance (and its own song) of each row.
        clip: ``[R]`` int, which clip of that dance.
        clip_frames: frames per clip.
    """

    scores: np.ndarray
    own: np.ndarray
    clip: np.ndarray
    clip_frames: int

    @property
    def own_scores(self) -> np.ndarray:
        return self.scores[np.arange(len(self.own)), self.own]


def score_table(motions: Sequence[np.ndarray], musics: Sequence[MusicInfo], score: ScoreFn,
                fps: float, clip_frames: int | None = None, max_clips: int | None = 1,
                mask: np.ndarray | None = None) -> ScoreTable:
    """Every clip of every dance scored under the same clip of every song.

    Args:
        motions: ``n`` dances, each ``[T_i, J, 3]`` world joint positions, cm.
        musics: their ``n`` songs, ``musics[i]`` belonging to ``motions[i]``.
        score: the metric, ``score(motion_world, fps, music) -> float``.
        fps: frames per second of the dances.
        clip_frames: clip length, frames; default the shortest dance.
        max_clips: clips per dance at most (consecutive from frame 0; None:
            all that fit). The default, 1, keeps the rows independent.
        mask: optional ``[n, n]`` bool, ``mask[i, j]``: score dance ``i`` under
            song ``j`` (the own song always is); others stay ``nan``.

    Returns:
        :class:`ScoreTable`.
    """
    n = len(motions)
    if len(musics) != n:
        raise ValueError(f"{n} dances but {len(musics)} songs")
    if n == 0:
        raise ValueError("no dances to score")
    if mask is not None and np.shape(mask) != (n, n):
        raise ValueError(f"mask must be [{n}, {n}], got {np.shape(mask)}")
    lengths = [min(len(x), m.n_frames) for x, m in zip(motions, musics, strict=True)]
    C = int(clip_frames or min(lengths))
    if C < 2:
        raise ValueError(f"clips need at least 2 frames, got {C}")
    rows, own, clip = [], [], []
    for i, x in enumerate(motions):
        n_clips = lengths[i] // C if max_clips is None else min(lengths[i] // C, max_clips)
        for c in range(n_clips):
            a, b = c * C, (c + 1) * C
            row = np.full(n, np.nan)
            for j, m in enumerate(musics):
                if lengths[j] < b or (j != i and mask is not None and not mask[i, j]):
                    continue
                row[j] = float(score(x[a:b], fps, m.window(a, b)))
            rows.append(row)
            own.append(i)
            clip.append(c)
    if not rows:
        raise InputError(f"no dance is {C} frames long")
    return ScoreTable(np.array(rows), np.array(own, dtype=np.int64),
                      np.array(clip, dtype=np.int64), C)


@dataclass
class ValidityResult:
    """Outcome of :func:`validity_test` for one metric (scores in the metric's units)."""

    n_rows: int              # clips with a defined own score and at least one other song
    own: float               # mean over clips of the own-song score
    other: float             # mean over clips of the mean score under the other songs
    gap: float               # own - other, in the metric's units and sign
    effect_dz: float         # Cohen's d_z of the per-clip own - mean(other), sign: better > 0
    own_rank_auc: float      # P(own song beats a random other song), ties count 1/2
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

    A ``nan`` p-value (nothing to test) is not informative.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    return INFORMATIVE if np.isfinite(p_value) and p_value < alpha else NOT_INFORMATIVE


def _rows(table: ScoreTable, cand: np.ndarray | None, sign: float):
    """Usable rows: (own score, other candidates' scores), both times ``sign``.

    ``cand`` is ``[R, n]`` bool (None: every other song with a score).
    """
    S = table.scores
    out = []
    for r, i in enumerate(table.own):
        if not np.isfinite(S[r, i]):
            continue
        ok = np.isfinite(S[r])
        ok[i] = False
        if cand is not None:
            ok &= cand[r]
        if ok.any():
            out.append((sign * S[r, i], sign * S[r, ok]))
    return out


def permutation_p(rows: list[tuple[float, np.ndarray]], n_perm: int = DEFAULT_N_PERM,
                  seed: int = 0) -> float:
    """One-sided permutation p-value of the own-song gap (see the module docstring).

    Args:
        rows: per row, the own score and the other candidates' scores, signed
            so that higher is better.
        n_perm: permutations; the smallest possible p is ``1 / (1 + n_perm)``.
        seed: seeds the permutations (same seed, same p).

    Returns:
        p in ``(0, 1]``; ``nan`` without rows.
    """
    if n_perm < 1:
        raise ValueError(f"n_perm must be >= 1, got {n_perm}")
    if not rows:
        return math.nan
    rng = np.random.default_rng(seed)
    observed = 0.0
    permuted = np.zeros(n_perm)
    for own, others in rows:
        v = np.r_[own, others]
        k = v.size
        # The row's gap if candidate c were the own song: v[c] - mean of the others.
        stat = (k * v - v.sum()) / (k - 1)
        observed += stat[0]
        permuted += stat[rng.integers(0, k, size=n_perm)]
    # Sums in another order may differ in the last bits; ties count as hits.
    hits = np.count_nonzero(permuted >= observed - 1e-9 * max(1.0, abs(observed)))
    return float((1 + hits) / (1 + n_perm))


def _summary(rows, sign: float) -> tuple[float, float]:
    """(own mean, other mean) in the metric's own sign."""
    if not rows:
        return math.nan, math.nan
    return (sign * float(np.mean([o for o, _ in rows])),
            sign * float(np.mean([oth.mean() for _, oth in rows])))


def validity_test(table: ScoreTable, styles: Sequence[str] | None = None,
                  n_perm: int = DEFAULT_N_PERM, seed: int = 0, higher_is_better: bool = True,
                  alpha: float = DEFAULT_ALPHA) -> ValidityResult:
    """Gap, effect sizes, permutation p-values and the verdict of one metric.

    Args:
        table: from :func:`score_table`.
        styles: style label of each of the ``n`` dances/songs (for the
            within/across-style split); None: all one style.
        n_perm, seed: permutations and their seed.
        higher_is_better: the metric's direction (the test is one-sided).
        alpha: significance level of the verdict.

    Returns:
        :class:`ValidityResult`; ``gap`` is in the metric's own sign (negative
        is "better" for a lower-is-better metric), ``effect_dz`` and
        ``own_rank_auc`` are oriented so that > 0 / > 0.5 mean "own song better".
    """
    S = table.scores
    n = S.shape[1]
    st = np.asarray(list(styles) if styles is not None else ["-"] * n)
    if st.shape != (n,):
        raise ValueError(f"{n} songs but {st.size} style labels")
    same = st[table.own][:, None] == st[None, :]
    sign = 1.0 if higher_is_better else -1.0

    rows = _rows(table, None, sign)
    own, other = _summary(rows, sign)
    d = np.array([o - oth.mean() for o, oth in rows])
    dz = float(d.mean() / d.std(ddof=1)) if d.size > 1 and d.std(ddof=1) > 0 else math.nan
    auc = [np.mean((oth < o) + 0.5 * (oth == o)) for o, oth in rows]
    p = permutation_p(rows, n_perm, seed)
    rows_w = _rows(table, same, sign)
    rows_a = _rows(table, ~same, sign)
    _, ow = _summary(rows_w, sign)
    _, oa = _summary(rows_a, sign)
    own_w, _ = _summary(rows_w, sign)
    own_a, _ = _summary(rows_a, sign)
    return ValidityResult(
        n_rows=len(rows), own=own, other=other, gap=own - other, effect_dz=dz,
        own_rank_auc=float(np.mean(auc)) if auc else math.nan,
        p_value=p, verdict=verdict(p, alpha),
        other_within=ow, gap_within=own_w - ow, n_within=len(rows_w),
        p_within=permutation_p(rows_w, n_perm, seed) if rows_w else math.nan,
        other_across=oa, gap_across=own_a - oa, n_across=len(rows_a),
        p_across=permutation_p(rows_a, n_perm, seed) if rows_a else math.nan,
        higher_is_better=higher_is_better, alpha=alpha, n_perm=n_perm, seed=seed,
    )


def validate_metric(motions: Sequence[np.ndarray], musics: Sequence[MusicInfo], score: ScoreFn,
                    fps: float, styles: Sequence[str] | None = None,
                    clip_frames: int | None = None, max_clips: int | None = 1,
                    mask: np.ndarray | None = None, **kw) -> tuple[ValidityResult, ScoreTable]:
    """:func:`score_table` then :func:`validity_test` (``kw`` go to the test)."""
    table = score_table(motions, musics, score, fps, clip_frames, max_clips, mask)
    return validity_test(table, styles, **kw), table


# ----------------------------------------------------------------------------- for the evaluate stage

def split_validity(motions: Sequence[np.ndarray], musics: Sequence[MusicInfo], fps: float,
                   styles: Sequence[str] | None = None,
                   metrics: dict[str, ScoreFn] | None = None, min_frames: int = 0,
                   **kw) -> dict[str, ValidityResult]:
    """The validity test of several metrics on one split's ground truth.

    Args:
        motions, musics, styles: the split's ground-truth dances, their music
            and styles.
        fps: frames per second.
        metrics: name -> score function (default ``alignment.ANALYTIC_METRICS``).
        min_frames: dances shorter than this are left out (the clip length is
            the shortest remaining dance).
        kw: to :func:`validate_metric` (``n_perm``, ``seed``, ``alpha``, ``clip_frames``).

    Returns:
        name -> :class:`ValidityResult`.
    """
    if metrics is None:
        from melodance.evaluate.validity.alignment import ANALYTIC_METRICS as metrics
    keep = [k for k, x in enumerate(motions) if len(x) >= min_frames]
    if len(keep) < 2:
        raise InputError(f"the validity test needs at least 2 dances of {min_frames}+ frames, "
                         f"got {len(keep)}")
    mo = [motions[k] for k in keep]
    mu = [musics[k] for k in keep]
    st = None if styles is None else [styles[k] for k in keep]
    return {name: validate_metric(mo, mu, fn, fps, st, **kw)[0] for name, fn in metrics.items()}


def consistency_scores(generated: Sequence[np.ndarray], truth: Sequence[np.ndarray],
                       musics: Sequence[MusicInfo], fps: float, score: ScoreFn | None = None,
                       clip_frames: int | None = None, min_frames: int = 0) -> dict[str, float]:
    """A music-conditioned score of generated dances beside its two references.

    Every dance is cut to the same clip (``clip_frames``, default the shortest
    dance of at least ``min_frames`` frames; first clip only; shorter dances
    are left out) so the three numbers are comparable even for
    length-dependent scores such as coherence.

    Args:
        generated: ``n`` generated dances ``[T_i, J, 3]``, world cm, each made for ``musics[i]``.
        truth: the ``n`` ground-truth dances of the same songs.
        musics: the songs.
        fps: frames per second.
        score: the metric (default ``alignment.music_motion_consistency``).
        clip_frames: clip length, frames.
        min_frames: dances shorter than this are left out (coherence needs at
            least 2 of its 5.12 s segments; 20 s is a good floor).

    Returns:
        ``model`` (generated under their own songs), ``ground_truth`` (under
        their own songs), ``ground_truth_other_song`` (under the other songs
        of the set, the level a dance reaches by chance), means over dances
        with a defined score; ``clip_s`` and ``n_dances``.
    """
    if score is None:
        from melodance.evaluate.validity.alignment import music_motion_consistency as score
    n = len(truth)
    if len(generated) != n or len(musics) != n:
        raise ValueError(f"{len(generated)} generated, {n} true dances, {len(musics)} songs")
    lengths = [min(len(g), len(t), m.n_frames) for g, t, m in zip(generated, truth, musics,
                                                                  strict=True)]
    long_enough = [n_ for n_ in lengths if n_ >= min_frames]
    if not long_enough:
        raise InputError(f"no dance is {min_frames} frames long")
    C = int(clip_frames or min(long_enough))
    keep = [k for k in range(n) if lengths[k] >= max(C, min_frames)]
    if not keep:
        raise InputError(f"no dance is {C} frames long")
    gt = score_table([truth[k] for k in keep], [musics[k] for k in keep], score, fps, C)
    gen = [float(score(generated[k][:C], fps, musics[k].window(0, C))) for k in keep]
    S = gt.scores.copy()
    own = gt.own_scores.copy()
    np.fill_diagonal(S, np.nan)

    def mean(v) -> float:
        v = np.asarray(v, dtype=np.float64)
        v = v[np.isfinite(v)]
        return float(v.mean()) if v.size else math.nan

    with np.errstate(all="ignore"):
        other = [mean(row) for row in S]
    return {"model": mean(gen), "ground_truth": mean(own), "ground_truth_other_song": mean(other),
            "clip_s": C / fps, "n_dances": len(keep)}
