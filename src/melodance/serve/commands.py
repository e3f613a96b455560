"""``melodance register | promote | rollback | serve``: the model registry and serving."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "register", help="register the trained model; move 'champion' only if it is better",
        description="Register the train stage's MLflow model as a new version of the registered "
        "model 'melodance' (tagged with its metrics, variant, DVC experiment, data hash and git commit, "
        "with a description) when its validation metric_loss per frame beats the current champion's "
        "(or there is none), and move the alias 'champion' to it. A model that is not better is "
        "registered only with params.yaml register.always: true.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--train", default="outputs/train", help="train stage output folder")
    p.add_argument("--out", default="outputs/register", help="output folder")
    p.add_argument("--params", default="params.yaml",
                   help="params file (register.always: register a model that is not better, too)")
    p.set_defaults(func=_register)

    p = sub.add_parser("promote", help="make a registered version the champion (no metric check)",
                       description="Move the alias 'champion' of the registered model 'melodance' to "
                       "VERSION: a person's decision, without the metric check of `melodance register`. "
                       "The move is recorded, so `melodance rollback` can undo it.")
    p.add_argument("version", help="model version number (see the page's model picker or the MLflow UI)")
    p.set_defaults(func=_promote)

    p = sub.add_parser("rollback", help="move the champion back to the previous champion",
                       description="Move the alias 'champion' back to the version that held it before "
                       "the last move (by `register` or `promote`).")
    p.set_defaults(func=_rollback)

    p = sub.add_parser(
        "serve", help="serve the champion (or --model URI) over HTTP with MLflow",
        description="Wraps `mlflow models serve --env-manager local` with this project's "
        "tracking URI. POST JSON to /invocations (see README 'Serving').",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default="models:/melodance@champion", help="model URI")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (loopback: this machine only)")
    p.add_argument("--port", type=int, default=5001, help="TCP port of the HTTP server")
    p.set_defaults(func=_serve)


def _register(args) -> int:
    import json
    from pathlib import Path

    from melodance import io
    from melodance.serve.registry import register as do_register

    train = Path(args.train)
    for name in ("run.json", "metrics.json"):
        if not (train / name).is_file():
            raise FileNotFoundError(f"{train / name}: missing (run the train stage first)")
    run = json.loads((train / "run.json").read_text())
    metrics = json.loads((train / "metrics.json").read_text())
    from melodance.params import load_params

    always = bool((load_params(args.params).get("register") or {}).get("always", False))
    reg = do_register(run["run_id"], metrics, always=always)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(out / "registration.json", reg.__dict__)
    if reg.version is None:
        print(f"not registered: champion stays v{reg.champion} ({reg.reason})")
        return 0
    verb = "is now champion" if reg.promoted else "registered; champion stays"
    print(f"melodance v{reg.version} {verb} (champion: v{reg.champion}; {reg.reason})")
    return 0


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
