"""Running a Great Expectations 1.x suite over a facts table (one row per item).

Shared by the input gate (:mod:`melodance.validate.suite`, one row per
sequence) and the output checks of rendered videos
(:mod:`melodance.render.checks`, one row per video). The GE project lives in
a throw-away folder, so nothing is written to the repository or ``~``; the
Data Docs site is copied out (atomically) when asked for.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def bound_text(min_value: float | None, max_value: float | None, value_set: tuple = ()) -> str:
    """A check's accepted values in words: ``in {a, b}``, ``[lo, hi]``, ``>= lo``, ``<= hi``."""
    if value_set:
        return f"in {{{', '.join(map(str, value_set))}}}"
    if min_value is not None and max_value is not None:
        return f"[{min_value:g}, {max_value:g}]"
    return f">= {min_value:g}" if min_value is not None else f"<= {max_value:g}"


def plain(v):
    """numpy scalars -> Python, NaN -> None, for JSON."""
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@dataclass
class GxRun:
    """What a suite run found.

    unexpected: ``(check name, rows)`` per failed expectation; each row is a dict
        holding the key column and the expectation's column(s) of one failing item.
    statistics: GE's run statistics.
    docs_index: the Data Docs' index.html, or None.
    """

    unexpected: list[tuple[str, list[dict]]]
    statistics: dict[str, Any]
    docs_index: Path | None


def run_gx_suite(table, expectations: list, *, name: str, key: str,
                 docs_dir: str | Path | None = None) -> GxRun:
    """Validate ``table`` (a pandas DataFrame with a ``key`` column) against ``expectations``.

    Each expectation carries ``meta={"check": <check name>}``. An expectation GE
    could not evaluate raises RuntimeError naming its check.
    """
    # GE reads these at import and context creation: no usage statistics and
    # no progress bars on stderr.
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.base import ProgressBarsConfig

    from melodance.io import atomic_dir

    with tempfile.TemporaryDirectory(prefix="melodance-gx-") as tmp:
        ctx = gx.get_context(mode="file", project_root_dir=tmp)
        ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
        ctx.variables.save()
        batch = (ctx.data_sources.add_pandas(name).add_dataframe_asset("facts")
                 .add_batch_definition_whole_dataframe("all"))
        suite = ctx.suites.add(gx.ExpectationSuite(name=f"{name}_suite"))
        for exp in expectations:
            suite.add_expectation(exp)
        vd = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}_facts", data=batch, suite=suite))
        actions = [gx.checkpoint.UpdateDataDocsAction(name="data_docs")] if docs_dir else []
        cp = ctx.checkpoints.add(gx.Checkpoint(
            name=name, validation_definitions=[vd], actions=actions,
            result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [key]},
        ))
        result = cp.run(batch_parameters={"dataframe": table}, run_id=RunIdentifier(run_name=name))
        (vres,) = result.run_results.values()
        unexpected = []
        for r in vres.results:
            if r.success:
                continue
            check = r.expectation_config.meta["check"]
            if r.exception_info and r.exception_info.get("raised_exception"):
                raise RuntimeError(f"Great Expectations could not evaluate check {check}: "
                                   f"{r.exception_info.get('exception_message')}")
            unexpected.append((check, list(r.result.get("unexpected_index_list") or [])))
        docs_index = None
        if docs_dir:
            site = Path(tmp) / "gx" / "uncommitted" / "data_docs" / "local_site"
            with atomic_dir(docs_dir) as out:
                shutil.copytree(site, out, dirs_exist_ok=True)
            docs_index = Path(docs_dir) / "index.html"
    return GxRun(unexpected, {k: plain(v) for k, v in vres.statistics.items()}, docs_index)
