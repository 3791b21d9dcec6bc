"""False alarms and power of `edgeslim check` with the options a user types, each run a fresh
CLI process (what CI does).

Models: a plain conv net (stem + 6 x 32-channel 3x3 convs, 64 px input) and the same net with
one more 32-channel 3x3 conv (~16% more MACs). For each option set (default: no option but
--max-slowdown 5; and --threads 2) it runs, alternating, N checks of the model against itself
and N against the bigger one:

    edgeslim check base.onnx base.onnx --max-slowdown 5 [--threads 2] --json run.json
    edgeslim check base.onnx cand.onnx --max-slowdown 5 [--threads 2] --json run.json

and counts the verdicts (pass 0 / regression 1 / inconclusive 4 / error 2) and the wall time of
one check (process start-up included). Targets (issue 12): self-compare flagged <= 1 of 20,
the +16% candidate flagged >= 19 of 20, inconclusive <= 2 of 20 in each set, median check
< 15 s for a ~4 ms model.

    .venv/bin/python benchmarks/latency_gate.py                     # quiet machine: the figures
    .venv/bin/python benchmarks/latency_gate.py --runs 2            # smoke test
Writes benchmarks/results/latency_gate.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency_common import EDGESLIM, export, plain_cnn, write_result  # noqa: E402

SETS = {"default": [], "threads-2": ["--threads", "2"]}
VERDICTS = ("pass", "regression", "inconclusive", "error")


def check(base: Path, other: Path, extra: list[str], out: Path) -> dict[str, Any]:
    """One `edgeslim check` process; its verdict from the JSON report (and the exit code)."""
    t0 = time.perf_counter()
    p = subprocess.run([*EDGESLIM, "check", str(base), str(other), "--max-slowdown", "5", *extra,
                        "--json", str(out)], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    rep = json.loads(out.read_text()) if out.is_file() else {"verdict": "error", "error": p.stderr[-300:]}
    c = rep.get("comparison") or {}
    return {"exit": p.returncode, "verdict": rep["verdict"], "ratio": c.get("ratio"),
            "ci": [c.get("ci_low"), c.get("ci_high")], "rounds": c.get("rounds"), "stop": rep.get("stop"),
            "measure_s": rep.get("wall_s"), "wall_s": round(wall, 2), "error": rep.get("error")}


def bench(path: Path, extra: list[str], work: Path) -> dict[str, Any]:
    out = work / f"bench-{path.stem}.json"
    subprocess.run([*EDGESLIM, "bench", str(path), *extra, "--min-time", "3", "--json", str(out)],
                   check=True, capture_output=True)
    r = json.loads(out.read_text())
    return {"median_ms": r["median_ms"], "p99_ms": r["p99_ms"], "macs": r["artifact"]["macs"],
            "threads": r["settings"]["intra_op_threads"]}


def tally(runs: list[dict[str, Any]]) -> dict[str, int]:
    return {v: sum(r["verdict"] == v for r in runs) for v in VERDICTS}


def run_set(name: str, extra: list[str], base: Path, cand: Path, runs: int, work: Path) -> dict[str, Any]:
    res: dict[str, list] = {"self": [], "extra_conv": []}
    for i in range(runs):  # alternate, so a load change hits both series alike
        for pair, other in (("self", base), ("extra_conv", cand)):
            r = check(base, other, extra, work / f"{name}-{pair}-{i}.json")
            res[pair].append(r)
            print(name, pair, i, r, flush=True)
    t_self, t_extra = tally(res["self"]), tally(res["extra_conv"])
    walls = [r["wall_s"] for v in res.values() for r in v]
    return {
        "options": ["--max-slowdown", "5", *extra],
        "self": t_self,
        "extra_conv": t_extra,
        "median_check_wall_s": statistics.median(walls),
        "max_check_wall_s": max(walls),
        "targets": {
            "self_flagged_at_most_1_in_20": t_self["regression"] <= runs / 20,
            "extra_flagged_at_least_19_in_20": t_extra["regression"] >= runs * 19 / 20,
            "inconclusive_at_most_2_in_20_each": max(t_self["inconclusive"], t_extra["inconclusive"]) <= runs / 10,
            "median_check_under_15_s": statistics.median(walls) < 15,
        },
        "self_runs": res["self"],
        "extra_conv_runs": res["extra_conv"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20, help="checks per pair and option set")
    ap.add_argument("--sets", default=",".join(SETS), help=f"option sets: {', '.join(SETS)}")
    ap.add_argument("--body", type=int, default=6, help="3x3 convs in the baseline's body")
    ap.add_argument("--image-size", type=int, default=64)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="latency-gate-"))
    base = export(plain_cnn(args.body), work / "base.onnx", image_size=args.image_size)
    cand = export(plain_cnn(args.body + 1), work / "cand.onnx", image_size=args.image_size)
    sets = {k: SETS[k] for k in args.sets.split(",")}
    import os

    out: dict[str, Any] = {"benchmark": "latency_gate", "runs": args.runs, "image_size": args.image_size,
                           "body_layers": args.body, "load_average_start": os.getloadavg(), "sets": {}}
    from edgeslim.deploy.gate.check import gate_threads

    threads = ["--threads", str(gate_threads())]  # what check runs each side with by default
    b, c = bench(base, threads, work), bench(cand, threads, work)
    out["bench_gate_threads"] = {"baseline": b, "candidate": c, "macs_ratio": c["macs"] / b["macs"],
                                    "latency_ratio": c["median_ms"] / b["median_ms"]}
    for name, extra in sets.items():
        out["sets"][name] = run_set(name, extra, base, cand, args.runs, work)
    out["load_average_end"] = os.getloadavg()
    write_result("latency_gate", out)
    for name, s in out["sets"].items():
        print(f"{name}: self {s['self']}  +16% {s['extra_conv']}  median check {s['median_check_wall_s']:.1f} s  "
              f"targets {s['targets']}")


if __name__ == "__main__":
    main()
