"""The import-layer contracts hold, and the checker really sees compress/, deploy/, models/.

Plain ``lint-imports`` drops every import of a package-dir-mapped folder (edgeslim.deploy.*), so
a contract about them would pass vacuously; scripts/lint_imports.py lays out the installed tree.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "lint_imports.py"

pytestmark = pytest.mark.skipif(importlib.util.find_spec("importlinter") is None,
                                reason="import-linter is not installed (requirements-dev.txt)")


def _lint(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, cwd=ROOT)


def test_contracts_in_pyproject_hold():
    r = _lint()
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def test_a_violation_through_a_mapped_folder_is_caught(tmp_path):
    # runtime.torch_backend imports edgeslim.models.serialize (a package-dir-mapped folder):
    # forbidding it must break, proving the checker sees edges into mapped folders.
    cfg = tmp_path / "contracts.toml"
    cfg.write_text(
        '[tool.importlinter]\nroot_package = "edgeslim"\n\n'
        '[[tool.importlinter.contracts]]\nname = "probe"\ntype = "forbidden"\n'
        'source_modules = ["edgeslim.runtime.torch_backend"]\nforbidden_modules = ["edgeslim.models"]\n'
    )
    r = _lint("--config", str(cfg))
    assert r.returncode == 1 and "edgeslim.runtime.torch_backend -> edgeslim.models.serialize" in r.stdout


def test_layers_contract_sees_deploy_subpackages_using_the_runtime(tmp_path):
    # The layers contract must see imports out of deploy's subpackages (deploy/gate/...): with
    # the runtime put ABOVE deploy, the gate's use of the runtime layer must break it.
    cfg = tmp_path / "contracts.toml"
    cfg.write_text(
        '[tool.importlinter]\nroot_package = "edgeslim"\n\n'
        '[[tool.importlinter.contracts]]\nname = "probe"\ntype = "layers"\n'
        'layers = ["edgeslim.runtime", "edgeslim.deploy"]\n'
    )
    r = _lint("--config", str(cfg))
    assert r.returncode == 1 and "edgeslim.deploy.gate.artifact -> edgeslim.runtime" in r.stdout, r.stdout[-2000:]


def test_make_lint_runs_the_import_contracts():
    assert "$(PY) scripts/lint_imports.py" in (ROOT / "Makefile").read_text()
