"""One tiny run shared by the report tests (fine-tune, INT8, export), run as a user runs it:
``edgeslim run recipe.yaml > log`` in a separate process."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from report_helpers import run_cli, tiny_recipe  # noqa: E402

# The suite's generous cap (tests/conftest.py) for a process on a loaded CI machine.
WAIT_CAP_S = float(os.environ.get("EDGESLIM_TEST_WAIT_CAP_S", "600"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("report")
    recipe = tiny_recipe(root, "r")
    p = run_cli(["run", str(recipe)], root, WAIT_CAP_S, stdout_file=root / "log")
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return {"root": root, "recipe": recipe, "run_dir": root / "runs" / "r", "stdout": p.stdout, "stderr": p.stderr}


@pytest.fixture
def run_copy(tiny_run: dict, tmp_path: Path) -> Path:
    """A copy of the tiny run folder that a test may change."""
    dst = tmp_path / "runs" / "r"
    shutil.copytree(tiny_run["run_dir"], dst)
    return dst
