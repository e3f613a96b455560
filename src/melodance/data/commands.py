"""``melodance data``: the embedded corpus and real-data import. Standard library only at the top."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from melodance.errors import InputError


def register(sub) -> None:
    p = sub.add_parser(
        "data", help="generate the embedded corpus or import a real dataset into data/",
        description="Manage the dataset in data/ (tracked by DVC through data.dvc).",
    )
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    s = dsub.add_parser(
        "synth", help="write the embedded synthetic corpus (deterministic)",
        description="Write the embedded synthetic corpus: songs with a clear beat and chords "
                    "in four styles (cha-cha, rumba, tango, waltz) and 23-joint dances driven "
                    "by their beats, in the Music-to-Dance layout. Settings: data.synth in "
                    "params.yaml. The output is byte-identical on every run and machine, so "
                    "it matches data.dvc. An existing, identical corpus is left alone; a "
                    "different one is only replaced with --force.",
    )
    s.add_argument("--out", default=None,
                   help="output folder (default: data/ in the repository root)")
    s.add_argument("--params", default=None,
                   help="params file (default: params.yaml in the repository root)")
    s.add_argument("--force", action="store_true",
                   help="replace an existing output folder whose content differs")
    s.set_defaults(func=run_synth)

    i = dsub.add_parser(
        "import", help="copy a real Music-to-Dance dataset into data/ and `dvc add` it",
        description="Copy the DANCE_<style>_<n>/ folders of PATH (config.json, skeletons.json "
                    "and audio.mp3/.wav/.flac/.ogg of each; nothing else) into data/ and run "
                    "`dvc add data`. Refuses, changing nothing, when PATH is not that layout or "
                    "when data/ holds changes DVC has not recorded (no data.dvc, or data/ "
                    "differs from it).",
    )
    i.add_argument("path", metavar="PATH", help="root of the dataset (holds DANCE_*_*/ folders)")
    i.add_argument("--repo", default=None,
                   help="repository to import into (default: the current repository root)")
    i.set_defaults(func=run_import)

    p.set_defaults(func=lambda args: _usage(p))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _same_tree(a: Path, b: Path) -> bool:
    from melodance.data.synth import tree_digest

    return tree_digest(a) == tree_digest(b)


def run_synth(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from melodance.data.synth import SynthConfig, corpus_plan, write_corpus
    from melodance.errors import UserError
    from melodance.params import PARAMS_FILE, load_params, repo_root

    root = repo_root()
    params_path = Path(args.params) if args.params else root / PARAMS_FILE
    raw = (load_params(params_path).get("data") or {}).get("synth") or {}
    try:
        cfg = SynthConfig.model_validate(raw)
    except ValidationError as e:
        raise InputError(f"{params_path}: section data.synth is invalid:\n{e}") from e
    out = Path(args.out) if args.out else root / "data"
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder")

    out.parent.mkdir(parents=True, exist_ok=True)
    # Generate beside the target (same file system), then compare or swap in.
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.synth-", dir=out.parent))
    try:
        new = work / "corpus"
        names = write_corpus(new, cfg)
        replaced = out.exists()
        if replaced:
            if _same_tree(out, new):
                print(f"{out}: up to date ({len(names)} sequences)")
                _sync_dvc_cache(root, out)
                return 0
            if not args.force:
                raise UserError(
                    f"{out}: exists and differs from the corpus data.synth describes; "
                    "refusing to overwrite it. Use --force to replace it "
                    "(or `dvc checkout data.dvc` to restore the tracked version).")
            os.replace(out, work / "old")
        os.replace(new, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    plans = corpus_plan(cfg)
    minutes = sum(p.n_frames for p in plans) / 25.0 / 60.0
    counts = ", ".join(f"{k.replace('_', '-')} {v}"
                       for k, v in cfg.sequences.model_dump().items() if v)
    print(f"{out}: wrote {len(names)} sequences ({counts}), {minutes:.1f} min of dance"
          + (" (replaced the old content; `dvc add data` records it)" if replaced else ""))
    _sync_dvc_cache(root, out)
    return 0


def _sync_dvc_cache(root: Path, out: Path) -> None:
    """When ``out`` is the repository's tracked ``data/`` and holds exactly what
    ``data.dvc`` records, store it in the DVC cache (a fresh clone has no cache, and
    ``dvc status`` would say "not in cache"). Never changes ``data.dvc``."""
    import json

    from melodance.data.importer import run_dvc

    if out.resolve() != (root / "data").resolve() or not (root / "data.dvc").is_file():
        return
    status = json.loads(run_dvc(root, "status", "--json", "data.dvc") or "{}")
    changes = [c for entry in status.get("data.dvc", []) if isinstance(entry, dict)
               for c in entry.get("changed outs", {}).values()]
    if not changes:
        print("data/ matches data.dvc")
    elif set(changes) == {"not in cache"}:
        run_dvc(root, "commit", "-q", "data.dvc")
        print("data/ matches data.dvc; stored in the DVC cache")
    else:
        print(f"data/ differs from data.dvc ({', '.join(sorted(set(changes)))}); "
              "`dvc add data` records this version", file=sys.stderr)


def run_import(args: argparse.Namespace) -> int:
    from melodance.data.importer import DvcError, import_corpus
    from melodance.errors import UserError
    from melodance.params import repo_root

    repo = Path(args.repo) if args.repo else repo_root()
    try:
        names = import_corpus(Path(args.path), repo)
    except DvcError as e:
        raise UserError(str(e)) from e
    print(f"imported {len(names)} sequences from {args.path} into {repo / 'data'} "
          f"and ran `dvc add data`; commit data.dvc with git to keep this version")
    return 0
