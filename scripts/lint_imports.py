#!/usr/bin/env python3
"""Check the import-layer contracts of pyproject.toml ([tool.importlinter]); exit 0 when they hold.

Why not plain ``lint-imports``: compress/, deploy/, models/ and calibration/ live at the top of
the repo and install as ``edgeslim.compress`` etc. through setuptools' package-dir. import-linter
(grimp) finds a package by walking its folder, so it sees only edgeslim/ and silently drops every
import of ``edgeslim.deploy.*`` -- a contract about deploy would pass vacuously. This script lays
out the installed package as symlinks in a temporary folder (edgeslim/* plus each mapped folder),
puts it first on sys.path and runs import-linter there.

    .venv/bin/python scripts/lint_imports.py [--contract ID ...] [--config FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FALLBACK_DIRS = {"edgeslim": "edgeslim", "edgeslim.compress": "compress", "edgeslim.deploy": "deploy",
                 "edgeslim.models": "models", "edgeslim.calibration": "calibration"}


def package_dirs() -> dict[str, str]:
    """setuptools' package-dir mapping from pyproject.toml."""
    try:
        import tomllib
    except ImportError:  # Python 3.10: the mapping as it stands
        return FALLBACK_DIRS
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return data.get("tool", {}).get("setuptools", {}).get("package-dir", FALLBACK_DIRS)


def build_tree(dest: Path) -> Path:
    """dest/edgeslim/: a symlink per entry of edgeslim/ and per mapped sub-package."""
    pkg = dest / "edgeslim"
    pkg.mkdir()
    for entry in (ROOT / "edgeslim").iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for name, folder in package_dirs().items():
        if name != "edgeslim" and name.startswith("edgeslim."):
            (pkg / name.split(".", 1)[1]).symlink_to(ROOT / folder)
    return dest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--contract", action="append", default=[], help="check only this contract id")
    ap.add_argument("--config", default=str(ROOT / "pyproject.toml"), help="import-linter config file")
    args = ap.parse_args(argv)
    from importlinter.cli import lint_imports

    cwd = os.getcwd()
    args.config = str(Path(args.config).resolve())  # before the chdir below
    with tempfile.TemporaryDirectory(prefix="edgeslim-lint-") as tmp:
        sys.path.insert(0, str(build_tree(Path(tmp))))
        # import-linter puts the working directory first on sys.path: run from the tree so the
        # repo's own edgeslim/ (without the mapped folders) is not the one found.
        os.chdir(tmp)
        try:
            return lint_imports(config_filename=args.config, no_cache=True,
                                limit_to_contracts=tuple(args.contract))
        finally:
            os.chdir(cwd)
            sys.path.remove(tmp)


if __name__ == "__main__":
    sys.exit(main())
