"""The README's command blocks, run as written, in a temporary git + DVC copy of the project.

One pipeline run (``make demo`` with tiny settings) is shared by the tests of this module;
each README block after it runs on that copy, in README order: the results block, the DVC
experiments, the MLflow project run, serving a real song, dancing. Every bash block of the
README is either run here or listed in ``NOT_RUN`` with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from servers import free_port, http_ok, stop, wait_until
from test_pipeline import BIN, REPO, make_repo_copy, run

pytestmark = pytest.mark.slow

# Small enough for 2 cores; the same stages and commands as the real demo.
TINY = {
    # The seed's LSTM family at 3 epochs keeps the README's blocks quick; the default family's
    # demo (vqgpt) is `make demo` itself, in tests/test_pipeline.py's demo test.
    "model__family": "lstm", "train__epochs": 3, "model__mlp_hidden": 16,
    "tune__n_trials": 2, "tune__epochs": 1,
    "tune__space": {"train.lr": {"low": 0.001, "high": 0.004, "log": True},
                    "model.hidden_size": {"choices": [16, 24]},
                    "model.layers": {"choices": [1]},
                    "model.code_size": {"choices": [8]},
                    "model.dropout": {"low": 0.0, "high": 0.1},
                    "features.window": {"choices": [60]},
                    "train.recon_weight": {"low": 0.1, "high": 1.0},
                    "train.batch_size": {"choices": [16]}},
    "render__max_seconds": 4, "render__width": 160, "render__height": 120,
    "render__allow_still": True,  # a 3-epoch model stands still; the still rule: test_realism.py
    "evaluate__validity_n_perm": 200,
}

# README blocks (keyed by their first command) that this module does not run, and why.
NOT_RUN = {
    "melodance tune --workers 2": "the same tune stage the demo ran; worker processes: tests/test_tune.py",
    "curl -s http://127.0.0.1:5001/invocations -H 'Content-Type: application/json' \\":
        "schematic JSON ('...16 values'); feature requests: tests/test_serve.py",
    "melodance ui": "a long-running page server: tests/test_ui.py",
    "melodance data import ../shared/data/music-to-dance": "replaces the data and trains the "
        "ablations for 20 min: tests/test_import.py, tests/test_ablate.py",
    "pip install -e \".[team]\"": "needs PostgreSQL, S3 and a server: tests/test_team.py",
    "make test": "this is the test suite",
}


def readme_blocks() -> list[list[str]]:
    """The README's bash blocks as lists of lines."""
    text = (REPO / "README.md").read_text()
    return [b.strip("\n").splitlines() for b in re.findall(r"```bash\n(.*?)```", text, re.S)]


def readme_line(prefix: str) -> str:
    """The README command line that starts with ``prefix`` (comment and padding removed)."""
    hits = [line for block in readme_blocks() for line in block if line.startswith(prefix)]
    assert len(hits) == 1, f"README: {len(hits)} lines start with {prefix!r}"
    return strip_comment(hits[0])


def strip_comment(line: str) -> str:
    # A comment starts at "  #" outside quotes in these blocks.
    m = re.search(r"\s{2,}#", line)
    return line[:m.start()].rstrip() if m else line.rstrip()


def changed(repo: Path) -> list[str]:
    """Paths git status reports (modified, staged or untracked)."""
    lines = run(["git", "status", "--porcelain", "--untracked-files=all"], repo).stdout.splitlines()
    return [line[3:] for line in lines]


def sh(line: str, cwd: Path, check: bool = True, timeout: int = 600) -> subprocess.CompletedProcess:
    return run(["bash", "-c", line], cwd, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """``make demo`` in a fresh git + DVC copy (the venv already set up: make skips setup)."""
    repo = make_repo_copy(tmp_path_factory.mktemp("readme") / "repo", **TINY)
    shutil.copy2(REPO / "Makefile", repo / "Makefile")
    shutil.copy2(REPO / "README.md", repo / "README.md")
    run(["git", "add", "-A"], repo)
    run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "tiny demo"], repo)
    start = time.monotonic()
    # -o: the venv target counts as up to date (this interpreter's venv is on PATH).
    out = sh(f"{readme_line('make demo')} -o .venv/.installed", repo)
    (repo.parent / "make-demo.log").write_text(out.stdout + "\n--- stderr ---\n" + out.stderr)
    took = time.monotonic() - start
    # A 3-epoch model stands still, so the realism gate keeps it out of the registry. The
    # blocks below need a champion: register it anyway (register.always, in a params file
    # outside the repository, so git status stays as make demo left it) and promote it.
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["register"]["always"] = True
    (repo.parent / "params-always.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    said = sh(f"melodance register --params {repo.parent / 'params-always.yaml'} "
              f"--out {repo.parent / 'register-always'}", repo).stdout
    version = re.search(r"melodance v(\d+) registered", said)
    assert version, said
    sh(f"melodance promote {version.group(1)}", repo)
    return repo, out, took


