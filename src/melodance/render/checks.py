"""The Great Expectations suite over rendered videos (one row of facts per video).

Each :class:`~melodance.render.video.OutputCheck` becomes one GE 1.x
expectation on a column of the facts table (plus one that the column is not
null: a fact that could not be measured, e.g. no audio stream, fails its
check). :func:`run_output_suite` validates the table through a checkpoint in
a throw-away file context, optionally writes GE's Data Docs, and returns the
failed checks per video; :func:`ge_check` plugs it into
:func:`~melodance.render.video.write_video` so a video is checked before it
is put in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from melodance import FPS
from melodance.errors import InputError
from melodance.render.video import OutputCheck, VideoCheckError, check_table_row, output_checks
from melodance.validate.gx import plain as _plain

SUITE_NAME = "melodance_rendered_videos"
KEY = "video"


@dataclass
class OutputSuiteOutcome:
    """failures: video -> [{check, why, value, bound}]; statistics: GE's counts;
    docs_index: the Data Docs entry page, when written."""

    failures: dict[str, list[dict]]
    statistics: dict[str, Any]
    docs_index: Path | None


def _expectations(check: OutputCheck) -> list:
    import great_expectations as gx

    e = gx.expectations
    common = {"meta": {"check": check.name}, "notes": check.why}
    out = [e.ExpectColumnValuesToNotBeNull(column=check.column, **common)]
    if check.value_set:
        out.append(e.ExpectColumnValuesToBeInSet(column=check.column,
                                                 value_set=list(check.value_set), **common))
    else:
        out.append(e.ExpectColumnValuesToBeBetween(column=check.column, min_value=check.min_value,
                                                   max_value=check.max_value, **common))
    return out




def run_output_suite(rows: list[dict], checks: list[OutputCheck],
                     docs_dir: str | Path | None = None) -> OutputSuiteOutcome:
    """Validate video facts with Great Expectations.

    Args:
        rows: one dict per video (:func:`~melodance.render.video.check_table_row`)
            with a ``video`` key naming it.
        checks: the output checks (:func:`~melodance.render.video.output_checks`).
        docs_dir: where to write the Data Docs site (replaced atomically); None: none.
    """
    import pandas as pd

    from melodance.validate.gx import run_gx_suite

    if not rows:
        raise InputError("no videos to check")
    cols = [KEY, *dict.fromkeys(c.column for c in checks)]
    table = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
    by_name = {c.name: c for c in checks}
    run = run_gx_suite(table, [e for c in checks for e in _expectations(c)],
                       name="melodance_render", key=KEY, docs_dir=docs_dir)
    failures: dict[str, list[dict]] = {}
    for name, bad_rows in run.unexpected:
        check = by_name[name]
        for row in bad_rows:
            found = failures.setdefault(row[KEY], [])
            if any(f["check"] == check.name for f in found):
                continue  # one check has two expectations (not null, in bounds)
            found.append({"check": check.name, "why": check.why,
                          "value": _plain(row.get(check.column)), "bound": check.bound})
    return OutputSuiteOutcome(failures, run.statistics, run.docs_index)


STILL_SPEED_CM_S = 9.0
"""The still rule's threshold: 1 s windows with less body-centred mean joint speed
(low-passed, :func:`melodance.evaluate.realism.window_motion`) are still. The 1st
percentile of the 43 real sequences' windows is 8-9 cm/s (training split 9.2);
the capture has a few frozen seconds, so the minimum (0) cannot be the bound."""
MAX_STILL_FRACTION = 0.25
"""A dance with a larger share of still windows is refused; real dances: at most 0.05."""


class StillDanceError(InputError):
    """A generated dance stands still; the message says how still and how to override."""


def still_check(joints_world, fps: float, name: str, threshold_cm_s: float = STILL_SPEED_CM_S,
                max_fraction: float = MAX_STILL_FRACTION) -> float:
    """The still rule: raise :class:`StillDanceError` when more than ``max_fraction`` of the
    dance's 1 s windows move less than ``threshold_cm_s`` (body-centred); return the fraction."""
    from melodance.evaluate.realism import still_fraction, window_motion

    frac = still_fraction(joints_world, fps, threshold_cm_s)
    if frac > max_fraction:
        speed = float(window_motion(joints_world, fps).mean())
        raise StillDanceError(
            f"{name}: the dance stands still: {100 * frac:.0f} % of its 1 s windows move less than "
            f"{threshold_cm_s:g} cm/s (body-centred mean joint speed; real dances: at most 5 %, "
            f"bound {100 * max_fraction:.0f} %); its mean is {speed:.1f} cm/s against ~54 cm/s for "
            "real dances. Pass --allow-still (render.allow_still) to write it anyway.")
    return frac


def ge_check(expected_frames: int, fps: float = FPS, audio: bool = True,
             max_still_s: float = 1.0, name: str | None = None):
    """A ``check`` for :func:`~melodance.render.video.write_video` that runs the GE suite.

    Raises :class:`~melodance.render.video.VideoCheckError` naming the file
    and the failed checks.
    """
    checks = output_checks(fps, audio, max_still_s)

    def check(tmp_path: Path, facts: dict) -> None:
        video = name or Path(tmp_path).name
        row = {KEY: video, **check_table_row(facts, expected_frames)}
        outcome = run_output_suite([row], checks)
        if outcome.failures:
            raise VideoCheckError(Path(video), outcome.failures[video])

    return check
