"""Shared helpers of the benchmark suite: alternating timings, robust summaries, peak memory.

The machine these benchmarks run on is usually shared (other people's tests,
2 cores), so every comparison is made *in the same run*: our code and its
baseline are timed in turns (ours, baseline, baseline, ours, ...), several
times, and the table reports medians and the ratio of medians. A slow spell
then hits both sides instead of one.

Peak memory is the resident set's high-water mark (Linux ``VmHWM``). For a
workload that runs in this process the mark is reset first (writing ``5`` to
``/proc/self/clear_refs``), so the figure is the peak *during* that workload,
including what it allocates outside Python (torch, numpy); for a subprocess it
is the child's own ``ru_maxrss``.

Each benchmark script writes a JSON file of *rows*, one per workload::

    {"workload": ..., "unit": "frames/s", "higher_is_better": true,
     "ours": median, "baseline": median or null, "ratio": ours/baseline or null,
     "target": "text", "met": true/false/null, "note": "...",
     "samples": {"ours": [...], "baseline": [...]}, "peak_rss_mb": ...}

and ``run_all.py`` prints them as one table.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MELODANCE_SHARED", REPO.parent / "shared")) / "data" \
    / "music-to-dance"


# ---------------------------------------------------------------------------
# Summaries


def median(xs: list[float]) -> float:
    return float(statistics.median(xs))


def spread(xs: list[float]) -> float:
    """Relative spread of repeated measurements: (max - min) / median (0 for one sample)."""
    if len(xs) < 2:
        return 0.0
    m = statistics.median(xs)
    return float((max(xs) - min(xs)) / m) if m else 0.0


def percentile(xs: list[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between order statistics."""
    s = sorted(xs)
    if not s:
        raise ValueError("percentile of no samples")
    k = (len(s) - 1) * q / 100.0
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return float(s[lo] + (s[hi] - s[lo]) * (k - lo))


def linear_fit(x: list[float], y: list[float]) -> tuple[float, float, float]:
    """Least-squares line y = a + b x; returns (a, b, R^2)."""
    n = len(x)
    if n < 2:
        raise ValueError("a line needs at least two points")
    mx, my = sum(x) / n, sum(y) / n
    sxx = sum((xi - mx) ** 2 for xi in x)
    sxy = sum((xi - mx) * (yi - my) for xi, yi in zip(x, y, strict=True))
    b = sxy / sxx
    a = my - b * mx
    ss_res = sum((yi - a - b * xi) ** 2 for xi, yi in zip(x, y, strict=True))
    ss_tot = sum((yi - my) ** 2 for yi in y)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return a, b, r2


# ---------------------------------------------------------------------------
# Timing


def alternate(fns: dict[str, Callable[[], object]], repeat: int,
              warmup: bool = True) -> dict[str, list[float]]:
    """Wall seconds of each function, called in turns, ``repeat`` times each.

    The order flips every round (A B, B A, A B, ...), so neither side always
    runs first after the other. With ``warmup`` each function is called once
    beforehand, untimed (imports, caches, allocator).

    A function may return a number instead of None: then that number is
    recorded instead of its wall time (e.g. frames per second it measured
    itself over a time-boxed loop).
    """
    names = list(fns)
    if warmup:
        for n in names:
            fns[n]()
    out: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeat):
        for n in names if r % 2 == 0 else names[::-1]:
            out[n].append(measure(fns[n]))
    return out


def measure(fn: Callable[[], object]) -> float:
    """Wall seconds of one call, or the number the function returns (see :func:`alternate`)."""
    t0 = time.perf_counter()
    v = fn()
    dt = time.perf_counter() - t0
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else dt


def time_boxed(step: Callable[[], int], min_s: float, min_steps: int = 1) -> float:
    """Run ``step`` (returning the units of work it did) until ``min_s`` seconds
    have passed and at least ``min_steps`` steps ran; return units per second."""
    done, steps = 0, 0
    t0 = time.perf_counter()
    while True:
        done += step()
        steps += 1
        dt = time.perf_counter() - t0
        if dt >= min_s and steps >= min_steps:
            return done / dt


# ---------------------------------------------------------------------------
# Memory


def _status_kb(field_name: str, pid: int | str = "self") -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset this process's resident high-water mark (Linux >= 4.0); False if unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Resident high-water mark of a live process, MiB (VmHWM)."""
    kb = _status_kb("VmHWM", pid)
    if kb is None and pid == "self":
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return None if kb is None else kb / 1024.0


