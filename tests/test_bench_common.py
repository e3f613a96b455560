"""The benchmark suite's shared helpers (benchmarks/common.py): statistics, turn order, memory."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

# Loaded by path under its own name: benchmarks/ is not a package, and a bare
# `import common` could pick up another module of that name.
_spec = importlib.util.spec_from_file_location(
    "melodance_bench_common", Path(__file__).resolve().parents[1] / "benchmarks" / "common.py")
C = sys.modules[_spec.name] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(C)


def test_linear_fit_recovers_a_line_and_flags_a_curve():
    x = [30.0, 60.0, 120.0, 240.0]
    a, b, r2 = C.linear_fit(x, [0.5 + 0.01 * v for v in x])
    assert a == pytest.approx(0.5) and b == pytest.approx(0.01) and r2 == pytest.approx(1.0)
    _, _, r2_quad = C.linear_fit(x, [v * v for v in x])
    assert r2_quad < 0.99  # a quadratic cost must not pass as linear


def test_percentile_median_and_spread():
    xs = [float(v) for v in range(1, 101)]
    assert C.percentile(xs, 95) == pytest.approx(95.05)
    assert C.percentile([3.0], 95) == 3.0
    assert C.median([1.0, 9.0, 2.0]) == 2.0
    assert C.spread([1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert C.spread([5.0]) == 0.0


def test_alternate_flips_the_order_each_round_and_records_returned_numbers():
    calls = []
    fns = {"ours": lambda: calls.append("o"), "base": lambda: (calls.append("b"), 7.0)[1]}
    out = C.alternate(fns, repeat=3, warmup=False)
    assert "".join(calls) == "obboob"
    assert out["base"] == [7.0, 7.0, 7.0]          # a returned number is the measurement
    assert all(t >= 0 for t in out["ours"]) and len(out["ours"]) == 3


def test_row_ratio_is_how_many_times_better_ours_is():
    faster = C.Row("t", "s", ours=2.0, baseline=6.0, higher_is_better=False)
    more = C.Row("f", "frames/s", ours=300.0, baseline=100.0, higher_is_better=True)
    assert faster.ratio == pytest.approx(3.0) and more.ratio == pytest.approx(3.0)
    assert C.Row("x", "s", ours=1.0).ratio is None
    row = C.compare("w", "frames/s", {"ours": [30.0, 31.0, 29.0], "baseline": [3.0, 3.0, 3.0]},
                    higher_is_better=True, min_ratio=10.0)
    assert row.ours == 30.0 and row.met is True
    assert "| w | frames/s | 30.0 | 3.00 | 10.00x |" in C.markdown_rows([row])


def test_peak_memory_sees_an_allocation_made_inside_the_block():
    import numpy as np

    with C.PeakMemory() as outside:
        pass
    with C.PeakMemory() as m:
        block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
        del block
    if not m.exact:
        pytest.skip("this kernel cannot reset the RSS high-water mark")
    assert m.peak_mb - outside.peak_mb > 50


def test_run_process_reports_exit_status_and_output():
    r = C.run_process([sys.executable, "-c", "import sys; print('hi'); sys.exit(3)"])
    assert r.returncode == 3 and r.stdout.strip() == "hi" and r.peak_rss_mb > 1


def test_a_benchmark_killed_by_a_signal_is_named():
    """A benchmark process that segfaults is reported as such (run_all.py prints it in its table)."""
    r = C.run_process([sys.executable, "-c", "import ctypes; print('started', flush=True); "
                       "ctypes.string_at(0)"])
    assert r.returncode == -11
    assert C.describe_exit(r.returncode) == "killed by SIGSEGV (-11)"
    assert C.describe_exit(2) == "exit status 2"
    assert C.last_line("a\n\nlast words\n\n") == "last words"
    assert C.last_line("") == ""
