"""The command line: fast help, every stage command present, clear errors."""

from __future__ import annotations

import subprocess
import sys
import time

from melodance.cli import main


def test_help_is_fast_and_lists_commands():
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "melodance.cli", "--help"], capture_output=True,
                         text=True, check=True)
    elapsed = time.perf_counter() - t0
    for cmd in ("data", "validate", "features", "train", "evaluate"):
        assert cmd in out.stdout
    # Generous bound for a noisy 2-core machine; benchmarks/ measures the real figure.
    assert elapsed < 5.0
    # No heavy library is imported to answer --help.
    probe = ("import sys, melodance.cli as c; c.build_parser(); "
             "print(sorted(m for m in ('torch','mlflow','librosa','great_expectations','dvc')"
             " if m in sys.modules))")
    mods = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert mods.stdout.strip() == "[]"


def test_user_error_is_one_line_without_traceback(tmp_path, capsys):
    rc = main(["evaluate", "--features", str(tmp_path / "nope"), "--model",
               str(tmp_path / "none.pt"), "--no-mlflow"])
    err = capsys.readouterr().err
    assert rc == 1
    assert "Traceback" not in err
    assert "nope" in err or "none.pt" in err
