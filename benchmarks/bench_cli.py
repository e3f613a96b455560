"""Benchmark: what a user waits for at the command line.

- ``melodance --help`` in a fresh process (target under 1 s; the Python
  interpreter's own start-up is shown for reference);
- ``dvc repro`` with nothing changed (target under 5 s), in a temporary copy
  of the repository (pipeline files and source, a fresh git and DVC
  repository, the embedded corpus from ``melodance data synth``) after one full
  ``dvc repro`` with the repository's ``params.yaml``: what ``make demo``, the
  README's first command, runs once the venv is set up; its wall time is
  reported too. ``--tiny`` (implied by ``--quick``) uses small settings instead
  (3 training epochs on one thread, one tuning trial, 2 s videos).

Every command is a fresh process: wall seconds and the process's own peak RSS.

    python benchmarks/bench_cli.py [--quick] [--tiny] [--json rows.json]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common as C  # noqa: E402

BIN = Path(sys.executable).parent
PROJECT_FILES = ("dvc.yaml", "dvc.lock", "params.yaml", "data.dvc", "MLproject", ".dvcignore",
                 ".gitignore", "pyproject.toml")
# Small settings for the one full repro that precedes the no-op timing.
# The model must move: the render stage refuses a still video (3 epochs, as tests/test_pipeline.py).
TINY = {"train": {"epochs": 3, "use_tuned": False, "threads": 1}, "tune": {"n_trials": 1, "epochs": 1},
        "model": {"hidden_size": 32, "mlp_hidden": 32, "code_size": 8},
        "render": {"max_seconds": 2}}


def clean_env() -> dict:
    """This environment without MLflow/DVC variables that would point at the real project."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
    env.setdefault("MPLBACKEND", "Agg")
    return env


def run(cmd: list[str], cwd: Path | None = None, check: bool = True) -> C.ProcResult:
    r = C.run_process(cmd, cwd=cwd, env=clean_env())
    if check and r.returncode != 0:
        # DVC names the failing stage on stderr; the stage's own error is just above it.
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        raise RuntimeError(f"`{' '.join(Path(c).name for c in cmd)}` failed ({r.returncode}) in "
                           f"{cwd}: " + " | ".join(lines[-12:]))
    return r


def repo_copy(dst: Path, overrides: dict | None) -> Path:
    """A git + DVC repository with this project's pipeline files and source (no outputs)."""
    import yaml

    dst.mkdir(parents=True)
    for name in PROJECT_FILES:
        if (REPO / name).exists():
            shutil.copy2(REPO / name, dst / name)
    shutil.copytree(REPO / "src", dst / "src", ignore=shutil.ignore_patterns("__pycache__"))
    (dst / ".dvc").mkdir()
    for name in ("config", ".gitignore"):
        shutil.copy2(REPO / ".dvc" / name, dst / ".dvc" / name)
    if overrides:
        params = yaml.safe_load((dst / "params.yaml").read_text())
        for section, values in overrides.items():
            params.setdefault(section, {}).update(values)
        (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(["git", "init", "-q"], dst)
    run(["git", "add", "-A"], dst)
    run(["git", "-c", "user.email=bench@localhost", "-c", "user.name=bench", "commit", "-qm",
         "benchmark copy"], dst)
    return dst


def help_rows(repeat: int) -> list[C.Row]:
    melodance = str(BIN / "melodance")
    samples = C.alternate({
        "ours": lambda: run([melodance, "--help"]).wall_s,
        "python": lambda: run([sys.executable, "-c", "pass"]).wall_s,
    }, repeat)
    peak = run([melodance, "--help"]).peak_rss_mb
    ours = C.median(samples["ours"])
    return [C.Row("melodance --help, fresh process", "s", ours, None, False, "< 1 s", ours < 1.0,
                  f"spread {C.spread(samples['ours']):.0%}; bare `python -c pass` takes "
                  f"{C.median(samples['python']):.2f} s",
                  samples, peak, "cli")]


def repro_rows(repeat: int, tiny: bool) -> list[C.Row]:
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-repro-") as td:
        repo = repo_copy(Path(td) / "repo", TINY if tiny else None)
        synth = run([str(BIN / "melodance"), "data", "synth"], repo)
        full = run([str(BIN / "dvc"), "repro"], repo)
        what = "tiny settings" if tiny else "params.yaml: `make demo` without venv set-up"
        rows.append(C.Row(
            f"synth + dvc repro from scratch ({what})", "s", synth.wall_s + full.wall_s,
            None, False, "report" if tiny else "a few minutes", None,
            f"`melodance data synth` {synth.wall_s:.1f} s + `dvc repro` {full.wall_s:.1f} s"
            + ("" if tiny else "; venv set-up (pip) not included"),
            {"ours": [synth.wall_s + full.wall_s]}, max(synth.peak_rss_mb, full.peak_rss_mb),
            "cli"))
        walls, peaks, ran = [], [], []
        for _ in range(repeat):
            r = run([str(BIN / "dvc"), "repro"], repo)
            walls.append(r.wall_s)
            peaks.append(r.peak_rss_mb)
            if "Running stage" in r.stdout:
                ran.append(r.stdout)
        status = run([str(BIN / "dvc"), "status"], repo)
        ours = C.median(walls)
        note = f"{repeat} runs, spread {C.spread(walls):.0%}; `dvc status` {status.wall_s:.1f} s"
        if ran:
            note += "; A STAGE RAN: the pipeline is not reproducible as is"
        rows.append(C.Row("dvc repro, nothing changed", "s", ours, None, False, "< 5 s",
                          ours < 5.0 and not ran, note, {"ours": walls}, max(peaks), "cli"))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    C.add_common_args(ap)
    ap.add_argument("--tiny", action="store_true",
                    help="full repro with small settings instead of the repository's params.yaml")
    args = ap.parse_args()
    repeat = args.repeat or (3 if args.quick else 7)
    rows = help_rows(repeat)
    rows += repro_rows(max(2, repeat // 2), args.tiny or args.quick)
    return C.finish(rows, args.json)


if __name__ == "__main__":
    sys.exit(main())
