"""Run the whole benchmark suite and print one table (ours, baseline, ratio, target, met?).

Each benchmark runs in its own fresh process (its peak RSS is its own), one
after the other, never two at once. Ours and its baseline are always
measured in the same process, in turns where the benchmark allows; see each
script's docstring for what exactly is compared.

    python benchmarks/run_all.py                 # the full suite (6-9 min on 2 cores, more under load)
    python benchmarks/run_all.py --quick         # a smoke test (about 4 min)
    python benchmarks/run_all.py --only train serve --json results.json --markdown table.md

Writes all rows, the machine and the load averages as JSON (default
``outputs/bench/results.json``, ignored by git). Exit status 1 when a
benchmark crashed; an unmet target is reported, not an error.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))

import common as C  # noqa: E402

PY = sys.executable
ORDER = ("cli", "features", "validate", "train", "serve", "growth", "render", "generate")


def feature_rows(path: Path, peak: float) -> list[C.Row]:
    """bench_features.py's figures: 2 workers against the baseline, and per core."""
    d = json.loads(path.read_text())
    by = {r["name"]: r for r in d["rows"]}
    base = by.get("baseline (librosa)")
    one = by["melodance, 1 process"]
    pool = next(r for n, r in by.items() if n.startswith("melodance, ") and "workers" in n)
    floor = by.get("floor (decode+resample)")
    note = (f"{d['audio_s']:.0f} s of dance-span audio; best of N runs, not alternated "
            f"(bench_features.py)")
    if floor:
        note += f"; decode+resample floor {floor['x_real_time_per_core']:.0f}x per core"
    rows = [
        C.Row(f"feature extraction, real dance spans, {pool['name'].split(', ')[1]} (wall)",
              "x real time", pool["x_real_time"], base and base["x_real_time"], True,
              ">= 3x baseline", None, note, {}, peak, "features"),
        C.Row("feature extraction, real dance spans, per core (1 process, CPU time)",
              "x real time", one["x_real_time_per_core"],
              base and base["x_real_time_per_core"], True, ">= 400x real time per core",
              one["x_real_time_per_core"] >= 400, note, {}, peak, "features"),
    ]
    if base:
        rows[0].met = rows[0].ratio >= 3.0
    return rows


def validate_rows(stdout: str, peak: float) -> list[C.Row]:
    """bench_validate.py prints one JSON line per worker count."""
    rows = []
    for line in stdout.splitlines():
        if not line.startswith("{"):
            continue
        d = json.loads(line)
        w = d["workers"]
        rows.append(C.Row(
            f"melodance validate, {d['n_sequences']} real sequences, {w} worker"
            f"{'s' * (w > 1)}, fresh process", "s", d["cold_process_s"], None, False, "< 60 s",
            d["cold_process_s"] < 60.0,
            f"measuring {d['measure_s']:.1f} s + GE suite and Data Docs "
            f"{d['suite_and_docs_s']:.1f} s (in-process)", {"ours": [d["cold_process_s"]]},
            peak, "validate"))
    if not rows:
        raise RuntimeError(f"bench_validate.py printed no figures:\n{stdout[-2000:]}")
    return rows


