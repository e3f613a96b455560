"""The ``data.synth`` section of params.yaml: how many sequences of each style, how long, which seed."""

from __future__ import annotations

from pydantic import Field, model_validator

from melodance.errors import InputError
from melodance.params import Section


class SequenceCounts(Section):
    """How many sequences of each style the corpus holds."""

    cha_cha: int = Field(3, ge=0, le=99)
    rumba: int = Field(3, ge=0, le=99)
    tango: int = Field(2, ge=0, le=99)
    waltz: int = Field(4, ge=0, le=99)


class SynthConfig(Section):
    """``data.synth`` in ``params.yaml``: the embedded synthetic corpus."""

    seed: int = Field(2018, ge=0)
    sequences: SequenceCounts = SequenceCounts()
    min_dance_s: float = Field(20.0, gt=2.0, description="shortest dance, seconds")
    max_dance_s: float = Field(32.0, le=600.0, description="longest dance, seconds")
    sample_rate: int = Field(22050, ge=8000, le=48000, description="audio rate, Hz (mono)")
    lead_in_s: float = Field(2.0, ge=0.0, le=30.0, description="music before the dance, s")
    lead_out_s: float = Field(1.0, ge=0.0, le=30.0, description="music after the dance, s")
    motion_noise_cm: float = Field(0.3, ge=0.0, le=5.0, description="joint jitter, cm")
    audio_noise: float = Field(0.005, ge=0.0, le=0.2, description="white noise, of full scale")

    @model_validator(mode="after")
    def _check(self) -> SynthConfig:
        if self.min_dance_s > self.max_dance_s:
            raise InputError(f"min_dance_s {self.min_dance_s} > max_dance_s {self.max_dance_s}")
        if sum(self.sequences.model_dump().values()) == 0:
            raise InputError("sequences: at least one sequence is needed")
        return self


