"""The one home of the model registry: client calls, the champion, loading a model.

The MLflow client calls on the registered model (:data:`REGISTERED_MODEL`, alias
:data:`CHAMPION`), the champion's URI (:data:`CHAMPION_URI`) and loading a bundle from
a path or a registry URI (:func:`load_bundle`); the policy: the ``champion`` alias
moves only to a model the gate (:mod:`melodance.serve.gate`) scores better. A model
outside any hard floor scores ``inf`` and is never promoted, not even as the first
champion. Every move of the alias is recorded in the registered model's
``champion_history`` tag, so ``rollback`` can step back. ``melodance.tracking`` keeps
runs only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from melodance import tracking
from melodance.errors import InputError, UserError

REGISTERED_MODEL = "melodance"
CHAMPION = "champion"
CHAMPION_URI = f"models:/{REGISTERED_MODEL}@{CHAMPION}"
"""What a command loads when no model is named: the registry's champion."""
HISTORY_TAG = "champion_history"
METRIC = "gate_score"
"""The gate's score (:mod:`melodance.serve.gate`) in metrics and version tags: lower is better."""


def is_better(a: float, b: float) -> bool:
    """Does score ``a`` beat ``b``? A failed (infinite) score beats nothing."""
    return math.isfinite(a) and a < b


@dataclass
class Registration:
    version: str | None       # None: not registered (not better, and register.always is false)
    promoted: bool
    champion: str
    reason: str


def _history() -> list[str]:
    try:
        return json.loads(registered_model_tags().get(HISTORY_TAG, "[]"))
    except json.JSONDecodeError:
        return []


def _move(version: str) -> None:
    set_champion(version)
    hist = _history()
    if not hist or hist[-1] != version:
        hist.append(version)
    set_registered_model_tag(HISTORY_TAG, json.dumps(hist))


def register(run_id: str, metrics: dict, extra_tags: dict | None = None,
             always: bool = True) -> Registration:
    """Promote the run's model when it beats the champion (or there is none). It becomes a
    registry version when promoted, or always with ``always`` (``register.always``);
    otherwise ``Registration.version`` is None and the registry is left as it was."""
    if METRIC not in metrics:
        raise InputError(f"metrics lack {METRIC!r}: cannot compare with the champion")
    value = float(metrics[METRIC])
    failed = list(metrics.get("gate_failed") or [])
    tags = {f"metric.{k}": v for k, v in metrics.items() if k != "gate_failed"}
    if failed:
        tags["gate_failed"] = "; ".join(failed)
    tags.update({"git_commit": tracking.standard_tags()["melodance.git_commit"],
                 "data_hash": tracking.data_hash() or "unknown", **(extra_tags or {})})
    current = champion_version()
    if failed or not math.isfinite(value):
        better = False
        reason = f"fails the gate's floors: {'; '.join(failed) or f'{METRIC} is {value}'}"
    elif current is None:
        better, reason = True, "no champion yet"
    else:
        best = float(model_version_tags(current).get(f"metric.{METRIC}", "inf"))
        better = is_better(value, best)
        reason = (f"{METRIC} {value:.4f} < champion v{current}'s {best:.4f}" if better else
                  f"{METRIC} {value:.4f} does not beat champion v{current}'s {best:.4f}")
    if not better and not always:
        return Registration(None, False, current or "none",
                            reason + "; not registered (register.always: false)")
    version = register_version(run_id, tags)
    if better:
        _move(version)
        return Registration(version, True, version, reason)
    return Registration(version, False, current or "none", reason)


def promote(version: str) -> None:
    """Make ``version`` the champion (a person's decision, no metric check)."""
    known = {v["version"] for v in model_versions()}
    if str(version) not in known:
        raise InputError(f"model {REGISTERED_MODEL} has no version {version} "
                         f"(versions: {', '.join(sorted(known, key=int)) or 'none'})")
    _move(str(version))


def rollback() -> str:
    """Move the champion back to the previous champion; return that version."""
    hist = _history()
    if len(hist) < 2:
        raise InputError("no earlier champion to roll back to")
    hist.pop()
    prev = hist[-1]
    set_champion(prev)
    set_registered_model_tag(HISTORY_TAG, json.dumps(hist))
    return prev


# ----------------------------------------------------------------------------- registry client

def client():
    from mlflow.tracking import MlflowClient

    tracking.setup()
    return MlflowClient(tracking.tracking_uri())


def run_model_uri(run_id: str, name: str = "model") -> str:
    """The URI of the pyfunc model logged in a run."""
    return f"runs:/{run_id}/{name}"


def logged_model_uri(run_id: str, name: str = "model") -> str:
    """The URI of the model the run logged as ``name``: ``models:/<model id>`` (MLflow 3's
    logged model), else ``runs:/<run id>/<name>``."""
    c = client()
    run = c.get_run(run_id)
    found = c.search_logged_models(experiment_ids=[run.info.experiment_id],
                                   filter_string=f"source_run_id = '{run_id}' AND name = '{name}'")
    return f"models:/{found[0].model_id}" if found else run_model_uri(run_id, name)


