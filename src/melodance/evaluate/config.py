"""The ``evaluate`` section of params.yaml."""

from __future__ import annotations

from typing import Literal

from melodance.params import Section


class EvaluateConfig(Section):
    split: str = "test"              # which split to score
    bas_sigma_s: float = 0.05        # beat alignment tolerance, seconds (3 frames at 60 fps)
    kin_smooth_s: float = 5 / 60     # Gaussian smoothing of joint speed for kinematic beats, s
    fid_clip_s: float = 10.0         # FID/diversity features per clip of this length, s
    validity_min_s: float = 20.0     # validity test: dances shorter than this are left out, s
    validity_n_perm: int = 10_000    # permutations of the validity test
    seed: int = 0                    # permutation, bootstrap and real-reference seed
    n_boot: int = 300                # bootstrap resamples of the KID/FID intervals
    scale_floor_frac: float = 0.1    # feature scaling floor (realism.feature_scaler), of the median std
    still_percentile: float = 1.0    # still rule: percentile of real 1 s windows' motion (capture gaps
                                     # leave a few motionless real windows, so not the minimum)
    kin_beats: Literal["bailando", "fact"] = "bailando"   # kinematic beat detector (beats.py)
