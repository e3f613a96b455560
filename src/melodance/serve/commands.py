"""``melodance register | promote | rollback | serve``: the model registry and serving."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "register", help="register the trained model; move 'champion' only if it is better",
        description="Register the train stage's MLflow model as a new version of the registered "
        "model 'melodance' (tagged with its metrics, data hash and git commit) and move the alias "
        "'champion' to it only when it passes the realism gate (params.yaml 'register': a score "
        "on the validation split, KID_k + KID_g by default, with hard floors on motion energy, "
        "still fraction and bone-length error) and scores better than the current champion. "
        "Writes the gate's scores of the model, a real reference, the retrieval baseline and "
        "the mean pose to OUT/gate.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--train", default="outputs/train", help="train stage output folder")
    p.add_argument("--features", default="outputs/features", help="feature stage output folder")
    p.add_argument("--params", default="params.yaml", help="params file (sections register, evaluate)")
    p.add_argument("--out", default="outputs/register", help="output folder")
    p.set_defaults(func=_register)

    p = sub.add_parser("promote", help="make a registered version the champion (no metric check)")
    p.add_argument("version", help="model version number")
    p.set_defaults(func=_promote)

    p = sub.add_parser("rollback", help="move the champion back to the previous champion")
    p.set_defaults(func=_rollback)

    p = sub.add_parser(
        "serve", help="serve the champion (or --model URI) over HTTP with MLflow",
        description="Wraps `mlflow models serve --env-manager local` with this project's "
        "tracking URI. POST JSON to /invocations (see README 'Serving').",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default="models:/melodance@champion", help="model URI")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5001)
    p.set_defaults(func=_serve)


def _register(args) -> int:
    import json
    from pathlib import Path

    from melodance import io
    from melodance.evaluate.config import EvaluateConfig
    from melodance.features.pipeline import load_features
    from melodance.models.bundle import DanceBundle
    from melodance.params import load_section
    from melodance.serve.registry import RegisterConfig, gate_scores
    from melodance.serve.registry import register as do_register

    train = Path(args.train)
    for name in ("run.json", "metrics.json", "model.pt"):
        if not (train / name).is_file():
            raise FileNotFoundError(f"{train / name}: missing (run the train stage first)")
    run = json.loads((train / "run.json").read_text())
    metrics = json.loads((train / "metrics.json").read_text())
    cfg = load_section("register", RegisterConfig, args.params)
    gate = gate_scores(load_features(args.features), DanceBundle.load(train / "model.pt"),
                       load_section("evaluate", EvaluateConfig, args.params), cfg)
    mine = gate["scores"]["model"]
    metrics = {**metrics, "gate_score": mine["score"], "gate_failed": mine["failed"],
               **{f"gate_{k}": v for k, v in mine.items() if k not in ("score", "failed")}}
    reg = do_register(run["run_id"], metrics)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(out / "gate.json", _finite(gate))
    io.write_json(out / "registration.json", {**reg.__dict__, "gate_score": _finite(mine["score"]),
                                              "gate_failed": mine["failed"],
                                              "prefers_retrieval": gate.get("prefers_retrieval")})
    verb = "is now champion" if reg.promoted else "registered; champion stays"
    print(f"melodance v{reg.version} {verb} (champion: v{reg.champion}; {reg.reason})")
    return 0


def _finite(obj):
    """JSON has no infinity: a failed gate score is written as null."""
    from melodance.evaluate.stage import finite

    return finite(obj)


def _promote(args) -> int:
    from melodance.serve.registry import promote

    promote(args.version)
    print(f"champion -> v{args.version}")
    return 0


def _rollback(args) -> int:
    from melodance.serve.registry import rollback

    print(f"champion -> v{rollback()}")
    return 0


def _serve(args) -> int:
    import os
    import subprocess
    import sys

    from melodance import tracking

    env = dict(os.environ, MLFLOW_TRACKING_URI=tracking.tracking_uri())
    cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", args.model,
           "--env-manager", "local", "-h", args.host, "-p", str(args.port)]
    print(" ".join(cmd), file=sys.stderr)
    return subprocess.call(cmd, env=env)