def register_version(run_id: str, tags: dict[str, str]) -> str:
    """Register the run's model as a new version of ``melodance``; return the version.

    The version carries the run's variant and DVC experiment as tags and a description
    saying what it is, so the registry's list and the page's model picker tell versions apart.
    """
    import mlflow

    tracking.setup()
    c = client()
    run = c.get_run(run_id)
    variant = run.data.tags.get("melodance.variant", "unknown")
    exp = run.data.tags.get("melodance.dvc_exp")
    tags = {"variant": variant, **({"dvc_exp": exp} if exp else {}), **tags}
    metric = tags.get("metric.best_val_metric_loss_per_frame", tags.get("metric.val_metric_loss_per_frame"))
    commit = str(tags.get("git_commit", "?"))[:8]
    description = (f"{variant}" + (f", DVC experiment {exp}" if exp else "")
                   + f", trained in run {run.info.run_name or run_id} (git {commit})"
                   + (f"; validation metric_loss {float(metric):.2f} cm/frame" if metric else ""))
    uri = logged_model_uri(run_id)
    mv = tracking.retry(lambda: mlflow.register_model(uri, REGISTERED_MODEL,
                                              tags={k: str(v) for k, v in tags.items()}))
    tracking.retry(lambda: c.update_model_version(REGISTERED_MODEL, mv.version, description=description))
    return str(mv.version)


def champion_version() -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(REGISTERED_MODEL, CHAMPION).version)
    except MlflowException:
        return None


def model_version_tags(version: str) -> dict[str, str]:
    return dict(client().get_model_version(REGISTERED_MODEL, version).tags)


def set_champion(version: str) -> None:
    c = client()
    tracking.retry(lambda: c.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version))


def set_registered_model_tag(key: str, value: str) -> None:
    c = client()
    tracking.retry(lambda: c.set_registered_model_tag(REGISTERED_MODEL, key, value))


def registered_model_tags() -> dict[str, str]:
    return dict(client().get_registered_model(REGISTERED_MODEL).tags)


def model_versions() -> list[dict]:
    vs = client().search_model_versions(f"name = '{REGISTERED_MODEL}'")
    return sorted(({"version": str(v.version), "run_id": v.run_id, "tags": dict(v.tags),
                    "aliases": list(v.aliases), "description": v.description or ""} for v in vs),
                  key=lambda d: int(d["version"]))


# ----------------------------------------------------------------------------- loading a model

MODEL_URI_SCHEMES = ("models:/", "runs:/")
"""The MLflow URIs :func:`load_bundle` accepts: the registry's and the tracking server's own."""


def load_bundle(model: str | Path | None = None):
    """A :class:`~melodance.models.bundle.DanceBundle` from a path or an MLflow URI.

    ``model`` is trusted input (a command-line option, never a web request):
    it names a file or a model of the tracking server the user configured.
    Either way no code is run to load it: a bundle file is read with
    ``torch.load(weights_only=True)``, and of a logged model only its
    ``MLmodel`` (YAML) and its bundle artifact are read, the same way; the
    model's code file is never imported here.

    Args:
        model: a ``model.pt`` bundle file, a ``models:/...`` or ``runs:/...``
            URI of a melodance pyfunc, or None for the registry's champion.
            Other URI schemes (``http:``, ``s3:``, ``file:`` ...) are refused.

    Returns:
        (bundle, label): the label names the model in captions and logs.
    """
    from melodance.models.bundle import DanceBundle

    model = CHAMPION_URI if model is None else str(model)
    if "://" not in model and ":/" not in model:
        return DanceBundle.load(model), Path(model).name
    if not model.startswith(MODEL_URI_SCHEMES):
        raise UserError(f"{model}: not a model this command loads: give a model.pt file or a "
                        f"{' or '.join(MODEL_URI_SCHEMES)} URI of the tracking server")
    import tempfile

    from mlflow.exceptions import MlflowException

    tracking.setup()
    with tempfile.TemporaryDirectory(prefix="melodance-model-") as tmp:
        try:
            from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

            repo = get_artifact_repository(model)
            meta = Path(repo.download_artifacts("MLmodel", tmp))
            rel = _bundle_artifact(meta, model)
            path = Path(repo.download_artifacts(rel, tmp))
        except (MlflowException, OSError) as e:
            hint = (" (no champion registered yet: train and `melodance register` a model, or "
                    "pass --model PATH)" if model == CHAMPION_URI else "")
            raise UserError(f"{model}: cannot load the model{hint}: "
                            f"{str(e).splitlines()[0]}") from e
        if not path.resolve().is_relative_to(Path(tmp).resolve()) or not path.is_file():
            raise UserError(f"{model}: not a melodance dance model (its bundle artifact is "
                            "missing)")
        bundle = DanceBundle.load(path)
    label = model.removeprefix("models:/")
    if model == CHAMPION_URI:
        version = champion_version()
        label += f" (v{version})" if version else ""
    if model.startswith("runs:/"):
        label = "run " + model.removeprefix("runs:/")[:8]
    return bundle, label


def _bundle_artifact(mlmodel: Path, model: str) -> str:
    """The bundle artifact's path inside a melodance pyfunc model, from its ``MLmodel`` (YAML)."""
    from pathlib import PurePosixPath

    import yaml


    try:
        meta = yaml.safe_load(mlmodel.read_text())
        rel = str(meta["flavors"]["python_function"]["artifacts"]["bundle"]["path"])
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError) as e:
        raise UserError(f"{model}: not a melodance dance model (no bundle artifact in its "
                        "MLmodel)") from e
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts or "\\" in rel:
        raise UserError(f"{model}: not a melodance dance model (bad bundle artifact path)")
    return rel