def render_rows(path: Path, peak: float) -> list[C.Row]:
    d = json.loads(path.read_text())
    fps, n = d["fps"], d["frames"]
    ours = fps["melodance"]
    base = fps.get("baseline (medium)")
    note = f"{n} frames at 640x480, H.264 + AAC, pinned to one core (bench_render.py, one run each)"
    if "baseline (veryfast)" in fps:
        note += (f"; baseline with our x264 preset (veryfast) {fps['baseline (veryfast)']:.1f} "
                 f"fps = {ours / fps['baseline (veryfast)']:.1f}x")
    row = C.Row(f"rendering {d['seconds']:g} s of dance to MP4, 1 core", "frames/s", ours, base,
                True, ">= 3x baseline and > 25 fps", None, note, {"fps": fps}, peak, "render")
    if base:
        row.met = row.ratio >= 3.0 and ours > 25.0
    else:
        row.met = ours > 25.0
    dance = C.Row(f"melodance dance, {d['seconds']:g} s song, end to end (fresh process)", "s",
                  d["dance_end_to_end_s"], None, False, "< 15 s (60 s song)",
                  d["dance_end_to_end_s"] < 15.0 if d["seconds"] >= 60 else None,
                  "decode, features, generation, render, output check; peak RSS not measured "
                  "(a grandchild process)", {}, None, "render")
    return [row, dance]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: fewer, shorter runs")
    ap.add_argument("--only", nargs="+", choices=ORDER, default=list(ORDER))
    ap.add_argument("--json", default=str(REPO / "outputs" / "bench" / "results.json"))
    ap.add_argument("--markdown", default=None, help="also write the table as Markdown here")
    ap.add_argument("--data", default=str(C.SHARED_DATA))
    ap.add_argument("--tiny-repro", action="store_true",
                    help="before the no-op `dvc repro`, run the pipeline with small settings "
                         "instead of the repository's params.yaml (what the README's `make demo` runs)")
    ap.add_argument("--model", default=None,
                    help="trained bundle for `melodance dance` (default: outputs/train/model.pt "
                         "when present, else the serving benchmark's model)")
    args = ap.parse_args()

    q = ["--quick"] if args.quick else []
    started = dt.datetime.now().astimezone()
    t_all = time.perf_counter()
    print(f"melodance benchmark suite, {started:%Y-%m-%d %H:%M %Z}; {C.machine()}", flush=True)
    rows: list[C.Row] = []
    runs: dict[str, dict] = {}
    failed = []
    with tempfile.TemporaryDirectory(prefix="bench-all-") as td:
        work = Path(td)
        model = args.model or (str(REPO / "outputs" / "train" / "model.pt")
                               if (REPO / "outputs" / "train" / "model.pt").is_file()
                               else str(work / "serve_model.pt"))
        cmds = {
            "cli": [PY, str(HERE / "bench_cli.py"), *q, "--json", str(work / "cli.json"),
                    *(["--tiny"] if args.tiny_repro else [])],
            "features": [PY, str(HERE / "bench_features.py"), "--data", args.data, "--json",
                         str(work / "features.json"),
                         *(["--limit", "6"] if args.quick else ["--repeat", "2"])],
            "validate": [PY, str(HERE / "bench_validate.py"), args.data, "--workers",
                         "2"],  # the target is for 2 cores; 1 worker: --workers 1
            "train": [PY, str(HERE / "bench_train.py"), *q, "--workdir", str(work), "--data",
                      args.data, "--json", str(work / "train.json")],
            "serve": [PY, str(HERE / "bench_serve.py"), *q, "--workdir", str(work), "--data",
                      args.data, "--json", str(work / "serve.json"), "--keep-model",
                      str(work / "serve_model.pt")],
            "growth": [PY, str(HERE / "bench_growth.py"), *q, "--data", args.data, "--json",
                       str(work / "growth.json")],
            "generate": [PY, str(HERE / "bench_generate.py"), *q, "--model", model, "--json",
                         str(work / "generate.json")],
            "render": [PY, str(HERE / "bench_render.py"), "--data", args.data, "--model", model,
                       "--json", str(work / "render.json"),
                       *(["--seconds", "8"] if args.quick else [])],
        }
        for name in ORDER:
            if name not in args.only:
                continue
            load0 = os.getloadavg()[0]
            print(f"\n=== {name}: {' '.join(Path(c).name if '/' in c else c for c in cmds[name])}"
                  f" (load {load0:.2f})", flush=True)
            r = C.run_process(cmds[name], cwd=REPO, env=dict(os.environ, MPLBACKEND="Agg"))
            load1 = os.getloadavg()[0]
            runs[name] = {"wall_s": r.wall_s, "peak_rss_mb": r.peak_rss_mb, "rc": r.returncode,
                          "load_before": load0, "load_after": load1}
            print(r.stdout[-6000:], end="", flush=True)
            logs = Path(args.json).parent / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            (logs / f"{name}.out").write_text(r.stdout)
            (logs / f"{name}.err").write_text(r.stderr)
            try:
                if r.returncode != 0:
                    raise RuntimeError(f"{C.describe_exit(r.returncode)}: {C.last_line(r.stderr)} "
                                       f"(whole log: {logs / (name + '.err')})")
                json_path = work / f"{name}.json"
                if name == "features":
                    got = feature_rows(json_path, r.peak_rss_mb)
                elif name == "validate":
                    got = validate_rows(r.stdout, r.peak_rss_mb)
                elif name == "render":
                    got = render_rows(json_path, r.peak_rss_mb)
                else:
                    got = C.rows_from_json(json_path)
                for row in got:
                    row.group = row.group or name
                rows += got
            except Exception as e:  # noqa: BLE001 - one broken benchmark must not hide the rest
                failed.append(name)
                print(f"!!! {name} failed: {e}", file=sys.stderr, flush=True)
                rows.append(C.Row(f"{name}: benchmark FAILED", "-", None, target="runs",
                                  met=False, note=str(e).splitlines()[0][:200], group=name))
            print(f"--- {name}: {r.wall_s:.0f} s, peak RSS {r.peak_rss_mb:.0f} MiB, "
                  f"load {load0:.2f} -> {load1:.2f}", flush=True)

    total = time.perf_counter() - t_all
    loads = [v for run in runs.values() for v in (run["load_before"], run["load_after"])]
    print(f"\n=== melodance benchmark suite, {started:%Y-%m-%d %H:%M %Z}, {total / 60:.1f} min, "
          f"{os.cpu_count()} cpus, 1-min load average {min(loads, default=0):.1f} to "
          f"{max(loads, default=0):.1f}")
    print("ratio = how many times better ours is than the baseline measured in the same run")
    C.print_rows(rows)
    unmet = [r for r in rows if r.met is False]
    for r in unmet:
        print(f"  not met: {r.workload}: {r.note}")
    extra = {"started": started.isoformat(), "total_s": total, "quick": args.quick,
             "command": " ".join([Path(sys.executable).name, *sys.argv]), "benchmarks": runs}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    C.write_rows(args.json, rows, **extra)
    print(f"rows written to {args.json}")
    if args.markdown:
        Path(args.markdown).write_text(C.markdown_rows(rows) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
