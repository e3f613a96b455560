"""The ablation machinery end to end on the embedded corpus (tiny budget)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_ablations_tracked_and_reported(tmp_path, synth_corpus, mlflow_store, monkeypatch):
    from mlflow.tracking import MlflowClient

    from melodance.ablate.plan import BUDGETS, settings
    from melodance.ablate.report import verdicts, write_report
    from melodance.ablate.run import run_ablations

    monkeypatch.chdir(tmp_path)
    results = run_ablations(synth_corpus, tmp_path / "work", "tiny", params_path="none.yaml",
                            progress=False)
    # 11 settings, of which the baseline appears in all 4 ablations: 8 distinct trainings.
    assert len(settings(BUDGETS["tiny"])) == 11
    assert len(results["runs"]) == 8
    md = write_report(results, tmp_path / "report")
    text = md.read_text()
    for ablation in ("normalization", "windows", "temporal_normalize", "variant"):
        assert f"## {ablation}" in text
        assert (tmp_path / "report" / f"{ablation}.png").stat().st_size > 1000
    v = verdicts(results)
    assert set(v) == {"normalization", "windows", "temporal_normalize", "variant"}
    assert all(line.startswith(("HELD", "CONTRADICTED", "INCONCLUSIVE")) for line in v.values())

    client = MlflowClient(mlflow_store)
    exp = client.get_experiment_by_name("melodance")
    children = client.search_runs([exp.experiment_id],
                                  f"tags.`mlflow.parentRunId` = '{results['parent_run_id']}'")
    assert len(children) == 8
    assert all(c.info.status == "FINISHED" for c in children)
    variant_runs = client.search_runs([exp.experiment_id],
                                      "tags.`melodance.ablation.variant` = 'c_masked_lstm'")
    assert len(variant_runs) == 1
    assert len(client.get_metric_history(variant_runs[0].info.run_id, "val_loss")) == 2


def test_compare_needs_a_difference_beyond_the_seed_spread():
    from melodance.ablate.report import compare

    def runs(*finals):
        return [{"history": [{"x": v}]} for v in finals]

    last = lambda r: r["history"][-1]["x"]  # noqa: E731
    assert compare(runs(1.0, 1.1), runs(2.0, 2.1), last)[0] == "HELD"
    assert compare(runs(2.0, 2.1), runs(1.0, 1.1), last)[0] == "CONTRADICTED"
    assert compare(runs(1.0, 2.0), runs(1.2, 2.2), last)[0] == "INCONCLUSIVE"  # within spread
    assert compare(runs(154.30), runs(154.31), last)[0] == "INCONCLUSIVE"  # within 0.5 %
