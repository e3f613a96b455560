"""The validation gate on real data, the synthetic corpus and faulty copies of real sequences.

The faulty copies are built in a temporary folder from real sequences and
validated together in one run (module fixture), then each is checked for the
check it must fail.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from melodance.cli import main
from melodance.data.layout import LayoutError
from melodance.validate.config import ValidateConfig
from melodance.validate.stage import ValidationFailed, run_validation

BASE = "DANCE_W_22"  # a short real Waltz (1022 frames, span 0-1036, 46 s of audio)
FPS = 25.0


# ---------------------------------------------------------------------------
# Building faulty copies


def copy_sequence(src: Path, dst: Path) -> Path:
    """Copy a (read-only) real sequence into a writable folder."""
    dst.mkdir(parents=True)
    for f in src.iterdir():
        shutil.copyfile(f, dst / f.name)
    return dst


def load(seq: Path) -> tuple[dict, np.ndarray, np.ndarray]:
    cfg = json.loads((seq / "config.json").read_text())
    sk = json.loads((seq / "skeletons.json").read_text())
    return cfg, np.asarray(sk["skeletons"], float), np.asarray(sk["center"], float)


def save(seq: Path, cfg: dict | None = None, joints=None, root=None, length=None) -> None:
    if cfg is not None:
        (seq / "config.json").write_text(json.dumps(cfg))
    if joints is not None:
        n = len(joints) if length is None else length
        (seq / "skeletons.json").write_text(json.dumps(
            {"length": n, "center": np.round(root, 4).tolist(),
             "skeletons": np.round(joints, 4).tolist()}))


def resample(x: np.ndarray, n: int) -> np.ndarray:
    """Linear resampling of [frames, ...] to n frames (a wrong frame rate)."""
    flat = x.reshape(len(x), -1)
    src = np.linspace(0, len(x) - 1, n)
    out = np.stack([np.interp(src, np.arange(len(x)), flat[:, i]) for i in range(flat.shape[1])],
                   axis=1)
    return out.reshape((n, *x.shape[1:]))


def fault_rate(factor: float):
    """Skeleton at the wrong frame rate; the config is left unchanged."""
    def build(seq: Path):
        _, j, r = load(seq)
        n = round(len(j) * factor)
        save(seq, joints=resample(j, n), root=resample(r, n))
    return build


def fault_span_beyond_audio(seq: Path):
    import soundfile as sf

    cfg, _, _ = load(seq)
    shift = round((sf.info(str(seq / "audio.mp3")).duration + 10) * FPS) - cfg["end_position"]
    save(seq, cfg={"start_position": cfg["start_position"] + shift,
                   "end_position": cfg["end_position"] + shift})


def fault_nan(seq: Path):
    _, j, r = load(seq)
    j[500, 7, 1] = np.nan
    # json.dumps writes NaN as the (non-standard) token NaN, which json.load accepts:
    # that is how such files occur.
    save(seq, joints=j, root=r)


def fault_drop_joint(seq: Path):
    _, j, r = load(seq)
    save(seq, joints=np.delete(j, 22, axis=1), root=r)


def fault_truncate(name: str, fraction: float):
    def build(seq: Path):
        data = (seq / name).read_bytes()
        (seq / name).write_bytes(data[:int(len(data) * fraction)])
    return build


def fault_not_audio(seq: Path):
    (seq / "audio.mp3").write_text("<html><body>404 Not Found</body></html>\n" * 50)


def fault_missing_config(seq: Path):
    (seq / "config.json").unlink()


def fault_empty(seq: Path):
    for f in seq.iterdir():
        f.unlink()


def fault_squeezed_and_fixed(seq: Path):
    """Dance 4x too fast whose config was "fixed" to match its frame count."""
    cfg, j, r = load(seq)
    j, r = j[::4], r[::4]
    start = cfg["start_position"]
    save(seq, cfg={"start_position": start, "end_position": start + round(len(j) / 0.99)},
         joints=j, root=r)


def fault_length(seq: Path):
    _, j, r = load(seq)
    save(seq, joints=j, root=r, length=len(j) + 10)


def fault_end_before_start(seq: Path):
    cfg, _, _ = load(seq)
    save(seq, cfg={"start_position": cfg["end_position"], "end_position": cfg["start_position"]})


def fault_teleport(seq: Path):
    _, j, r = load(seq)
    r[600:] += [150.0, 0.0, 0.0]  # the root jumps 1.5 m in one frame
    save(seq, joints=j, root=r)


def fault_metres(seq: Path):
    _, j, r = load(seq)
    save(seq, joints=j / 100, root=r / 100)


# name -> (fault, check that must fail)
FAULTS = {
    "DANCE_W_9001": (fault_rate(0.25), "frame_ratio"),       # the real W_1 fault
    "DANCE_W_9002": (fault_rate(1.05), "frame_ratio"),       # 5 % too many frames
    "DANCE_W_9003": (fault_rate(0.95), "frame_ratio"),       # 5 % too few frames
    "DANCE_W_9004": (fault_span_beyond_audio, "span_within_audio"),
    "DANCE_W_9005": (fault_nan, "finite_values"),
    "DANCE_W_9006": (fault_drop_joint, "joint_count"),
    "DANCE_W_9007": (fault_truncate("audio.mp3", 0.5), "audio_complete"),
    "DANCE_W_9008": (fault_not_audio, "audio_readable"),
    "DANCE_W_9009": (fault_truncate("skeletons.json", 0.6), "skeletons_readable"),
    "DANCE_W_9010": (fault_missing_config, "files_present"),
    "DANCE_W_9011": (fault_empty, "files_present"),
    "DANCE_W_9012": (fault_squeezed_and_fixed, "mean_joint_speed"),
    "DANCE_W_9013": (fault_length, "length_matches_frames"),
    "DANCE_W_9014": (fault_end_before_start, "start_before_end"),
    "DANCE_W_9015": (fault_teleport, "root_continuity"),
    "DANCE_W_9016": (fault_metres, "body_height"),
}


def snapshot(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            + f"/{p.stat().st_mtime_ns}" for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def faulty(tmp_path_factory, real_data):
    """One quarantine run over a good copy of BASE plus every faulty copy."""
    root = tmp_path_factory.mktemp("faulty") / "data"
    copy_sequence(real_data / BASE, root / BASE)
    for name, (fault, _) in FAULTS.items():
        fault(copy_sequence(real_data / BASE, root / name))
    before = snapshot(root)
    out = root.parent / "out"
    report = run_validation(root, out, ValidateConfig(on_failure="quarantine"), workers=1)
    return root, out, report, before


# ---------------------------------------------------------------------------
# Real data and the synthetic corpus


def test_all_real_sequences_pass(real_data, tmp_path):
    report = run_validation(real_data, tmp_path / "out", ValidateConfig(), docs=False)
    assert report.passed, "\n".join(report.failure_lines())
    assert len(report.accepted) == len(list(real_data.glob("DANCE_*"))) >= 36
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["passed"] and summary["n_failed"] == 0
    # The DVC metrics file holds the headline counts only, so `dvc metrics show` fits a screen.
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics == {"passed": True, "n_sequences": summary["n_sequences"],
                       "n_passed": summary["n_sequences"], "n_failed": 0, "n_quarantined": 0,
                       "n_checks": summary["n_checks"]}
    # Every bound keeps a margin to the real data (the thresholds are not fitted tight).
    r = summary["fact_ranges"]
    cfg = ValidateConfig()
    assert cfg.frame_ratio_min < r["frame_ratio"]["min"] and r["frame_ratio"]["max"] < 1.0
    assert r["mean_joint_speed_cm_s"]["max"] < 0.9 * cfg.mean_joint_speed_max_cm_s
    assert r["max_joint_speed_cm_s"]["max"] < 0.9 * cfg.max_joint_speed_cm_s


def test_synthetic_corpus_passes(synth_corpus, tmp_path):
    report = run_validation(synth_corpus, tmp_path / "out", ValidateConfig(), docs=False)
    assert report.passed, "\n".join(report.failure_lines())
    assert report.accepted == report.names


# ---------------------------------------------------------------------------
# Faulty copies


def test_good_copy_passes(faulty):
    _, _, report, _ = faulty
    assert BASE in report.accepted
    assert BASE not in report.failures


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_fails_with_the_right_check(faulty, name):
    _, out, report, _ = faulty
    expected = FAULTS[name][1]
    assert name in report.quarantined
    assert name not in report.accepted
    failed = {f["check"]: f for f in report.failures[name]}
    assert expected in failed, f"{name} failed {sorted(failed)}, expected {expected}"
    summary = json.loads((out / "summary.json").read_text())
    entry = summary["sequences"][name]
    assert entry["passed"] is False
    assert expected in [f["check"] for f in entry["failed_checks"]]
    for f in entry["failed_checks"]:
        assert f["bound"] and "value" in f


def test_broken_files_get_messages_naming_the_file(faulty):
    _, _, report, _ = faulty
    msg = {n: {f["check"]: f.get("message", "") for f in fs} for n, fs in report.failures.items()}
    assert "audio.mp3" in msg["DANCE_W_9007"]["audio_complete"]
    assert "truncated" in msg["DANCE_W_9007"]["audio_complete"]
    assert "not a decodable audio file" in msg["DANCE_W_9008"]["audio_readable"]
    assert "skeletons.json" in msg["DANCE_W_9009"]["skeletons_readable"]
    assert "malformed JSON" in msg["DANCE_W_9009"]["skeletons_readable"]
    assert "config.json" in msg["DANCE_W_9010"]["files_present"]
    assert "skeletons.json" in msg["DANCE_W_9011"]["files_present"]
    assert "NaN" in msg["DANCE_W_9005"]["finite_values"]
    assert "22" in msg["DANCE_W_9006"]["joint_count"]


def test_squeezed_dance_passes_the_frame_counts_but_not_the_time_scale(faulty):
    _, _, report, _ = faulty
    failed = {f["check"]: f for f in report.failures["DANCE_W_9012"]}
    assert "frame_ratio" not in failed and "span_within_audio" not in failed
    assert failed["mean_joint_speed"]["value"] > 225
    assert "movement_period" in failed


def test_outputs_and_data_untouched(faulty):
    root, out, report, before = faulty
    assert snapshot(root) == before
    accepted = json.loads((out / "accepted.json").read_text())
    assert accepted == {"sequences": [BASE], "quarantined": sorted(FAULTS)}
    assert (out / "data_docs" / "index.html").is_file()
    assert list((out / "data_docs" / "validations").rglob("*.html"))
    facts = (out / "facts.csv").read_text().splitlines()
    assert len(facts) == 1 + 1 + len(FAULTS)
    assert not list(out.glob(".*tmp*"))  # no leftovers of atomic writes


def test_stop_raises_naming_sequences_and_checks(faulty, tmp_path):
    root, _, _, _ = faulty
    small = tmp_path / "data"
    for name in (BASE, "DANCE_W_9001", "DANCE_W_9012"):
        shutil.copytree(root / name, small / name)
    with pytest.raises(ValidationFailed) as e:
        run_validation(small, tmp_path / "out", ValidateConfig(), workers=1, docs=False)
    msg = str(e.value)
    assert "DANCE_W_9001: frame_ratio" in msg
    assert "DANCE_W_9012: mean_joint_speed" in msg
    assert BASE + ":" not in msg
    assert json.loads((tmp_path / "out" / "accepted.json").read_text())["sequences"] == []


def test_quarantine_of_every_sequence_stops(faulty, tmp_path):
    root, _, _, _ = faulty
    shutil.copytree(root / "DANCE_W_9003", tmp_path / "data" / "DANCE_W_9003")
    with pytest.raises(ValidationFailed, match="(?s)DANCE_W_9003: frame_ratio.*nothing to train"):
        run_validation(tmp_path / "data", tmp_path / "out", ValidateConfig(on_failure="quarantine"),
                       workers=1, docs=False)


def test_not_a_dataset_folder(tmp_path):
    with pytest.raises(LayoutError, match="no DANCE_"):
        run_validation(tmp_path, tmp_path / "out", ValidateConfig())


# ---------------------------------------------------------------------------
# Command line and MLflow


def test_cli_fails_with_exit_code_1_and_the_message(faulty, tmp_path, capsys):
    root, _, _, _ = faulty
    small = tmp_path / "data"
    for name in (BASE, "DANCE_W_9001"):
        shutil.copytree(root / name, small / name)
    rc = main(["validate", str(small), "--out", str(tmp_path / "out"), "--no-mlflow",
               "--no-docs", "--params", str(tmp_path / "absent.yaml")])
    err = capsys.readouterr().err
    assert rc == 1
    assert "DANCE_W_9001: frame_ratio" in err and "Traceback" not in err


def test_cli_quarantine_logs_to_mlflow(faulty, tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    root, _, _, _ = faulty
    small = tmp_path / "data"
    for name in (BASE, "DANCE_W_9002"):
        shutil.copytree(root / name, small / name)
    params = tmp_path / "params.yaml"
    params.write_text("validate:\n  on_failure: quarantine\n")
    uri = f"sqlite:///{(tmp_path / 'mlflow.db').as_posix()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MELODANCE_ARTIFACT_ROOT", (tmp_path / "artifacts").as_uri())
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "validate-test")
    rc = main(["validate", str(small), "--out", str(tmp_path / "out"), "--params", str(params),
               "--workers", "1"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "QUARANTINED 1 of 2" in captured.err and "DANCE_W_9002: frame_ratio" in captured.err
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("validate-test")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.tags["melodance.validate.quarantined"] == "DANCE_W_9002"
    assert run.data.metrics["validate.n_quarantined"] == 1
    assert run.data.params["validate.on_failure"] == "quarantine"
    files = {f.path for f in client.list_artifacts(run.info.run_id, "validate")}
    assert {"validate/summary.json", "validate/facts.csv", "validate/data_docs"} <= files

    # The same data under on_failure=stop: exit code 1, and the run still records why.
    rc = main(["validate", str(small), "--out", str(tmp_path / "out2"), "--params", str(params),
               "--workers", "1", "--no-docs", "--on-failure", "stop"])
    assert rc == 1
    assert "DANCE_W_9002: frame_ratio" in capsys.readouterr().err
    failed = client.search_runs([exp.experiment_id], "attributes.status = 'FAILED'")
    assert len(failed) == 1
    assert failed[0].data.tags["melodance.validate.failed"] == "DANCE_W_9002"
    assert failed[0].data.metrics["validate.n_failed"] == 1