def rss_mb(pid: int | str = "self") -> float | None:
    kb = _status_kb("VmRSS", pid)
    return None if kb is None else kb / 1024.0


class PeakMemory:
    """``with PeakMemory() as m: work()`` -> ``m.peak_mb``: peak RSS of this process during work.

    Where the high-water mark cannot be reset, the process's lifetime peak is
    reported instead (``m.exact`` is False), which is an upper bound.
    """

    def __enter__(self) -> PeakMemory:
        self.exact = reset_peak_rss()
        self.peak_mb: float | None = None
        return self

    def __exit__(self, *exc) -> None:
        self.peak_mb = peak_rss_mb()


@dataclass
class ProcResult:
    returncode: int
    wall_s: float
    peak_rss_mb: float
    stdout: str
    stderr: str


def describe_exit(returncode: int) -> str:
    """``exit status N`` or, for a death by signal (negative code), ``killed by SIGSEGV (-11)``."""
    import signal

    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name} ({returncode})"
    return f"exit status {returncode}"


def last_line(text: str, limit: int = 300) -> str:
    """The last non-empty line of a log, cut to ``limit`` characters ('' for an empty log)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1][:limit] if lines else ""


def run_process(cmd: list[str], cwd: str | Path | None = None, env: dict | None = None,
                timeout: float | None = None) -> ProcResult:
    """Run a command; wall seconds and the child's own peak RSS (``ru_maxrss`` via wait4).

    The peak is the direct child's (its own children are not included).
    Output goes to temporary files, so a chatty child cannot block on a full pipe.
    """
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        try:
            if timeout is None:
                _, status, ru = os.wait4(p.pid, 0)
            else:
                deadline = t0 + timeout
                while True:
                    pid, status, ru = os.wait4(p.pid, os.WNOHANG)
                    if pid:
                        break
                    if time.perf_counter() > deadline:
                        p.kill()
                        _, status, ru = os.wait4(p.pid, 0)
                        break
                    time.sleep(0.02)
        except BaseException:
            p.kill()
            p.wait()
            raise
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ProcResult(p.returncode, wall, ru.ru_maxrss / 1024.0,
                          out.read().decode(errors="replace"), err.read().decode(errors="replace"))


class TreePeak:
    """Sample the summed RSS of a process and its descendants (a server) in a thread.

    ``peak_mb`` is the largest sum seen (sampled every ``interval_s``), an
    estimate from below of the true peak.
    """

    def __init__(self, pid: int, interval_s: float = 0.05):
        self.pid, self.interval_s, self.peak_mb = pid, interval_s, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self) -> list[int]:
        pids, todo = [], [self.pid]
        while todo:
            p = todo.pop()
            pids.append(p)
            try:
                for t in Path(f"/proc/{p}/task").iterdir():
                    kids = (t / "children").read_text().split()
                    todo.extend(int(k) for k in kids)
            except OSError:
                pass
        return pids

    def _run(self) -> None:
        while not self._stop.is_set():
            total = sum(rss_mb(p) or 0.0 for p in self._tree())
            self.peak_mb = max(self.peak_mb, total)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------
# Rows and output


@dataclass
class Row:
    """One workload of the table. ``ratio`` is always "how many times better ours is"."""

    workload: str
    unit: str
    ours: float | None
    baseline: float | None = None
    higher_is_better: bool = True
    target: str = ""
    met: bool | None = None
    note: str = ""
    samples: dict = field(default_factory=dict)
    peak_rss_mb: float | None = None
    group: str = ""

    @property
    def ratio(self) -> float | None:
        if self.ours is None or self.baseline is None or not self.ours or not self.baseline:
            return None
        return self.ours / self.baseline if self.higher_is_better else self.baseline / self.ours

    def to_dict(self) -> dict:
        d = asdict(self)
        d["ratio"] = self.ratio
        return d


def compare(workload: str, unit: str, samples: dict[str, list[float]], *,
            higher_is_better: bool, target: str = "", min_ratio: float | None = None,
            note: str = "", group: str = "", peak_rss_mb: float | None = None) -> Row:
    """A row from alternating samples {"ours": [...], "baseline": [...]}; ``met`` from
    ``min_ratio`` (ours must be at least that many times better) when given."""
    spreads = ", ".join(f"{k} {spread(v):.0%}" for k, v in samples.items() if len(v) > 1)
    if spreads:
        note = f"{note}; spread {spreads}".lstrip("; ")
    row = Row(workload, unit, median(samples["ours"]),
              median(samples["baseline"]) if samples.get("baseline") else None,
              higher_is_better, target, None, note, samples, peak_rss_mb, group)
    if min_ratio is not None and row.ratio is not None:
        row.met = row.ratio >= min_ratio
    return row


def machine() -> dict:
    """What the figures were measured on."""
    info = {"cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg": [round(x, 2) for x in os.getloadavg()]}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:
        pass
    return info


def finish(rows: list[Row], json_path: str | Path | None) -> int:
    """Note the load average on every row, print the table, write the JSON; exit code 0."""
    import os

    load = os.getloadavg()[0]
    for r in rows:
        r.note += f"; load {load:.1f}"
    print_rows(rows)
    write_rows(json_path, rows)
    return 0


def write_rows(path: str | Path | None, rows: list[Row], **extra) -> None:
    if path is None:
        return
    payload = {"machine": machine(), "rows": [r.to_dict() for r in rows], **extra}
    Path(path).write_text(json.dumps(payload, indent=2, default=float))


def fmt(x: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant figures, no scientific notation below 1e7."""
    if x is None:
        return "-"
    if x == 0:
        return "0"
    mag = abs(x)
    if mag >= 10 ** digits:
        return f"{x:,.0f}"
    decimals = max(0, digits - 1 - int(f"{mag:e}".split("e")[1]))
    return f"{x:.{decimals}f}"


