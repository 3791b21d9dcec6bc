"""Shared helpers of the train_/transfer_/tune_ benchmarks (not a benchmark itself)."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
WORK = ROOT / "runs" / "bench-train"  # ignored by git; caches the pretrain stage


def machine() -> dict[str, Any]:
    import torch

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def write_result(name: str, payload: dict[str, Any]) -> Path:
    from edgeslim.fsutil import atomic_write_json

    path = atomic_write_json(
        RESULTS / f"{name}.json", {"benchmark": name, "machine": machine(), **payload}
    )
    print(json.dumps(payload, indent=1, default=str)[:3000])
    print(f"wrote {path}")
    return path


def demo_recipe(**run: Any):
    """recipes/demo.yaml with its run folder moved under runs/bench-train."""
    from edgeslim.recipe import load_recipe

    return load_recipe(
        ROOT / "recipes" / "demo.yaml",
        {"run": {"output_dir": str(WORK), "name": "demo-pretrain", "latency_iters": 5, **run}},
    )


def pretrained_demo_model():
    """The demo's pretrain stage (digits 0-4), run once and cached in runs/bench-train."""
    from edgeslim.models.serialize import load_model
    from edgeslim.pipeline import run_pipeline
    from edgeslim.progress import Reporter

    recipe = demo_recipe()
    recipe.stages = [s for s in recipe.stages if s.stage == "pretrain"]
    res = run_pipeline(recipe, Reporter(quiet=True))
    rec = res.stages[0]
    return load_model(rec.dir / rec.model_file), rec.class_names, demo_recipe()


def finetune_cfg(recipe):
    return next(s for s in recipe.stages if s.stage == "finetune")
