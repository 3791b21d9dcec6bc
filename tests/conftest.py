"""Shared test fixtures: fixed seeds, tiny data, recipe files, in-process CLI, marker skips."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

# Under pytest-xdist (make test: two workers on two cores) each worker keeps to one thread, so two
# workers never oversubscribe the cores with spinning OpenMP threads.
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1))

# Tests that wait for another process wait on a condition, never on an assumed speed. The cap only
# ends a test that would otherwise hang; it is generous because CI machines can be loaded many
# times over (a 2-core VM running other jobs took > 120 s for one epoch that takes 3 s idle).
WAIT_CAP_S = float(os.environ.get("EDGESLIM_TEST_WAIT_CAP_S", "600"))
# pytest-timeout's limit for a test that waits (pyproject's default of 300 s is shorter than the cap).
WAIT_TEST_TIMEOUT_S = int(3 * WAIT_CAP_S)


def _wait_for(cond: Callable[[], Any], what: str, proc: subprocess.Popen | None = None,
             cap_s: float | None = None, interval: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something truthy, and return that.

    Fails the test when ``proc`` (if given) exits first, naming its exit code, or when the cap
    passes. ``what`` says what was awaited, for the failure message.
    """
    cap = WAIT_CAP_S if cap_s is None else cap_s
    deadline = time.monotonic() + cap
    while True:
        got = cond()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            got = cond()  # it may have appeared just before the process ended
            if got:
                return got
            pytest.fail(f"the process exited (code {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"waited {cap:.0f} s (the cap; EDGESLIM_TEST_WAIT_CAP_S) and still no {what}")
        time.sleep(interval)


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
        if "wait_for" in getattr(item, "fixturenames", ()) and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(WAIT_TEST_TIMEOUT_S))
        for mark, why in reasons.items():
            if why and mark in item.keywords:
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(autouse=True)
def _seed() -> None:
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(cond, what, proc=None)``: poll a condition with the suite's generous cap.

    ``wait_for.cap_s`` is the same cap, for ``subprocess.run(..., timeout=wait_for.cap_s)``.
    A test using this fixture gets a pytest-timeout above the cap.
    """
    _wait_for.cap_s = WAIT_CAP_S  # type: ignore[attr-defined]
    return _wait_for


@pytest.fixture
def tiny_data_spec() -> dict[str, Any]:
    """A 4-class synthetic shapes task at 16 px (160 images): fast plumbing, not accuracy.

    A tiny CNN stays near chance on it for the first epochs; tests that assert accuracy use
    ``digits_data_spec``.
    """
    return {"source": "synthetic", "image_size": 16, "channels": 3, "synthetic_classes": 4,
            "synthetic_per_class": 40, "val_fraction": 0.2, "test_fraction": 0.25}


@pytest.fixture
def digits_data_spec() -> dict[str, Any]:
    """A real 10-class task for tests that assert accuracy: scikit-learn's digits at 16 px.

    Unlike ``tiny_data_spec`` (which stays near chance after a few epochs), a tiny CNN learns it
    to 0.85-0.95 test top-1 in 2-3 epochs (~1,000 training images, 359 validation, 450 test), so
    accuracy assertions and the compression stages' accuracy guards hold with a wide margin on
    any CPU's kernels. Pass it as ``write_recipe(..., data=digits_data_spec)``.
    """
    return {"source": "digits", "image_size": 16, "channels": 3, "val_fraction": 0.2,
            "test_fraction": 0.25}


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


def _study_states(db: Path) -> dict[int, str]:
    import sqlite3

    con = sqlite3.connect(db)
    try:
        return dict(con.execute("select number, state from trials").fetchall())
    except sqlite3.OperationalError:  # tables not created yet, or locked by the writer
        return {}
    finally:
        con.close()


@pytest.fixture
def study_states() -> Callable[[Path], dict[int, str]]:
    """``study_states(db)``: trial number -> state of an Optuna SQLite study, read while a
    killed or running writer may hold it ({} until its tables exist)."""
    return _study_states