def print_rows(rows: list[Row], file=sys.stdout) -> None:
    """The rows as a fixed-width table."""
    head = ("workload", "unit", "ours", "baseline", "ratio", "target", "met?")
    body = [(r.workload, r.unit, fmt(r.ours), fmt(r.baseline),
             f"{r.ratio:.2f}x" if r.ratio is not None else "-", r.target,
             {True: "yes", False: "NO", None: "-"}[r.met]) for r in rows]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body, strict=True)]
    for i, line in enumerate([head, *body]):
        print("  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip(),
              file=file)
        if i == 0:
            print("  ".join("-" * w for w in widths), file=file)


def markdown_rows(rows: list[Row]) -> str:
    """The rows as a Markdown table (for docs/performance.md)."""
    lines = ["| workload | unit | ours | baseline | ratio | target | met? | peak RSS (MiB) |",
             "|---|---|---:|---:|---:|---|---|---:|"]
    for r in rows:
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "-"
        met = {True: "yes", False: "**no**", None: "-"}[r.met]
        lines.append(f"| {r.workload} | {r.unit} | {fmt(r.ours)} | {fmt(r.baseline)} | {ratio} "
                     f"| {r.target} | {met} | {fmt(r.peak_rss_mb)} |")
    return "\n".join(lines)


def rows_from_json(path: str | Path) -> list[Row]:
    d = json.loads(Path(path).read_text())
    rows = []
    for r in d["rows"]:
        r = dict(r)
        r.pop("ratio", None)
        rows.append(Row(**r))
    return rows


def add_common_args(ap, quick_help: str = "a smoke test: fewer, shorter repetitions") -> None:
    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--json", default=None, help="write the rows here")
    ap.add_argument("--repeat", type=int, default=None, help="repetitions per side")


def ensure_real_features(out_dir: str | Path, data: str | Path = SHARED_DATA) -> tuple[Path, float]:
    """Features of the real sequences, built once with the pipeline's settings (params.yaml).

    Returns (folder, seconds it took; 0 when it already existed). The folder is
    reused between benchmarks of one suite run (``run_all.py --workdir``).
    """
    from melodance.features.config import FeaturesConfig
    from melodance.features.pipeline import build_features, load_features
    from melodance.params import load_section

    out_dir = Path(out_dir)
    if (out_dir / "meta.json").is_file():
        try:
            load_features(out_dir)
            return out_dir, 0.0
        except (ValueError, FileNotFoundError):
            pass  # written by an older version of the pipeline: build again
    if not Path(data).is_dir():
        raise SystemExit(f"{data}: real dataset not found (set MELODANCE_SHARED)")
    cfg = load_section("features", FeaturesConfig, REPO / "params.yaml")
    t0 = time.perf_counter()
    build_features(data, out_dir, cfg)
    return out_dir, time.perf_counter() - t0
