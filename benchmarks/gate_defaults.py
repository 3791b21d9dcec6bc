"""Which A/B measurement should `edgeslim check` use by default on a small shared runner?

Candidates (each side = one onnxruntime session of a plain conv net, batch 1, 64 px input):

  default-threads      threads = onnxruntime's default (all cores), spinning off (edgeslim's
                       runtime default), both sessions in one process, interleaved rounds
  default-spinning     as above with spinning ON (onnxruntime's own default; what issue 12 saw)
  threads-half         threads = gate_threads() (half the usable cores, 1-4; 1 on 2 cores)
  threads-cores-1      threads = cores - 1 (1 on 2 cores: the same as threads-half there)
  threads-2            threads = 2
  procs-pinned         each side in its own process with 1 thread, pinned to its own core,
                       the cores swapped every round; sides run one after the other (A B, B A)

For each candidate and each pair (the model against itself; against a model with one more
32-channel 3x3 conv, ~16% more MACs) it takes --repeats measurements of --seconds each, keeps
every round, and then replays the gate's rule on the rounds: the verdict after --min-time
seconds, and the adaptive verdict (looks every second from --min-time until the CI decides
or --seconds, the cap). Reported per candidate: spread of the ratio across repeats (steadiness),
median CI half-width, pass/regression/inconclusive counts, median time to a decision.

    .venv/bin/python benchmarks/gate_defaults.py                          # quiet machine
    .venv/bin/python benchmarks/gate_defaults.py --repeats 1 --seconds 4  # smoke test
Writes benchmarks/results/gate_defaults.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency_common import RESULTS, export, plain_cnn  # noqa: E402

ROUND_MS = 25.0  # the gate's default block length per side


def _session(path: str, threads: int | None, spinning: bool | None) -> Any:
    from edgeslim.runtime import open_backend

    return open_backend(path, "onnxruntime", threads=threads, allow_spinning=spinning)


def _worker(path: str, conn: Any) -> None:
    """One side in its own process: ('run', core, k) -> k call times (ms) on that core."""
    from edgeslim.runtime.timing import make_input, time_calls

    be = _session(path, 1, None)
    x = make_input(be.input_shape())
    time_calls(lambda: be.run(x), warmup=10, min_iters=0, min_time_s=0, max_iters=0)
    while True:
        msg = conn.recv()
        if msg[0] == "stop":
            return
        _, core, k = msg
        os.sched_setaffinity(0, {core})
        conn.send(time_calls(lambda: be.run(x), warmup=1, min_iters=k, min_time_s=0, max_iters=k))


def _calls_per_round(fa: Any, fb: Any) -> int:
    import numpy as np

    ta = np.median([fa(3)[-1] for _ in range(3)])
    tb = np.median([fb(3)[-1] for _ in range(3)])
    return int(min(50, max(1, ROUND_MS / max(ta, tb, 1e-3))))


def _rounds(fa: Any, fb: Any, seconds: float) -> tuple[list, list, list]:
    """Interleave fa(k)/fb(k) (each returns k call times) for ``seconds``; rounds + end times."""
    k = _calls_per_round(fa, fb)
    a, b, ends = [], [], []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        if len(a) % 2 == 0:
            ra, rb = fa(k), fb(k)
        else:
            rb, ra = fb(k), fa(k)
        a.append(ra)
        b.append(rb)
        ends.append(time.perf_counter() - t0)
    return a, b, ends


def measure_in_process(pa: str, pb: str, threads: int | None, spinning: bool | None, seconds: float) -> tuple:
    from edgeslim.runtime.timing import make_input, time_calls

    sa, sb = _session(pa, threads, spinning), _session(pb, threads, spinning)
    xa, xb = make_input(sa.input_shape()), make_input(sb.input_shape())
    for s, x in ((sa, xa), (sb, xb)):
        time_calls(lambda s=s, x=x: s.run(x), warmup=10, min_iters=0, min_time_s=0, max_iters=0)

    def fa(k: int) -> list[float]:
        return time_calls(lambda: sa.run(xa), warmup=0, min_iters=k, min_time_s=0, max_iters=k)

    def fb(k: int) -> list[float]:
        return time_calls(lambda: sb.run(xb), warmup=0, min_iters=k, min_time_s=0, max_iters=k)

    return _rounds(fa, fb, seconds)


def measure_processes(pa: str, pb: str, seconds: float) -> tuple:
    ctx = mp.get_context("spawn")  # a fresh interpreter per side: nothing shared
    cores = sorted(os.sched_getaffinity(0))[:2]
    pipes, procs = [], []
    for path in (pa, pb):
        here, there = ctx.Pipe()
        p = ctx.Process(target=_worker, args=(path, there), daemon=True)
        p.start()
        pipes.append(here)
        procs.append(p)
    n = {"a": 0}

    def side(i: int) -> Any:
        def run(k: int) -> list[float]:
            core = cores[(i + n["a"]) % len(cores)]  # swap cores every round
            pipes[i].send(("run", core, k))
            return pipes[i].recv()
        return run

    fa, fb = side(0), side(1)

    def fa_counted(k: int) -> list[float]:
        n["a"] += 1
        return fa(k)

    try:
        return _rounds(fa_counted, fb, seconds)
    finally:
        for c in pipes:
            c.send(("stop",))
        for p in procs:
            p.join(10)


def replay(a: list, b: list, ends: list, min_time: float, cap: float, slowdown: float) -> dict[str, Any]:
    """The gate's rule on recorded rounds: verdict at min_time, and adaptive (look every second)."""
    from edgeslim.deploy.gate.stats import compare_rounds

    def upto(t: float) -> Any:
        n = sum(1 for e in ends if e <= t)
        return compare_rounds(a[:n], b[:n], slowdown, min_rounds=20)

    fixed = upto(min_time)
    t, cmp = min_time, fixed
    while not cmp.decided and t + 1.0 <= cap + 1e-9:
        t += 1.0
        cmp = upto(t)
    full = upto(cap)
    return {"ratio": round(full.ratio, 4), "ci": [round(full.ci_low, 4), round(full.ci_high, 4)],
            "verdict_at_min_time": fixed.verdict, "verdict_adaptive": cmp.verdict,
            "decided_after_s": t if cmp.decided else None, "rounds": len(a), "calls_per_round": len(a[0])}


