"""The timing core: call counts, statistics and interleaved rounds (no assumed speeds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeslim.runtime import portable, timing


class Counter:
    def __init__(self):
        self.calls = 0
        self.shapes = []

    def __call__(self):
        self.calls += 1

    def run(self, x):
        self.shapes.append(x.shape)
        return x


def test_one_implementation_shared_with_the_portable_core():
    assert timing.time_calls is portable.time_calls and timing.summarize is portable.summarize


def test_time_calls_counts_warmup_and_min_iters():
    c = Counter()
    s = timing.time_calls(c, warmup=3, min_iters=7, min_time_s=0.0)
    assert len(s) == 7 and c.calls == 10 and all(v >= 0 for v in s)
    c2 = Counter()
    assert len(timing.time_calls(c2, warmup=0, min_iters=10**9, min_time_s=0.0, max_iters=25)) == 25


def test_time_calls_runs_until_min_time_has_passed(monkeypatch):
    # A fake clock (not an assumed speed): each call takes exactly 10 ms of clock time.
    now = [0.0]
    monkeypatch.setattr(portable.time, "perf_counter", lambda: now[0])

    def call():
        now[0] += 0.010

    s = timing.time_calls(call, warmup=0, min_iters=1, min_time_s=0.05)
    assert len(s) == 5 and s == pytest.approx([10.0] * 5)


def test_summarize_known_samples():
    s = timing.summarize([1.0, 2.0, 3.0, 4.0, 10.0], batch=4)
    assert s["median_ms"] == 3.0 and s["min_ms"] == 1.0 and s["max_ms"] == 10.0 and s["iters"] == 5
    assert s["mean_ms"] == pytest.approx(4.0) and s["p90_ms"] == pytest.approx(np.percentile([1, 2, 3, 4, 10], 90))
    assert s["throughput"] == pytest.approx(4 * 1e3 / 3.0)
    assert timing.summarize([2.0])["std_ms"] == 0.0


def test_interleaved_rounds_rotate_the_order():
    order: list[str] = []
    fns = {n: (lambda n=n: order.append(n)) for n in "abc"}
    out = timing.interleaved_rounds(fns, rounds=3, calls=2, warmup=1)
    assert order[:3] == ["a", "b", "c"]  # warm-up once each
    timed = order[3:]
    assert timed == list("aabbcc") + list("bbccaa") + list("ccaabb")
    assert all(len(r) == 2 for rounds in out.values() for r in rounds) and len(out["a"]) == 3
    summ = timing.interleaved_summary(out)
    assert summ["b"]["iters"] == 6 and len(summ["b"]["round_medians_ms"]) == 3


def test_quick_latency_runs_the_backend_on_a_fixed_input():
    be = Counter()
    ms = timing.quick_latency_ms(be, (3, 8, 8), iters=5, warmup=2, batch=2)
    assert ms >= 0 and len(be.shapes) == 7 and set(be.shapes) == {(2, 3, 8, 8)}
    a, b = timing.make_input((3, 4, 4), 2), timing.make_input((3, 4, 4), 2)
    assert a.dtype == np.float32 and np.array_equal(a, b)  # the same input every time


def test_the_device_runner_times_with_the_shipped_portable_copy(tmp_path):
    """runner.py has no timing code of its own: a bundle ships this very file as
    edgeslim_portable.py and the runner times with it (deploy/bundle/runtimes.py copies both)."""
    from edgeslim.deploy.bundle import runner
    from edgeslim.deploy.bundle.runtimes import PORTABLE_NAME, copy_runner

    assert not hasattr(runner, "time_calls") and not hasattr(runner, "summarize")
    assert runner.PORTABLE == PORTABLE_NAME
    copy_runner(tmp_path)
    assert (tmp_path / PORTABLE_NAME).read_bytes() == Path(portable.__file__).read_bytes()
    assert (tmp_path / "runner.py").read_bytes() == Path(runner.__file__).read_bytes()


def test_portable_runs_as_a_standalone_file_without_edgeslim(tmp_path):
    """What a bundle ships: the file copied next to runner.py, imported with no edgeslim around."""
    import shutil
    import subprocess
    import sys

    shutil.copy(portable.__file__, tmp_path / "edgeslim_portable.py")
    code = ("import sys, edgeslim_portable as p\n"
            "s = p.summarize(p.time_calls(lambda: None, warmup=1, min_iters=3, min_time_s=0))\n"
            "assert s['iters'] == 3 and not any(m.startswith('edgeslim') and m != 'edgeslim_portable' "
            "for m in sys.modules)\n"
            "print(p.ov_compile_config({'threads': 2})['INFERENCE_NUM_THREADS'])")
    out = subprocess.run([sys.executable, "-E", "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "2", out.stderr[-1000:]
