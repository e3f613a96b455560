"""Run the ablations: features per setting, training per (setting, seed), tracked in MLflow."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from melodance import tracking
from melodance.ablate.plan import BUDGETS, Setting, full_overrides, settings


def _features_tag(over: dict) -> str:
    return f"{over['features.normalize']}-temporal_{'on' if over['features.temporal_normalize'] else 'off'}"


def _val_scores(model, fs) -> dict:
    """metric_loss per frame, BAS and FID_k on whole validation sequences generated from music."""
    from melodance.evaluate.config import EvaluateConfig
    from melodance.evaluate.scoring import score_rows
    from melodance.models.bundle import DanceBundle

    bundle = DanceBundle(model, fs.normalizers, fs.meta)
    s = score_rows(fs, bundle, "val", EvaluateConfig(), intervals=False, rows=("model",))["model"]
    return {k: s[k] for k in ("metric_loss_per_frame", "bas_music", "bas_motion", "fid_k")}


def _feature_sets(unique: dict, base_features, budget, data_dir: Path, out_dir: Path,
                  accepted: list[str], progress: bool) -> dict:
    """The feature set of every normalisation setting the ablations train on, built once each
    under ``out_dir/features/<tag>`` (kept between runs) and loaded: {tag: FeatureSet}."""
    from melodance.features.config import FeaturesConfig
    from melodance.features.pipeline import build_features, load_features

    feature_sets = {}
    for key in unique:
        over = dict(key)
        tag = _features_tag(over)
        if tag in feature_sets:
            continue
        cfg = FeaturesConfig.model_validate({
            **base_features.model_dump(), "normalize": over["features.normalize"],
            "temporal_normalize": over["features.temporal_normalize"],
            "window": budget.window, "stride": budget.stride})
        fdir = out_dir / "features" / tag
        if not (fdir / "meta.json").is_file():
            build_features(data_dir, fdir, cfg, include=accepted, progress=progress)
        feature_sets[tag] = load_features(fdir)
    return feature_sets


def run_ablations(data_dir: Path, out_dir: Path, budget_name: str = "small",
                  params_path: str | Path = "params.yaml", progress: bool = True) -> dict:
    """Train every setting with every seed of the budget; return all results (also as JSON)."""
    from tqdm import tqdm

    from melodance import io
    from melodance.features.config import FeaturesConfig
    from melodance.models import ModelConfig
    from melodance.params import load_section
    from melodance.train.config import TrainConfig
    from melodance.train.loop import fit
    from melodance.validate.config import ValidateConfig
    from melodance.validate.stage import run_validation

    budget = BUDGETS[budget_name]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base_features = load_section("features", FeaturesConfig, params_path)
    base_model = load_section("model", ModelConfig, params_path)
    base_train = load_section("train", TrainConfig, params_path)
    train_cfg = TrainConfig.model_validate({
        **base_train.model_dump(), "epochs": budget.epochs, "batch_size": budget.batch_size,
        "patience": budget.patience, "use_tuned": False})

    # The same gate as the pipeline: no sequence that fails validation is trained on.
    report = run_validation(Path(data_dir), out_dir / "validate",
                            load_section("validate", ValidateConfig, params_path), docs=False)
    accepted = list(report.accepted)

    all_settings = settings(budget)
    unique: dict[tuple, list[Setting]] = {}
    for s in all_settings:
        unique.setdefault(tuple(sorted(full_overrides(s, budget).items())), []).append(s)

    feature_sets = _feature_sets(unique, base_features, budget, Path(data_dir), out_dir, accepted,
                                 progress)

    runs = []
    jobs = [(key, seed) for key in unique for seed in budget.seeds]
    with tracking.stage_run("ablate", params={"budget": asdict(budget)},
                            run_name=f"ablate-{budget_name}",
                            tags={"melodance.budget": budget_name}) as parent:
        bar = tqdm(jobs, desc=f"ablations ({budget_name})", unit="run", disable=not progress)
        for key, seed in bar:
            over = dict(key)
            members = unique[key]
            fs = feature_sets[_features_tag(over)]
            model_cfg = ModelConfig.model_validate({
                **base_model.model_dump(), "family": "lstm", "variant": over["model.variant"],
                "hidden_size": budget.hidden_size})
            cfg = TrainConfig.model_validate({**train_cfg.model_dump(), "seed": seed})
            tags = {f"melodance.ablation.{m.ablation}": m.name for m in members}
            tags["melodance.ablations"] = ",".join(sorted({m.ablation for m in members}))
            tags["melodance.seed"] = str(seed)
            label = " / ".join(f"{m.ablation}={m.name}" for m in members)
            bar.set_postfix_str(f"{label} seed {seed}")
            with tracking.stage_run("ablate-run", run_name=f"{label} seed {seed}",
                                    parent_run_id=parent.info.run_id, tags=tags,
                                    params={"overrides": over, "model": model_cfg.model_dump(),
                                            "train": cfg.model_dump()}):
                result = fit(fs, model_cfg, cfg, progress=False,
                             on_epoch=lambda st: tracking.log_metrics(st.metrics(), step=st.epoch),
                             window=budget.window, stride=over["features.stride"])
                scores = _val_scores(result.model, fs)
                tracking.log_metrics({f"val_{k}": v for k, v in scores.items()})
            runs.append({"settings": [[m.ablation, m.name] for m in members], "seed": seed,
                         "overrides": over, "scores": scores,
                         "history": [h.__dict__ for h in result.history]})
        results = {"budget": budget_name, "budget_settings": asdict(budget), "runs": runs,
                   "parent_run_id": parent.info.run_id}
        io.write_json(out_dir / "results.json", results)
        tracking.log_artifact(out_dir / "results.json")
    return results
