"""Layer rules: import-linter's contracts in pyproject.toml hold, and would catch a break."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"   # import-linter, in the dev extra


def lint(src: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run([str(LINT), str(ROOT / "pyproject.toml"), "--no-cache"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept():
    out = lint(ROOT / "src")
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "0 broken" in out.stdout


def test_import_contracts_catch_a_cli_import_and_a_circle(tmp_path):
    """The contracts are not vacuous: a library module importing the CLI, and the validity
    tool's music module importing a metric back (the old circle), each break one."""
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src" / "melodance", src / "melodance",
                    ignore=shutil.ignore_patterns("__pycache__"))
    layout = src / "melodance" / "data" / "layout.py"
    layout.write_text(layout.read_text() + "\n\ndef _oops():\n    from melodance.cli import main\n"
                      "    return main\n")
    music = src / "melodance" / "evaluate" / "validity" / "music.py"
    music.write_text(music.read_text() + "\n\ndef _circle():\n"
                     "    from melodance.evaluate.validity.alignment import ANALYTIC_METRICS\n"
                     "    return ANALYTIC_METRICS\n")
    out = lint(src)
    assert out.returncode != 0
    assert "Nothing imports the command line (melodance.cli) BROKEN" in out.stdout
    assert "melodance.data.layout -> melodance.cli" in out.stdout
    assert "The metric-validity tool is layered, no circle BROKEN" in out.stdout


def test_stage_out_defaults_are_the_folders_dvc_yaml_names():
    """Each stage command's --out default (melodance.options.OUTPUTS) is the folder its
    dvc.yaml command writes, so running a stage by hand writes where DVC looks."""
    import argparse
    import shlex

    import yaml

    from melodance.cli import build_parser
    from melodance.options import OUTPUTS

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    (commands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    checked = []
    for name, stage in stages.items():
        argv = shlex.split(stage["cmd"])
        if "--out" not in argv or name == "train_seed":   # train_seed: a second training
            continue
        written = argv[argv.index("--out") + 1]
        assert OUTPUTS[name] == written, (name, written)
        default = commands.choices[argv[1]].get_default("out")
        # render: --out depends on the mode (a video file with --compare), OUTPUTS["render"] otherwise
        assert default in (written, None if name == "render" else written), (name, default)
        checked.append(name)
    assert len(checked) >= 6, checked