def test_every_readme_block_is_run_or_explained():
    firsts = {block[0] for block in readme_blocks()}
    run_here = {"make demo    # set up .venv, generate the embedded corpus, run the whole pipeline (offline)",
                "source .venv/bin/activate", "dvc exp run -S model.family=lstm -S model.variant=naive_lstm",
                "mlflow run . -e train --env-manager local --experiment-name melodance",
                "melodance register",
                "python -c 'import base64, json, sys; print(json.dumps({\"inputs\": {\"audio_base64\": "
                "base64.b64encode(open(sys.argv[1], \"rb\").read()).decode(), \"start_s\": 6.24, "
                "\"duration_s\": 30}}))' song.mp3 > request.json",
                "melodance dance song.mp3 -o dance.mp4                  # the registry's champion "
                "dances to the whole song",
                "make test    # all tests (real-data tests skip when ../shared is absent,"}
    unexplained = {f for f in firsts - run_here
                   if not any(strip_comment(f).startswith(k.rstrip(" \\")) for k in NOT_RUN)}
    assert not unexplained, f"README blocks neither run by tests/test_readme.py nor explained: {unexplained}"


def test_demo_leaves_only_dvc_lock_changed(demo):
    repo, out, seconds = demo
    print(f"make demo (tiny settings): {seconds:.0f} s")
    for stage in ("validate", "features", "tune", "train", "evaluate", "render", "register"):
        assert f"Running stage '{stage}'" in out.stdout
    assert "Data and pipelines are up to date." in out.stdout   # the demo's own `dvc status`
    # What README "Quick start" says: dvc.lock changes (commit it), nothing else shows up.
    assert changed(repo) == ["dvc.lock"]
    assert "dvc.lock" in (REPO / "README.md").read_text().split("## The pipeline")[0]


def test_results_block(demo):
    repo, _, _ = demo
    block = next(b for b in readme_blocks() if b[0] == "source .venv/bin/activate")
    metrics = sh(readme_line("dvc metrics show"), repo).stdout
    assert "outputs/train/metrics.json" in metrics and "best_val_loss" in metrics
    sh(readme_line("dvc plots show"), repo)
    page = (repo / "dvc_plots" / "index.html").read_text()
    # Offline: no script or stylesheet from the network, and every image it shows is there.
    assert not re.search(r"""<(script|link)[^>]+(src|href)=["']https?:""", page), "loads from the network"
    images = re.findall(r"""<img[^>]+src=["']([^"']+)""", page)
    assert len(images) == 3, images   # loss curves, tuning history, parameter importances
    for src in images:
        assert src.startswith("data:image/png") or (repo / "dvc_plots" / src).is_file(), src
    assert changed(repo) == ["dvc.lock"], "dvc_plots/ is not ignored"
    # mlflow ui, as written (on a free port): the runs view the README links, of experiment
    # `melodance`, which opens on the training runs rather than the GenAI view.
    ui_line = readme_line("mlflow ui --backend-store-uri")
    url = re.search(r"http://127\.0\.0\.1:5000(/\S*)", next(x for x in block if x.startswith("mlflow ui")))
    port = free_port()
    log = repo.parent / "mlflow-ui.log"
    with open(log, "w") as f:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
        env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
        proc = subprocess.Popen(["bash", "-c", f"exec {ui_line} --port {port}"], cwd=repo, stdout=f,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http_ok(base + "/health"), "mlflow ui", 120, log)
        exp_id = url.group(1).split("/experiments/")[1].split("/")[0]
        with urllib.request.urlopen(f"{base}/api/2.0/mlflow/experiments/get?experiment_id={exp_id}") as r:
            exp = json.loads(r.read())["experiment"]
        assert exp["name"] == "melodance"
        assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in exp["tags"]
        assert http_ok(base + "/")
    finally:
        stop(proc)


def _mlflow(repo: Path):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    return client, client.get_experiment_by_name("melodance")


