"""The run record (run.json): resolved recipe, versions, host, and one entry per stage."""

from __future__ import annotations

import importlib.metadata as md
import os
import platform
import time
from pathlib import Path
from typing import Any

from edgeslim.errors import InputError
from edgeslim.fsutil import atomic_write_json

SCHEMA = "edgeslim.run/1"
_PACKAGES = ("torch", "torchvision", "onnx", "onnxruntime", "openvino", "torch-pruning", "numpy", "matplotlib",
             "edgeslim")


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
            "recipe_hash": recipe_hash, "seed": seed, "versions": versions(), "host": run_host_info(),
            "recipe": recipe, "stages": [], "final": {}}


def run_host_info() -> dict[str, Any]:
    """host_info plus what the report's environment section shows: the CPU flags that decide
    INT8/BF16 speed and torch's intra-op threads as the run set them."""
    import torch

    from edgeslim.runtime.portable import CPU_FLAGS, cpu_features

    info = host_info()
    feats = cpu_features()
    info["cpu_flags"] = {f: bool(feats.get(f)) for f in CPU_FLAGS} if feats.get("known") else None
    info["torch_threads"] = torch.get_num_threads()
    return info


def write_record(run_dir: Path, record: dict[str, Any]) -> None:
    record["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    atomic_write_json(run_dir / "run.json", record)


def load_record_file(path: Path) -> dict[str, Any]:
    """run.json as a dict, or a one-line InputError (missing, a folder, unreadable, not JSON)."""
    import json
    import stat

    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"'{path.parent}' is not an edgeslim run folder (no run.json); give runs/<name> "
                         "of an `edgeslim run`") from None
    except OSError as exc:
        raise InputError(f"run record '{path}' cannot be read ({exc.strerror})") from exc
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"run record '{path}' is not a file (a folder or special file is in its place); "
                         "move it away and rerun the recipe to write a new one")
    try:
        rec = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(f"run record '{path}' cannot be read ({exc.strerror}); check its permissions") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"run record '{path}' is not valid JSON ({exc}); rerun the recipe to rewrite it") from exc
    if not isinstance(rec, dict) or not isinstance(rec.get("stages", []), list):
        raise InputError(f"run record '{path}' is not an edgeslim run record; rerun the recipe to rewrite it")
    return rec


def read_record(run_dir: str | os.PathLike) -> dict[str, Any]:
    """run.json of ``run_dir`` with a truthful status.

    A run killed with -9 cannot mark itself, so its record still says ``running``. A live run
    always holds the folder's lock (see :mod:`edgeslim.runlock`): "running" with nobody holding
    the lock is reported as ``interrupted`` (and so is the stage it was in).
    """
    from edgeslim.runlock import lock_holder

    rec = load_record_file(Path(run_dir) / "run.json")
    if rec.get("status") == "running" and lock_holder(run_dir) is None:
        mark_interrupted(rec)
    return rec


def mark_interrupted(rec: dict[str, Any]) -> None:
    rec["status"] = "interrupted"
    for st in rec.get("stages", []):
        if isinstance(st, dict) and st.get("status") == "running":
            st["status"] = "interrupted"
