"""``melodance register | promote | rollback | serve``: the model registry and serving."""

from __future__ import annotations

import argparse

from melodance import options
from melodance.errors import InputError


def register(sub) -> None:
    p = sub.add_parser(
        "register", help="register the trained model; move 'champion' only if it is better",
        description="Register the train stage's MLflow model as a new version of the registered "
        "model 'melodance' (tagged with its metrics, data hash and git commit) and move the alias "
        "'champion' to it only when it passes the realism gate (params.yaml 'register': a score "
        "on the validation split, KID_k + KID_g by default, with hard floors on motion energy, "
        "still fraction and bone-length error) and scores better than the current champion. "
        "A model that is not better is registered only with params.yaml register.always: true. "
        "Writes the gate's scores of the model, a real reference, the retrieval baseline and "
        "the mean pose to OUT/gate.json.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--train", default="outputs/train", help="train stage output folder")
    options.add_features(p)
    options.add_params(p, "register", "evaluate",
                       note="register.always: register a model that is not better, too")
    options.add_out(p, "register")
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
        "serve", help="serve the champion (or --model URI) over HTTP",
        description="Load the model through MLflow and serve it with MLflow's scoring server "
        "(POST JSON to /invocations, GET /ping; see README 'Serving'), behind a guard: bodies "
        "over 48 MiB get 413, errors are short JSON {\"error\": ...}, numbers are range-checked "
        "and answers are finite (docs/security-server.md). There is no authentication: keep the "
        "default loopback --host unless the network in front of it is trusted.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--model", default=None,
                   help="MLflow model URI (default: the registry's champion; trusted input: it is "
                   "loaded as given)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (loopback: this machine only; another address: a "
                   "warning, and anyone who can reach the port can use the model)")
    p.add_argument("--port", type=int, default=5001, help="TCP port of the HTTP server")
    p.set_defaults(func=_serve)


def _register(args) -> int:
    from pathlib import Path

    from melodance import io
    from melodance.evaluate.config import EvaluateConfig
    from melodance.features.pipeline import load_features
    from melodance.models.bundle import DanceBundle
    from melodance.params import load_section
    from melodance.serve import registry
    from melodance.serve.gate import RegisterConfig, gate_scores
    from melodance.serve.registry import register as do_register
    from melodance.train.stage import check_outputs

    train = Path(args.train)
    # model.pt, metrics.json and run.json must come from one training, and the
    # MLflow run must have logged that very model.pt.
    run, metrics = check_outputs(train)
    logged = registry.client().get_run(run["run_id"]).data.tags.get("melodance.sha256.model.pt")
    if logged != run["sha256"]["model.pt"]:
        raise InputError(f"{train / 'model.pt'}: MLflow run {run['run_id']} logged another model "
                         "(its sha256 tag differs); run the train stage again")
    cfg = load_section("register", RegisterConfig, args.params)
    gate = gate_scores(load_features(args.features), DanceBundle.load(train / "model.pt"),
                       load_section("evaluate", EvaluateConfig, args.params), cfg)
    mine = gate["scores"]["model"]
    metrics = {**metrics, "gate_score": mine["score"], "gate_failed": mine["failed"],
               **{f"gate_{k}": v for k, v in mine.items() if k not in ("score", "failed")}}
    reg = do_register(run["run_id"], metrics, always=cfg.always)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    io.write_json(out / "gate.json", _finite(gate))
    io.write_json(out / "registration.json", {**reg.__dict__, "gate_score": _finite(mine["score"]),
                                              "gate_failed": mine["failed"],
                                              "prefers_retrieval": gate.get("prefers_retrieval")})
    if reg.version is None:
        print(f"not registered: champion stays v{reg.champion} ({reg.reason})")
        return 0
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
    from melodance.serve.registry import CHAMPION_URI
    from melodance.serve.server import serve

    if not 0 < args.port < 65536:
        raise InputError(f"--port must be in 1..65535, got {args.port}")
    return serve(args.model or CHAMPION_URI, args.host, args.port)
