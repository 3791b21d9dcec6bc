"""False alarms and power of `edgeslim check` on this machine, each run a fresh CLI process.

false alarms: a model checked against itself N times -> how many runs report a regression.
power: a candidate with one extra conv layer (~16% more MACs; its real slowdown measured first
with `edgeslim bench`) -> how many of N runs report it.

    .venv/bin/python benchmarks/latency_gate.py [--runs 20] [--threads 1] [--min-time 3]
Writes benchmarks/results/latency_gate.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency_common import export, plain_cnn, run_cli, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=3.0)
    ap.add_argument("--body", type=int, default=6, help="conv layers of the baseline body")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="latency-gate-"))
    base = export(plain_cnn(args.body), work / "base.onnx")
    cand = export(plain_cnn(args.body + 1), work / "cand.onnx")
    common = ["--threads", str(args.threads), "--min-time", str(args.min_time)]
    bench = {}
    for name, path in (("baseline", base), ("candidate", cand)):
        run_cli(
            "bench",
            str(path),
            "--threads",
            str(args.threads),
            "--min-time",
            "3",
            "--json",
            str(work / f"{name}.json"),
        )
        r = json.loads((work / f"{name}.json").read_text())
        bench[name] = {
            "median_ms": r["median_ms"],
            "p99_ms": r["p99_ms"],
            "macs": r["artifact"]["macs"],
        }
    results = {}
    for kind, cand_path in (("self", base), ("extra_layer", cand)):
        runs = []
        for i in range(args.runs):
            out = work / f"{kind}-{i}.json"
            code, _, secs = run_cli("check", str(base), str(cand_path), *common, "--json", str(out))
            c = json.loads(out.read_text())["comparison"]
            runs.append(
                {
                    "exit": code,
                    "ratio": round(c["ratio"], 4),
                    "ci": [round(c["ci_low"], 4), round(c["ci_high"], 4)],
                    "verdict": c["verdict"],
                    "wall_s": round(secs, 2),
                }
            )
            print(kind, i, runs[-1], flush=True)
        results[kind] = runs
    write_result(
        "latency_gate",
        {
            "benchmark": "latency_gate",
            "runs": args.runs,
            "threads": args.threads,
            "min_time_s": args.min_time,
            "bench": bench,
            "macs_ratio": bench["candidate"]["macs"] / bench["baseline"]["macs"],
            "bench_latency_ratio": bench["candidate"]["median_ms"] / bench["baseline"]["median_ms"],
            "false_alarms": sum(r["exit"] == 1 for r in results["self"]),
            "detections": sum(r["exit"] == 1 for r in results["extra_layer"]),
            "mean_check_wall_s": sum(r["wall_s"] for v in results.values() for r in v)
            / (2 * args.runs),
            "self_runs": results["self"],
            "extra_layer_runs": results["extra_layer"],
        },
    )


if __name__ == "__main__":
    main()