def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ratios = [r["ratio"] for r in runs]
    half = [(r["ci"][1] - r["ci"][0]) / 2 for r in runs]
    counts = {v: sum(r["verdict_adaptive"] == v for r in runs) for v in ("pass", "regression", "inconclusive")}
    decided = [r["decided_after_s"] for r in runs if r["decided_after_s"] is not None]
    return {"ratio_median": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "ratio_sd": statistics.stdev(ratios) if len(ratios) > 1 else 0.0,
            "ci_halfwidth_median": statistics.median(half), "adaptive_counts": counts,
            "at_min_time_counts": {v: sum(r["verdict_at_min_time"] == v for r in runs)
                                   for v in ("pass", "regression", "inconclusive")},
            "median_decision_s": statistics.median(decided) if decided else None}


def candidates(cores: int) -> dict[str, dict[str, Any]]:
    from edgeslim.deploy.gate.check import gate_threads

    return {
        "default-threads": {"threads": None, "spinning": False},
        "default-spinning": {"threads": None, "spinning": True},
        "threads-half": {"threads": gate_threads(cores), "spinning": None},
        "threads-cores-1": {"threads": max(1, cores - 1), "spinning": None},
        "threads-2": {"threads": 2, "spinning": None},
        "procs-pinned": {"processes": True},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=10, help="measurements per candidate and pair")
    ap.add_argument("--seconds", type=float, default=10.0, help="length of one measurement (the cap)")
    ap.add_argument("--min-time", type=float, default=3.0, help="first look (the gate's --min-time)")
    ap.add_argument("--max-slowdown", type=float, default=5.0, help="percent, as on the CLI")
    ap.add_argument("--only", default=None, help="comma-separated candidate names")
    args = ap.parse_args()
    from edgeslim.deploy.gate.check import usable_cores

    cores = usable_cores()
    work = Path(tempfile.mkdtemp(prefix="gate-defaults-"))
    base = str(export(plain_cnn(6), work / "base.onnx", image_size=64))
    cand = str(export(plain_cnn(7), work / "cand.onnx", image_size=64))
    chosen = candidates(cores)
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
    out: dict[str, Any] = {}
    for name, cfg in chosen.items():
        per_pair: dict[str, Any] = {}
        for pair, other in (("self", base), ("extra_conv", cand)):
            runs = []
            for i in range(args.repeats):
                if cfg.get("processes"):
                    rec = measure_processes(base, other, args.seconds)
                else:
                    rec = measure_in_process(base, other, cfg["threads"], cfg["spinning"], args.seconds)
                runs.append(replay(*rec, args.min_time, args.seconds, args.max_slowdown / 100))
                print(name, pair, i, runs[-1], flush=True)
            per_pair[pair] = {"summary": summarize_runs(runs), "runs": runs}
        out[name] = {"settings": cfg, **per_pair}
    from edgeslim.fsutil import atomic_write_json

    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "gate_defaults.json", {
        "benchmark": "gate_defaults", "cores": cores, "repeats": args.repeats, "seconds": args.seconds,
        "min_time_s": args.min_time, "max_slowdown_pct": args.max_slowdown, "round_ms": ROUND_MS,
        "host": __import__("edgeslim.deploy.gate.bench", fromlist=["x"]).host_fingerprint(),
        "load_average": os.getloadavg(), "candidates": out,
    })
    for name, v in out.items():
        s, e = v["self"]["summary"], v["extra_conv"]["summary"]
        print(f"{name:18s} self ratio {s['ratio_median']:.3f} sd {s['ratio_sd']:.3f} ci±{s['ci_halfwidth_median']:.3f} "
              f"{s['adaptive_counts']} | +16%: ratio {e['ratio_median']:.3f} sd {e['ratio_sd']:.3f} "
              f"ci±{e['ci_halfwidth_median']:.3f} {e['adaptive_counts']}")


if __name__ == "__main__":
    main()
