"""The run record (run.json): resolved recipe, versions, host, and one entry per stage."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import time
from pathlib import Path
from typing import Any

from edgeslim.fsutil import atomic_write_json

SCHEMA = "edgeslim.run/1"
_PACKAGES = ("torch", "torchvision", "onnx", "onnxruntime", "torch-pruning", "numpy", "edgeslim")


def versions() -> dict[str, str | None]:
    """Installed versions, read from package metadata (nothing heavy is imported)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def host_info(with_gpu: bool = True) -> dict[str, Any]:
    """Host fingerprint: CPU model, cores, OS, and the GPU when torch sees one."""
    info: dict[str, Any] = {"hostname": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(),
                            "machine": platform.machine(), "os": f"{platform.system()} {platform.release()}",
                            "gpu": None}
    if with_gpu:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
            info["cuda"] = torch.version.cuda
    return info


def new_record(name: str, recipe: dict[str, Any], recipe_hash: str, seed: int) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return {"schema": SCHEMA, "name": name, "status": "running", "created": now, "updated": now,
            "recipe_hash": recipe_hash, "seed": seed, "versions": versions(), "host": host_info(),
            "recipe": recipe, "stages": [], "final": {}}


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    record["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write_json(run_dir / "run.json", record)
