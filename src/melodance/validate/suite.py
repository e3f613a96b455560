"""The Great Expectations suite over the facts table (one row per sequence).

:func:`checks` turns the ``validate`` config into named checks; each becomes
one Great Expectations 1.x expectation on a column (or pair of columns) of the
facts table. :func:`run_suite` validates the table through a checkpoint in a
throw-away file context, writes GE's Data Docs (HTML) and returns, per
sequence, each failed check with its measured value and bound.

A fact that could not be measured (``None``: its file is unreadable) is
skipped by the expectations on it; the check that reads the file fails
instead, with a message naming the file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from melodance.errors import InputError
from melodance.validate.config import ValidateConfig
from melodance.validate.gx import bound_text, run_gx_suite
from melodance.validate.gx import plain as _plain

SUITE_NAME = "melodance_sequence_facts"
KEY = "sequence"


@dataclass(frozen=True)
class Check:
    """One named check on the facts table.

    kind: ``true`` (column is True), ``between`` (min_value <= column <= max_value,
    either bound may be None), ``in_set`` (column in value_set), ``equal``
    (columns[0] == columns[1]), ``greater`` (columns[0] > columns[1]).
    """

    name: str
    kind: Literal["true", "between", "in_set", "equal", "greater"]
    columns: tuple[str, ...]
    why: str
    min_value: float | None = None
    max_value: float | None = None
    value_set: tuple = ()

    @property
    def bound(self) -> str:
        if self.kind == "true":
            return "true"
        if self.kind == "equal":
            return f"{self.columns[0]} == {self.columns[1]}"
        if self.kind == "greater":
            return f"{self.columns[0]} > {self.columns[1]}"
        return bound_text(self.min_value, self.max_value, self.value_set)

    def expectation(self):
        import great_expectations as gx

        common = {"meta": {"check": self.name}, "notes": self.why}
        e = gx.expectations
        if self.kind == "true":
            return e.ExpectColumnValuesToBeInSet(column=self.columns[0], value_set=[True], **common)
        if self.kind == "in_set":
            return e.ExpectColumnValuesToBeInSet(column=self.columns[0],
                                                 value_set=list(self.value_set), **common)
        if self.kind == "between":
            return e.ExpectColumnValuesToBeBetween(column=self.columns[0], min_value=self.min_value,
                                                   max_value=self.max_value, **common)
        pair = {"column_A": self.columns[0], "column_B": self.columns[1],
                "ignore_row_if": "either_value_is_missing", **common}
        if self.kind == "equal":
            return e.ExpectColumnPairValuesToBeEqual(**pair)
        return e.ExpectColumnPairValuesAToBeGreaterThanB(or_equal=False, **pair)


def checks(cfg: ValidateConfig) -> list[Check]:
    """The checks, in the order a reader fixes problems: files, shapes, counts, time, body."""
    c = cfg
    return [
        # Files and formats.
        Check("files_present", "true", ("files_present",),
              "audio, config.json and skeletons.json exist"),
        Check("config_readable", "true", ("config_readable",),
              "config.json parses, with integer start_position and end_position"),
        Check("skeletons_readable", "true", ("skeletons_readable",),
              "skeletons.json parses, with length, center and skeletons as numeric arrays"),
        Check("audio_readable", "true", ("audio_readable",), "the audio file decodes"),
        Check("audio_complete", "between", ("audio_missing_s",),
              "seconds the audio header promises but that do not decode (truncated file)",
              max_value=c.max_audio_missing_s),
        Check("length_matches_frames", "equal", ("length", "n_frames"),
              "skeletons.json length equals its number of skeleton frames"),
        Check("root_frames_match", "equal", ("n_root_frames", "n_frames"),
              "as many root (center) frames as skeleton frames"),
        Check("joint_count", "in_set", ("n_joints",), "23 joints per frame", value_set=(23,)),
        Check("coord_count", "in_set", ("n_coords",), "3 coordinates per joint", value_set=(3,)),
        Check("root_coord_count", "in_set", ("n_root_coords",), "3 coordinates per root frame",
              value_set=(3,)),
        Check("finite_values", "between", ("n_nonfinite",), "no NaN or infinite coordinates",
              min_value=0, max_value=0),
        # Frame counts and spans.
        Check("min_frames", "between", ("n_frames",), "enough frames to train on",
              min_value=c.min_frames),
        Check("start_not_negative", "between", ("start_frame",), "start_position >= 0",
              min_value=0),
        Check("start_before_end", "greater", ("end_frame", "start_frame"),
              "end_position after start_position"),
        Check("frame_ratio", "between", ("frame_ratio",),
              "skeleton frames / config span (end - start); real data 0.978-0.999, a 4x "
              "frame-rate fault gives 0.25",
              min_value=c.frame_ratio_min, max_value=c.frame_ratio_max),
        Check("span_within_audio", "between", ("audio_margin_s",),
              "seconds of audio left after end_position / 25 (the span must lie in the song)",
              min_value=c.min_audio_margin_s),
        # Time scale: catches a dance squeezed or stretched in time even when its
        # frame count was "fixed" to match the span.
        Check("mean_joint_speed", "between", ("mean_joint_speed_cm_s",),
              "mean joint speed in world coordinates, cm/s; real 63-180, 4x faster or "
              "slower fails",
              min_value=c.mean_joint_speed_min_cm_s, max_value=c.mean_joint_speed_max_cm_s),
        Check("movement_period", "between", ("movement_period_s",),
              "characteristic period of movement 2 pi mean|v| / mean|a|, s; real 0.60-1.46",
              min_value=c.movement_period_min_s, max_value=c.movement_period_max_s),
        # Plausibility of the body and its path.
        Check("max_joint_speed", "between", ("max_joint_speed_cm_s",),
              "fastest joint, cm/s (physical bound); real up to 1742 (T_5 glitch)",
              max_value=c.max_joint_speed_cm_s),
        Check("bone_cv", "between", ("max_bone_cv",),
              "largest coefficient of variation of a rigid bone's length; real up to 0.175",
              max_value=c.max_bone_cv),
        Check("body_height", "between", ("body_height_cm",),
              "median head-to-lowest-foot height, cm (units and y-up convention); real 138-158",
              min_value=c.body_height_min_cm, max_value=c.body_height_max_cm),
        Check("joint_range", "between", ("max_abs_joint_cm",),
              "largest joint offset from the root, cm; real up to 108",
              max_value=c.max_abs_joint_cm),
        Check("root_height_min", "between", ("root_height_min_cm",),
              "lowest root height, cm; real 42 and up", min_value=c.root_height_min_cm),
        Check("root_height_max", "between", ("root_height_max_cm",),
              "highest root height, cm; real up to 161", max_value=c.root_height_max_cm),
        Check("root_range", "between", ("max_abs_root_xz_cm",),
              "largest horizontal root coordinate, cm; real up to 1009",
              max_value=c.max_abs_root_xz_cm),
        Check("root_continuity", "between", ("max_root_step_cm",),
              "largest root step between frames, cm; real up to 19",
              max_value=c.max_root_step_cm),
    ]


@dataclass
class SuiteOutcome:
    """What the suite found.

    failures: sequence name -> list of failed checks, each a dict with
      ``check``, ``why``, ``value`` (measured; a dict for column pairs) and ``bound``.
    statistics: GE's counts of evaluated / successful expectations.
    docs_index: the Data Docs entry page, when written.
    """

    failures: dict[str, list[dict]]
    statistics: dict[str, Any]
    docs_index: Path | None




def run_suite(table, cfg: ValidateConfig, docs_dir: str | Path | None = None) -> SuiteOutcome:
    """Validate the facts table with the Great Expectations suite.

    table: pandas DataFrame, one row per sequence, with a ``sequence`` column
      and the fact columns named by :func:`checks`.
    docs_dir: where to write GE's Data Docs site (replaced atomically); None
      skips them.
    """
    all_checks = checks(cfg)
    by_name = {c.name: c for c in all_checks}
    missing = sorted({col for c in all_checks for col in c.columns} - set(table.columns))
    if missing:
        raise InputError(f"facts table lacks column(s) {', '.join(missing)}")

    run = run_gx_suite(table, [c.expectation() for c in all_checks], name="melodance_validate",
                       key=KEY, docs_dir=docs_dir)
    failures: dict[str, list[dict]] = {}
    for name, rows in run.unexpected:
        check = by_name[name]
        for row in rows:
            if len(check.columns) == 1:
                value = _plain(row.get(check.columns[0]))
            else:
                value = {col: _plain(row.get(col)) for col in check.columns}
            failures.setdefault(row[KEY], []).append(
                {"check": check.name, "why": check.why, "value": value, "bound": check.bound})
    return SuiteOutcome(failures, run.statistics, run.docs_index)