def test_exp_block_explicit_values_win_over_the_study(demo):
    """`dvc exp run -S train.lr=... -S model.hidden_size=...`: the trained model and the
    MLflow run have those values, not the tune stage's, and say which came from the study."""
    from melodance.models.bundle import DanceBundle

    repo, _, _ = demo
    # README "Quick start": commit the demo's dvc.lock, the baseline experiments compare with.
    commit = re.search(r"\(`(git commit -m [^`]+ dvc\.lock)`\)", (REPO / "README.md").read_text())
    sh(f"git -c user.email=t@t -c user.name=t {commit.group(1).removeprefix('git ')}", repo)
    assert changed(repo) == []
    block = next(b for b in readme_blocks() if b[0].startswith("dvc exp run -S model.family=lstm"))
    for line in block:
        sh(strip_comment(line), repo)
    set_line = next(line for line in block if "train.lr=" in line)
    lr = float(re.search(r"train\.lr=([\d.e-]+)", set_line).group(1))
    hidden = int(re.search(r"model\.hidden_size=(\d+)", set_line).group(1))

    # The study held the values set with -S fixed and tuned the auto keys for them.
    tuned = json.loads((repo / "outputs/tune/best_params.json").read_text())["params"]
    assert "model.hidden_size" not in tuned and "train.lr" not in tuned and "model.layers" in tuned
    tune_run = _mlflow(repo)[0].search_runs(
        [_mlflow(repo)[1].experiment_id], "tags.`melodance.stage` = 'tune'", order_by=["start_time DESC"])[0]
    assert tune_run.data.params["model.hidden_size"] == str(hidden)
    bundle = DanceBundle.load(repo / "outputs/train/model.pt")
    assert bundle.model.cfg.hidden_size == hidden
    assert bundle.extra["train_config"]["lr"] == pytest.approx(lr)
    assert "model.hidden_size" not in bundle.extra["from_study"]
    assert bundle.extra["from_study"]["model.layers"] == tuned["model.layers"]   # still auto

    client, exp = _mlflow(repo)
    run_id = json.loads((repo / "outputs/train/run.json").read_text())["run_id"]
    r = client.get_run(run_id)
    assert r.data.params["model.hidden_size"] == str(hidden)
    assert float(r.data.params["train.lr"]) == pytest.approx(lr)
    assert "model.hidden_size" not in json.loads(r.data.tags["melodance.from_study"])
    assert r.data.tags["melodance.dvc_exp"] in r.info.run_name          # named after the experiment
    assert r.data.tags["mlflow.source.git.commit"] == r.data.tags["melodance.git_commit"]
    # One meaning of val_loss: the MLflow curve per epoch; best_val_loss, the kept epoch's, is
    # the same number in DVC's metrics.json, summary.json and the MLflow run.
    headline = json.loads((repo / "outputs/train/metrics.json").read_text())
    summary = json.loads((repo / "outputs/train/summary.json").read_text())
    assert set(headline) == {"best_val_loss"} and headline.items() <= summary.items()
    assert r.data.metrics["best_val_loss"] == pytest.approx(headline["best_val_loss"])
    curve = client.get_metric_history(run_id, "val_loss")
    assert [m.step for m in curve] == list(range(1, summary["epochs_run"] + 1))
    assert min(m.value for m in curve) == pytest.approx(summary["best_val_loss"], abs=1e-6)
    # Its evaluation and videos are nested under it.
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'")
    assert {c.data.tags["melodance.stage"] for c in children} == {"evaluate", "render"}
    assert all(r.data.tags["melodance.dvc_exp"] in c.info.run_name for c in children)

    # dvc exp show agrees with the bundle on the values set.
    show = json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)
    exps = [e for commit in show for e in (commit.get("experiments") or [])]
    assert exps, show
    assert r.data.tags["melodance.dvc_exp"] in json.dumps(show)


def test_exp_show_only_changed_fits_120_columns(demo):
    """The README's `dvc exp show --only-changed` of the two experiments (run by the test above,
    or here when run alone) fits 120 columns and shows the values it is for."""
    repo, _, _ = demo
    if not any(c.get("experiments") for c in json.loads(run(["dvc", "exp", "show", "--json"], repo).stdout)):
        test_exp_block_explicit_values_win_over_the_study(demo)
    env_cols = {"COLUMNS": "120"}
    out = subprocess.run(["bash", "-c", readme_line("dvc exp show")], cwd=repo, capture_output=True,
                         text=True, env={**os.environ, **env_cols, "PATH": f"{BIN}:{os.environ['PATH']}"})
    assert out.returncode == 0, out.stderr
    widest = max(len(line) for line in out.stdout.splitlines())
    assert widest <= 120, f"{widest} columns:\n{out.stdout}"
    assert "…" not in out.stdout.replace("─", ""), out.stdout
    header = out.stdout.splitlines()[1].split()
    for column in ("model.variant", "model.hidden_size", "train.lr", "best_val_loss", "kid_k", "energy"):
        assert column in header, out.stdout


