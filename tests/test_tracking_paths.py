"""A copied or moved checkout keeps its MLflow runs and artifacts to itself (real MLflow, SQLite)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

LOG_RUN = textwrap.dedent("""
    import sys
    from pathlib import Path
    from melodance import tracking
    Path("note.txt").write_text(sys.argv[1])
    with tracking.stage_run("check", run_name="check") as run:
        tracking.log_artifact("note.txt")
    print(run.info.run_id)
""")

READ_RUN = textwrap.dedent("""
    import sys
    import mlflow
    from melodance import tracking
    tracking.setup()
    r = mlflow.get_run(sys.argv[1])
    print(r.info.artifact_uri)
    print(open(mlflow.artifacts.download_artifacts(run_id=sys.argv[1], artifact_path="note.txt")).read())
""")


def _py(code: str, cwd: Path, *args: str) -> list[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_", "MELODANCE_"))}
    env["PYTHONPATH"] = str(SRC)
    out = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip().splitlines()


def test_copied_checkout_writes_and_reads_its_own_artifacts(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    (a / "params.yaml").write_text("{}\n")
    (old_id,) = _py(LOG_RUN, a, "from a")
    assert (a / "mlartifacts").is_dir()

    b = tmp_path / "b"
    shutil.copytree(a, b)
    shutil.rmtree(a)   # moved, not copied: nothing may point back to a/

    (new_id,) = _py(LOG_RUN, b, "from b")
    assert not a.exists(), "the copy wrote into the original checkout"
    for run_id, text in ((old_id, "from a"), (new_id, "from b")):
        uri, content = _py(READ_RUN, b, run_id)
        assert uri.startswith((b / "mlartifacts").as_uri()), uri
        assert content == text
