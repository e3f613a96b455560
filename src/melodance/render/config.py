"""The ``render`` section of params.yaml (the render stage: side-by-side test videos)."""

from __future__ import annotations

from pydantic import Field

from melodance.params import Section


class RenderConfig(Section):
    split: str = "test"                      # which split's sequences to render
    max_seconds: float | None = Field(None, gt=0)  # cut each video to this many seconds; None: whole
    width: int = Field(640, ge=64)           # size of each panel (ground truth | generated)
    height: int = Field(480, ge=64)
    preset: str = "veryfast"                 # x264 speed preset
    crf: int = Field(23, ge=0, le=51)        # x264 quality (lower: better, larger)
    max_still_s: float = Field(1.0, gt=0)    # output check: longest stretch without movement
    still_speed_cm_s: float = Field(9.0, ge=0)     # still rule: a 1 s window below this is still
    max_still_fraction: float = Field(0.25, ge=0, le=1)  # still rule: refuse a dance stiller than this
    allow_still: bool = False                # write videos of still dances anyway
