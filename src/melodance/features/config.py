"""The ``features`` section of ``params.yaml``.

Every finding of the seed's preprocessing section (SEED-NOTES 1a-1e) is a
switch here so that each can be ablated as a DVC experiment.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from melodance import FPS
from melodance.errors import InputError
from melodance.params import Section


class SplitConfig(Section):
    """Split by original sequence, stratified by style, seeded."""

    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    seed: int = 0
    # Sequences whose first `opening_frames` frames are identical are one group
    # (several Waltz takes share an opening) and land on one side of the split.
    opening_frames: int = Field(25, ge=1)

    @model_validator(mode="after")
    def _fractions(self) -> SplitConfig:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise InputError("val_fraction + test_fraction must leave a training split (< 1)")
        return self


class FeaturesConfig(Section):
    """Feature extraction settings (the ``features`` section)."""

    # 1a: the paper's 16 dims, or an 80-band log-mel spectrum.
    music: Literal["seed16", "mel80"] = "seed16"
    # 12800 / 512 = 25 frames per second: one hop is one motion frame.
    sample_rate: int = Field(12800, gt=0)
    hop_length: int = Field(512, gt=0)
    n_fft: int = Field(2048, gt=0)
    # 1e: temporal indexes as beat phase and relative position instead of raw counters.
    temporal_normalize: bool = True
    # 1b: one min-max per feature group, per dimension, or z-score per group.
    normalize: Literal["per_feature", "per_dim", "zscore"] = "per_feature"
    # 1c: overlapping windows; stride == window is the no-overlap ablation.
    window: int = Field(120, ge=1)
    stride: int = Field(30, ge=1)
    # 1d: cut music to the dance's frames; False reads the music from the
    # start of the song instead (the misaligned pairing).
    align: bool = True
    # 1d: split sequences where a joint (world coordinates) moves more than
    # max_jump_cm, or the root more than max_root_step_cm, in one frame. The
    # bounds of the validation gate: 80 cm/frame = 20 m/s (validate's
    # max_joint_speed_cm_s; real data up to 70, a Tango capture glitch) and
    # 30 cm/frame (validate's max_root_step_cm; real data up to 19).
    split_discontinuities: bool = True
    max_jump_cm: float = Field(80.0, gt=0.0)
    max_root_step_cm: float = Field(30.0, gt=0.0)
    min_segment_frames: int = Field(50, ge=2)
    # Audio read on each side of a span, so that the features of its edge
    # frames see real audio: the tempogram window reaches 1.92 s, the onset
    # envelope's STFT 0.08 s further, the longest CQT filter 0.8 s. Beats in
    # the context also place the beat grid before the first beat of the span.
    context_s: float = Field(2.0, ge=0.0)
    workers: int = Field(2, ge=1)
    split: SplitConfig = SplitConfig()

    @model_validator(mode="after")
    def _checks(self) -> FeaturesConfig:
        if self.stride > self.window:
            raise InputError(f"stride {self.stride} > window {self.window} would skip frames")
        if abs(self.sample_rate / self.hop_length - FPS) > 1e-9:
            raise InputError(
                f"sample_rate / hop_length = {self.sample_rate}/{self.hop_length} must be "
                f"{FPS:g} (one music frame per motion frame)"
            )
        if self.n_fft < self.hop_length:
            raise InputError(f"n_fft {self.n_fft} < hop_length {self.hop_length}")
        return self

    @property
    def fps(self) -> float:
        return self.sample_rate / self.hop_length
