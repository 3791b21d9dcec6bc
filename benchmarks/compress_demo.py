"""The demo's compression figures: final INT8 vs the fine-tuned float teacher.

Runs recipes/demo.yaml (reusing finished stages unless --fresh) and records, from the run record:
MACs reduction, test accuracy of the INT8 ONNX in onnxruntime vs the teacher's, the recovery
before/after figures of every pruning step, and each stage's wall time.
Run: .venv/bin/python benchmarks/compress_demo.py [--fresh] [recipe.yaml]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from compress_common import write_result  # noqa: E402


def main() -> None:
    from edgeslim.pipeline import run_pipeline
    from edgeslim.progress import Reporter
    from edgeslim.recipe import load_recipe

    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    recipe = load_recipe(args[0] if args else Path(__file__).parents[1] / "recipes" / "demo.yaml")
    t0, c0 = time.perf_counter(), time.process_time()
    res = run_pipeline(recipe, Reporter(quiet=True), fresh="--fresh" in sys.argv)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    by = {s.name: s for s in res.stages}
    teacher, final = by["finetune"].metrics, by["quantize"].metrics
    prune = by.get("prune")
    write_result(
        "compress_demo",
        {
            "recipe": str(recipe.run.name),
            "fresh": "--fresh" in sys.argv,
            "pipeline_wall_s": round(wall, 1),
            # CPU seconds over all threads: on a shared 2-core box wall time also counts other jobs;
            # cpu_s / 2 is roughly the wall time the run would take alone on 2 cores.
            "pipeline_cpu_s": round(cpu, 1),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "stage_wall_s": {f"{s.index:02d}-{s.name}": round(s.wall_s, 1) for s in res.stages},
            "teacher": {
                "macs": teacher["macs"],
                "test_accuracy": teacher["test_accuracy"],
                "evaluated_on": teacher["evaluated_on"],
            },
            "final_int8": {
                "macs": final["macs"],
                "test_accuracy": final["test_accuracy"],
                "evaluated_on": final["evaluated_on"],
                "precision": final["precision"],
                "size_bytes": final["size_bytes"],
                "latency_ms": final["latency_ms"],
                "kept_float": (final.get("sensitivity") or {}).get("kept_float"),
            },
            "macs_reduction_x": round(teacher["macs"] / final["macs"], 2),
            "accuracy_delta_points": round(
                (final["test_accuracy"] - teacher["test_accuracy"]) * 100, 2
            ),
            "recovery": prune.metrics.get("recovery") if prune else None,
            "checks": {
                "macs_3x_fewer": teacher["macs"] >= 3 * final["macs"],
                "int8_within_1_point": teacher["test_accuracy"] - final["test_accuracy"] <= 0.01,
            },
        },
    )


if __name__ == "__main__":
    main()
