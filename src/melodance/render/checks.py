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

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from melodance import FPS
from melodance.render.video import OutputCheck, VideoCheckError, check_table_row, output_checks

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


def _plain(v):
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def run_output_suite(rows: list[dict], checks: list[OutputCheck],
                     docs_dir: str | Path | None = None) -> OutputSuiteOutcome:
    """Validate video facts with Great Expectations.

    Args:
        rows: one dict per video (:func:`~melodance.render.video.check_table_row`)
            with a ``video`` key naming it.
        checks: the output checks (:func:`~melodance.render.video.output_checks`).
        docs_dir: where to write the Data Docs site (replaced atomically); None: none.
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    import pandas as pd
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from melodance.io import atomic_dir

    if not rows:
        raise ValueError("no videos to check")
    cols = [KEY, *dict.fromkeys(c.column for c in checks)]
    table = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
    by_name = {c.name: c for c in checks}
    with tempfile.TemporaryDirectory(prefix="melodance-gx-") as tmp:
        ctx = gx.get_context(mode="file", project_root_dir=tmp)
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        ctx.variables.save()
        batch = (ctx.data_sources.add_pandas("renders").add_dataframe_asset("video_facts")
                 .add_batch_definition_whole_dataframe("all"))
        suite = ctx.suites.add(gx.ExpectationSuite(name=SUITE_NAME))
        for c in checks:
            for exp in _expectations(c):
                suite.add_expectation(exp)
        vd = ctx.validation_definitions.add(
            gx.ValidationDefinition(name="video_facts", data=batch, suite=suite))
        actions = [gx.checkpoint.UpdateDataDocsAction(name="data_docs")] if docs_dir else []
        cp = ctx.checkpoints.add(gx.Checkpoint(
            name="melodance_render", validation_definitions=[vd], actions=actions,
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [KEY]},
        ))
        result = cp.run(batch_parameters={"dataframe": table},
                        run_id=RunIdentifier(run_name="melodance-render"))
        (vres,) = result.run_results.values()
        failures: dict[str, list[dict]] = {}
        for r in vres.results:
            if r.success:
                continue
            check = by_name[r.expectation_config.meta["check"]]
            if r.exception_info and r.exception_info.get("raised_exception"):
                raise RuntimeError(f"Great Expectations could not evaluate check {check.name}: "
                                   f"{r.exception_info.get('exception_message')}")
            for row in r.result.get("unexpected_index_list") or []:
                found = failures.setdefault(row[KEY], [])
                if any(f["check"] == check.name for f in found):
                    continue
                found.append({"check": check.name, "why": check.why,
                              "value": _plain(row.get(check.column)), "bound": check.bound})
        docs_index = None
        if docs_dir:
            site = Path(tmp) / "gx" / "uncommitted" / "data_docs" / "local_site"
            with atomic_dir(docs_dir) as out:
                shutil.copytree(site, out, dirs_exist_ok=True)
            docs_index = Path(docs_dir) / "index.html"
    stats = {k: _plain(v) for k, v in vres.statistics.items()}
    return OutputSuiteOutcome(failures, stats, docs_index)


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
