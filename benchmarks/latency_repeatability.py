"""Repeatability of `edgeslim bench`: N separate processes bench the same model; CV of medians.

    .venv/bin/python benchmarks/latency_repeatability.py [--runs 5] [--threads 1] [--min-time 2]
Writes benchmarks/results/latency_repeatability.json.
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
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--min-time", type=float, default=2.0)
    args = ap.parse_args()
    from edgeslim.deploy.gate.stats import coefficient_of_variation

    work = Path(tempfile.mkdtemp(prefix="latency-rep-"))
    model = export(plain_cnn(6), work / "model.onnx")
    medians, p99s = [], []
    for i in range(args.runs):
        out = work / f"run{i}.json"
        run_cli(
            "bench",
            str(model),
            "--threads",
            str(args.threads),
            "--min-time",
            str(args.min_time),
            "--json",
            str(out),
        )
        r = json.loads(out.read_text())
        medians.append(r["median_ms"])
        p99s.append(r["p99_ms"])
        print(i, round(r["median_ms"], 4), r["iters"], flush=True)
    write_result(
        "latency_repeatability",
        {
            "benchmark": "latency_repeatability",
            "runs": args.runs,
            "threads": args.threads,
            "min_time_s": args.min_time,
            "cv_of_medians": coefficient_of_variation(medians),
            "cv_of_p99": coefficient_of_variation(p99s),
            "medians_ms": medians,
            "p99_ms": p99s,
        },
    )


if __name__ == "__main__":
    main()
