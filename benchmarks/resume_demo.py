"""Must-show for the foundation: kill -9 in the middle of a stage, --resume, same final metrics.

Runs the recipe once uninterrupted and once killed (SIGKILL) while stage --kill-stage is running,
then resumed; compares every stage's stable metrics and checks no earlier stage was recomputed.

    python benchmarks/resume_demo.py [--recipe recipes/demo.yaml] [--kill-stage 1]
Writes benchmarks/results/resume_demo.json.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STABLE = ("params", "macs", "size_bytes", "test_accuracy")


def run(recipe: str, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edgeslim", "run", recipe, "-q", "--output-dir", str(out),
                             *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def wait_for_stage(run_json: Path, index: int, timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            st = json.loads(run_json.read_text())["stages"]
            if len(st) > index and st[index]["status"] == "running":
                return
        except (OSError, json.JSONDecodeError, KeyError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"stage {index} never started")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipe", default="recipes/demo.yaml")
    ap.add_argument("--kill-stage", type=int, default=1, help="index of the stage to kill inside")
    ap.add_argument("--kill-after", type=float, default=2.0, help="seconds into that stage")
    ap.add_argument("--out", default="benchmarks/results/resume_demo.json")
    a = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="resume-"))
    t0 = time.time()
    ref = run(a.recipe, work / "ref")
    if ref.wait() != 0:
        print(ref.stderr.read(), file=sys.stderr)
        return 1
    t_ref = time.time() - t0
    name = json.loads(next((work / "ref").glob("*/run.json")).read_text())["name"]
    killed = run(a.recipe, work / "killed")
    run_json = work / "killed" / name / "run.json"
    wait_for_stage(run_json, a.kill_stage)
    time.sleep(a.kill_after)
    os.kill(killed.pid, signal.SIGKILL)
    killed.wait()
    before = {p.parent.name: p.stat().st_mtime_ns for p in (work / "killed" / name).glob("*/meta.json")}
    resumed = run(a.recipe, work / "killed", "--resume")
    if resumed.wait() != 0:
        print(resumed.stderr.read(), file=sys.stderr)
        return 1
    after = {p.parent.name: p.stat().st_mtime_ns for p in (work / "killed" / name).glob("*/meta.json")}
    ra = json.loads((work / "ref" / name / "run.json").read_text())
    rb = json.loads(run_json.read_text())
    same = [{k: sa["metrics"].get(k) for k in STABLE} == {k: sb["metrics"].get(k) for k in STABLE}
            for sa, sb in zip(ra["stages"], rb["stages"], strict=True)]
    result = {
        "recipe": a.recipe, "killed_in_stage": a.kill_stage, "uninterrupted_s": round(t_ref, 1),
        "stages_done_before_kill": sorted(before),
        "earlier_stages_recomputed": [d for d in before if after.get(d) != before[d]],
        "stable_metrics_equal_per_stage": same,
        "final_uninterrupted": {k: ra["final"].get(k) for k in STABLE},
        "final_resumed": {k: rb["final"].get(k) for k in STABLE},
        "host": ra["host"],
    }
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if all(same) and not result["earlier_stages_recomputed"] else 1


if __name__ == "__main__":
    sys.exit(main())
