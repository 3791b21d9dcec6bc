#!/usr/bin/env python3
"""Model-zoo sweep through ``edgeslim zoo``: export + FP32 parity and INT8 pass rates, failures
by error class, wall time. Replaces benchmarks/zoo_parity.py (torchvision only, FP32 only).

The sweep itself is ``edgeslim zoo`` (one isolated worker per model, resumable: rerun the same
command after an interruption and finished models are skipped). Artifacts and the matrix go to
``runs/zoo/<zoo>/`` (outside git); this script adds the summary the README quotes and writes it
to ``benchmarks/results/zoo_sweep_<zoo>.json``. Random weights, nothing downloaded. CPU-heavy:
run on a quiet machine (``nice -n 19``); the figures of a run are the figures of its machine.

    .venv/bin/python benchmarks/zoo_sweep.py --zoo smoke                 # 4 models, minutes
    nice -n 19 .venv/bin/python benchmarks/zoo_sweep.py --zoo torchvision --workers 2   # 75 models, hours
    nice -n 19 .venv/bin/python benchmarks/zoo_sweep.py --zoo timm100 --workers 2       # 100 models, hours
    .venv/bin/python benchmarks/zoo_sweep.py --zoo timm100 --summary-only   # re-summarize runs/zoo/timm100
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
ZOOS = ROOT / "benchmarks" / "zoos"
RESULTS = ROOT / "benchmarks" / "results"
# zoo -> (zoo file, extra edgeslim zoo arguments, pass-rate goal for export + FP32 parity)
SWEEPS = {
    "smoke": ("smoke.yaml", [], 1.0),
    "torchvision": ("torchvision.yaml", ["--torchvision"], 1.0),
    "timm100": ("timm100.yaml", [], 0.95),
}
FP32_STEPS = ("build", "export", "checker", "fp32_parity")
INT8_STEPS = ("int8", "int8_agreement")


def step_status(row: dict[str, Any], name: str) -> str | None:
    return next((s["status"] for s in row.get("steps") or [] if s["name"] == name), None)


def first_problem(row: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any] | None:
    """The first of ``names`` that did not pass, or a process-level failure before them."""
    for s in row.get("steps") or []:
        if s["status"] != "ok" and (s["name"] in names or s["name"].startswith("(")):
            return s
    return None


def summarize(rows: list[dict[str, Any]], goal: float) -> dict[str, Any]:
    """Pass rates of FP32 (export + checker + parity) and INT8 (quantize + agreement), failures by class."""
    n = len(rows)
    fp32_ok = [r for r in rows if all(step_status(r, s) == "ok" for s in FP32_STEPS)]
    int8_rows = [r for r in rows if "int8" in (r.get("settings") or {}).get("precisions", [])]
    int8_ok = [r for r in int8_rows if all(step_status(r, s) == "ok" for s in INT8_STEPS)]
    fails: dict[str, list[dict[str, Any]]] = {"fp32": [], "int8": []}
    for r in rows:
        for part, names in (("fp32", FP32_STEPS), ("int8", INT8_STEPS)):
            s = first_problem(r, names)
            if s is not None and not (part == "int8" and s["status"] == "skipped"):
                fails[part].append({"model": r["model"], "step": s["name"], "status": s["status"],
                                    "error_class": s.get("error_class"), "error": (s.get("error") or "")[:300]})
    rate = len(fp32_ok) / n if n else 0.0
    return {
        "models": n,
        "status": dict(Counter(r.get("status") for r in rows)),
        "fp32_pass": len(fp32_ok), "fp32_pass_rate": round(rate, 4), "fp32_goal": goal,
        "fp32_goal_met": rate >= goal,
        "int8_models": len(int8_rows), "int8_pass": len(int8_ok),
        "int8_pass_rate": round(len(int8_ok) / len(int8_rows), 4) if int8_rows else None,
        # passed on the error gate alone: too few images where FP32's top-1 is decisive (random weights)
        "int8_pass_agreement_inconclusive": sum(1 for r in int8_ok if r["metrics"].get("int8_agreement") is None),
        "fp32_failures_by_error_class": dict(Counter(f["error_class"] for f in fails["fp32"])),
        "int8_failures_by_error_class": dict(Counter(f["error_class"] for f in fails["int8"])),
        "failures": fails,
        "max_rel_err_passed": max((r["metrics"]["max_rel_err"] for r in fp32_ok
                                   if r["metrics"].get("max_rel_err") is not None), default=None),
        "model_seconds_total": round(sum(r.get("duration_s") or 0 for r in rows), 1),
    }


def run(zoo: str, out: Path, workers: int, extra: list[str]) -> float:
    """Run (or resume) the sweep; returns the wall time of this invocation in seconds."""
    name, args, _ = SWEEPS[zoo]
    cmd = [sys.executable, "-m", "edgeslim", "zoo", str(ZOOS / name), *args, "--out", str(out),
           "--workers", str(workers), *extra]
    print("+", " ".join(cmd), flush=True)
    t0 = time.monotonic()
    rc = subprocess.call(cmd, cwd=ROOT)
    if rc not in (0, 1):
        raise SystemExit(f"edgeslim zoo exited with {rc}")
    return time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", choices=sorted(SWEEPS), default="smoke")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", help="zoo folder (default runs/zoo/<zoo>)")
    ap.add_argument("--summary-only", action="store_true", help="summarize an existing zoo folder, run nothing")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="more edgeslim zoo options after --")
    a = ap.parse_args()
    out = Path(a.out) if a.out else ROOT / "runs" / "zoo" / a.zoo
    extra = [x for x in a.extra if x != "--"]
    wall = None if a.summary_only else run(a.zoo, out, a.workers, extra)
    sys.path.insert(0, str(ROOT))
    rows = current_rows(out)
    if not rows:
        raise SystemExit(f"no rows in {out / 'results.jsonl'}")
    zoo_summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    doc = {
        "schema": "edgeslim.zoo_sweep/1", "zoo": a.zoo, "zoo_file": f"benchmarks/zoos/{SWEEPS[a.zoo][0]}",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "workers": a.workers, "cores": os.cpu_count(),
        "cpu": _cpu(), "python": platform.python_version(), "versions": rows[0].get("versions"),
        "wall_s_this_invocation": round(wall, 1) if wall is not None else None,
        "wall_s_sweep": zoo_summary.get("wall_s"), "wall_s_span": _span(rows),
        "matrix": os.path.relpath(out / "matrix.html", ROOT),
        **summarize(rows, SWEEPS[a.zoo][2]),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"zoo_sweep_{a.zoo}.json"
    if wall is None and path.is_file():  # --summary-only keeps the wall time the last run measured
        doc["wall_s_this_invocation"] = json.loads(path.read_text()).get("wall_s_this_invocation")
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    os.replace(tmp, path)
    print(f"{a.zoo}: FP32 {doc['fp32_pass']}/{doc['models']} ({doc['fp32_pass_rate']:.1%}), "
          f"INT8 {doc['int8_pass']}/{doc['int8_models']}; failures {doc['fp32_failures_by_error_class']} "
          f"-> {path}")
    return 0


def current_rows(out: Path) -> list[dict[str, Any]]:
    """The latest row of each model in the results file: a model rerun with other settings (e.g.
    ``--redo --only`` after a change) counts once, with its newest row."""
    from edgeslim.zoo.results import read_rows

    latest = {r["model"]: r for r in read_rows(out / "results.jsonl")}  # a later line wins
    return list(latest.values())


def _span(rows: list[dict[str, Any]]) -> float | None:
    """First start to last finish over all rows (the sweep's wall time when it ran in one go)."""
    from datetime import datetime

    fmt = "%Y-%m-%dT%H:%M:%S%z"
    try:
        starts = [datetime.strptime(r["started_at"], fmt) for r in rows if r.get("started_at")]
        ends = [datetime.strptime(r["finished_at"], fmt) for r in rows if r.get("finished_at")]
    except ValueError:
        return None
    return (max(ends) - min(starts)).total_seconds() if starts and ends else None


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    sys.exit(main())
