"""Shared test fixtures: fixed seeds, tiny data, recipe files, in-process CLI, marker skips."""

from __future__ import annotations

import os
import random
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

torch.set_num_threads(min(2, os.cpu_count() or 1))


def _has_cuda() -> bool:
    return torch.cuda.is_available()


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return _has_cuda()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip marker-gated tests with a clear reason when this machine lacks what they need."""
    reasons = {
        "cuda": None if _has_cuda() else "no CUDA GPU on this machine",
        "tensorrt": None if _has_tensorrt()
        else "TensorRT (pip install 'edgeslim[tensorrt]') and a CUDA GPU are needed",
        "ssh": None if shutil.which("sshd") or Path("/usr/sbin/sshd").exists()
        else "OpenSSH server not installed (make test installs it: scripts/ensure-sshd.sh)",
    }
    for item in items:
        for mark, why in reasons.items():
            if why and mark in item.keywords:
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def tiny_data_spec() -> dict[str, Any]:
    """A 4-class synthetic shapes task at 16 px: trains to high accuracy in seconds."""
    return {"source": "synthetic", "image_size": 16, "channels": 3, "synthetic_classes": 4,
            "synthetic_per_class": 40, "val_fraction": 0.2, "test_fraction": 0.25}


@pytest.fixture
def tiny_data(tiny_data_spec):
    from edgeslim.data import build_data
    from edgeslim.recipe import DataSpec

    return build_data(DataSpec(**tiny_data_spec), seed=0)


@pytest.fixture
def write_recipe(tmp_path: Path, tiny_data_spec):
    """write_recipe(stages=[...], **sections) -> Path of a recipe whose run dir is under tmp_path."""

    def _write(stages: list[dict[str, Any]] | None = None, name: str = "t", **sections: Any) -> Path:
        recipe = {"run": {"name": name, "output_dir": str(tmp_path / "runs"), "seed": 0, "threads": 1,
                          "latency_iters": 5},
                  "model": {"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}},
                  "data": dict(tiny_data_spec),
                  "stages": stages if stages is not None else [{"stage": "finetune", "train": {"epochs": 1}}]}
        for k, v in sections.items():
            recipe[k] = {**recipe.get(k, {}), **v} if isinstance(v, dict) else v
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(recipe, sort_keys=False))
        return path

    return _write


@pytest.fixture
def cli(capsys):
    """Run the edgeslim CLI in-process: returns (exit_code, stdout, stderr)."""
    from edgeslim.cli import main

    def _run(*args: str) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return _run


@pytest.fixture
def python() -> str:
    return sys.executable
