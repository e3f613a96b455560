"""``melodance features``: the features stage. Standard library only at the top."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from melodance import options
from melodance.errors import InputError, MissingInput


def register(sub) -> None:
    p = sub.add_parser(
        "features", help="extract aligned music, temporal and motion features",
        description="Extract music (features.music), temporal and motion features of the "
                    "accepted sequences, split them by sequence and fit the normalisers on "
                    "the training split. Settings: the `features` section of params.yaml.",
    )
    p.add_argument("--data", default="data", help="dataset root (default: data)")
    p.add_argument("--accepted", default="outputs/validate/accepted.json",
                   help="accepted.json of `melodance validate` ({\"sequences\": [...]}) or a JSON list "
                        "(default: %(default)s); 'all' uses every sequence")
    options.add_out(p, "features")
    p.add_argument("--params", default=None, help="params file (default: params.yaml)")
    options.add_no_progress(p)
    p.set_defaults(func=run)


def read_accepted(path: Path) -> list[str]:
    """Sequence names from validation's ``accepted.json``
    (``{"sequences": [...], "quarantined": [...]}``) or a plain JSON list."""
    if not path.is_file():
        raise MissingInput(
            f"{path}: missing (run `melodance validate` first, or pass --accepted all)")
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: malformed JSON ({e})") from e
    if isinstance(obj, dict):
        if "sequences" not in obj:
            raise InputError(f"{path}: expected an object with 'sequences' or a list of names")
        obj = obj["sequences"]
    if not isinstance(obj, list):
        raise InputError(f"{path}: accepted sequences must be a list")
    bad = [item for item in obj if not isinstance(item, str)]
    if bad:
        raise InputError(f"{path}: not a sequence name: {bad[0]!r}")
    return list(obj)


def run(args: argparse.Namespace) -> int:
    from melodance.features.config import FeaturesConfig
    from melodance.features.pipeline import build_features
    from melodance.params import load_section

    cfg = load_section("features", FeaturesConfig, args.params)
    include = None if args.accepted == "all" else read_accepted(Path(args.accepted))
    fs = build_features(args.data, args.out, cfg, include=include,
                        progress=not args.no_progress)
    n_seq = {s: len(v) for s, v in fs.meta["split_sequences"].items()}
    frames = sum(f.n_frames for f in fs.sequences.values())
    print(f"{len(fs.sequences)} segments, {frames} frames; sequences per split {n_seq}; "
          f"music {cfg.music} ({fs.meta['dims']['music']} dims) -> {args.out}")
    return 0
