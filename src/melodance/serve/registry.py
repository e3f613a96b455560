"""The model registry policy: the ``champion`` alias moves only to a better model.

"Better" = a lower validation ``metric_loss`` per frame (cm), the seed's
metric on whole validation sequences generated from their music. Every move
of the alias is recorded in the registered model's ``champion_history`` tag,
so ``rollback`` can step back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from melodance import tracking

METRIC = "val_metric_loss_per_frame"
HISTORY_TAG = "champion_history"


@dataclass
class Registration:
    version: str | None       # None: not registered (not better, and register.always is false)
    promoted: bool
    champion: str
    reason: str


def _history() -> list[str]:
    try:
        return json.loads(tracking.registered_model_tags().get(HISTORY_TAG, "[]"))
    except json.JSONDecodeError:
        return []


def _move(version: str) -> None:
    tracking.set_champion(version)
    hist = _history()
    if not hist or hist[-1] != version:
        hist.append(version)
    tracking.set_registered_model_tag(HISTORY_TAG, json.dumps(hist))


def register(run_id: str, metrics: dict, extra_tags: dict | None = None,
             always: bool = True) -> Registration:
    """Promote the run's model when it beats the champion (or there is none). It becomes a
    registry version when promoted, or always with ``always`` (``register.always``);
    otherwise ``Registration.version`` is None and the registry is left as it was."""
    if METRIC not in metrics:
        raise ValueError(f"metrics lack {METRIC!r}: cannot compare with the champion")
    value = float(metrics[METRIC])
    tags = {f"metric.{k}": v for k, v in metrics.items()}
    tags.update({"git_commit": tracking.standard_tags()["melodance.git_commit"],
                 "data_hash": tracking.data_hash() or "unknown", **(extra_tags or {})})
    current = tracking.champion_version()
    if current is None:
        better, reason = True, "no champion yet"
    else:
        best = float(tracking.model_version_tags(current).get(f"metric.{METRIC}", "inf"))
        better = value < best
        reason = (f"{METRIC} {value:.4f} < champion v{current}'s {best:.4f}" if better else
                  f"{METRIC} {value:.4f} does not beat champion v{current}'s {best:.4f}")
    if not better and not always:
        return Registration(None, False, current, reason + "; not registered (register.always: false)")
    version = tracking.register_version(run_id, tags)
    if better:
        _move(version)
        return Registration(version, True, version, reason)
    return Registration(version, False, current, reason)


def promote(version: str) -> None:
    """Make ``version`` the champion (a person's decision, no metric check)."""
    known = {v["version"] for v in tracking.model_versions()}
    if str(version) not in known:
        raise ValueError(f"model {tracking.REGISTERED_MODEL} has no version {version} "
                         f"(versions: {', '.join(sorted(known, key=int)) or 'none'})")
    _move(str(version))


def rollback() -> str:
    """Move the champion back to the previous champion; return that version."""
    hist = _history()
    if len(hist) < 2:
        raise ValueError("no earlier champion to roll back to")
    hist.pop()
    prev = hist[-1]
    tracking.set_champion(prev)
    tracking.set_registered_model_tag(HISTORY_TAG, json.dumps(hist))
    return prev