def test_mlflow_run_block(demo):
    repo, _, _ = demo
    client, exp = _mlflow(repo)
    before = {r.info.run_id for r in client.search_runs([exp.experiment_id])}
    out = sh(readme_line("mlflow run . -e train"), repo)
    new = [r for r in client.search_runs([exp.experiment_id]) if r.info.run_id not in before]
    assert len(new) == 1, (out.stdout, out.stderr)
    (r,) = new
    assert r.info.status == "FINISHED" and r.data.tags["melodance.stage"] == "train"
    assert r.data.tags.get("mlflow.project.entryPoint") == "train"   # the project run is the stage run
    assert (repo / "outputs/mlproject/train/model.pt").is_file()
    assert "up to date" in run(["dvc", "status"], repo).stdout   # DVC's outputs untouched
    default = client.get_experiment_by_name("Default")
    assert default is None or not client.search_runs([default.experiment_id])   # no stray FAILED run


@pytest.fixture(scope="module")
def song(demo, real_data) -> Path:
    """A real song from the dataset, as README's `song.mp3`."""
    repo, _, _ = demo
    shutil.copy2(real_data / "DANCE_C_2" / "audio.mp3", repo / "song.mp3")
    return repo / "song.mp3"


def test_serve_block_with_a_real_song(demo, song):
    repo, _, _ = demo
    block = next(b for b in readme_blocks() if b[0] == "melodance register")
    client, _ = _mlflow(repo)
    before = client.search_model_versions("name = 'melodance'")
    said = sh(strip_comment(block[0]), repo).stdout
    # The model the pipeline already registered is not better than itself: with
    # register.always false no second version of it appears.
    assert "not registered" in said and "register.always" in said, said
    versions = client.search_model_versions("name = 'melodance'")
    assert len(versions) == len(before)
    # Three pipeline runs (demo, two experiments) gave at most three versions, each with its
    # variant, description and a signature of the request; the page's picker shows them.
    assert 1 <= len(versions) <= 3
    assert all(v.tags["variant"] in ("lstm_autoencoder", "naive_lstm") and v.description for v in versions)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{repo / 'mlflow.db'}"
    code = ("import json, mlflow\n"
            "from melodance.ui.app import UiApp\n"
            "app = UiApp(model=None, data_dir=None, workdir='jobs-tmp')\n"
            "sig = mlflow.models.get_model_info('models:/melodance@champion').signature\n"
            "print(json.dumps([app.models()['choices'], sig.inputs.input_names()]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=repo.parent, env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    choices, inputs = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"audio_base64", "start_s", "duration_s", "music", "temporal"} <= set(inputs)
    picked = [c for c in choices if c["id"].startswith("v")]
    assert picked and all(" · " in c["label"] and c["description"] for c in picked), picked
    port = free_port()
    serve_line = strip_comment(block[1]).replace("5001", str(port))
    log = repo / "serve.log"
    with open(log, "w") as f:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
        env["PATH"] = f"{BIN}{os.pathsep}{env['PATH']}"
        proc = subprocess.Popen(["bash", "-c", f"exec {serve_line}"], cwd=repo, stdout=f,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_until(lambda: http_ok(f"http://127.0.0.1:{port}/ping"), "melodance serve", 180, log)
        request = next(b for b in readme_blocks() if b[0].startswith("python -c 'import base64"))
        sh(request[0], repo)
        assert (repo / "request.json").stat().st_size > song.stat().st_size   # the whole song, base64
        answer = sh(request[1].replace("5001", str(port)), repo).stdout
    finally:
        stop(proc)
    pred = json.loads(answer)["predictions"]
    assert pred["fps"] == 25.0 and pred["frames"] == 30 * 25
    assert len(pred["joints"]) == pred["frames"] and len(pred["joints"][0]) == 23


def test_dance_block(demo, song):
    import cv2

    repo, _, _ = demo
    block = next(b for b in readme_blocks() if b[0].startswith("melodance dance song.mp3 -o"))
    lines, pending = [], ""
    for line in block:   # join continued lines
        line = strip_comment(line)
        if line.endswith("\\"):
            pending += line[:-1]
            continue
        lines.append(pending + line)
        pending = ""
    for line in lines:
        # The tiny champion stands still: the still rule (tests/test_realism.py) would refuse it.
        sh(line + (" --allow-still" if line.startswith("melodance dance") else ""), repo)
    for name in ("dance.mp4", "compare.mp4"):
        cap = cv2.VideoCapture(str(repo / name))
        assert cap.get(cv2.CAP_PROP_FRAME_COUNT) > 25 and cap.get(cv2.CAP_PROP_FPS) == 25.0, name
        cap.release()
    motion = json.loads((repo / "dance.json").read_text())
    assert len(motion["skeletons"]) == 20 * 25
    assert (repo / "dance.bvh").read_text().startswith("HIERARCHY")
    assert yaml.safe_load((repo / "params.yaml").read_text())   # still a readable params file
