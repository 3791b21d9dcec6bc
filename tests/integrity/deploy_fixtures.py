"""Shared by tests/integrity/test_deploy_*.py: one finished run and one bundle, built once.

Module globals cache them for the whole session (the test modules import this file through
sys.path, so it is imported once): a tiny run takes seconds, and every test copies what it
changes.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

_CACHE: dict[str, Path] = {}


# The run's model must be trained, not at chance: a chance-level run warns on stderr, and a
# warning printed while a test's first command is captured leaks into that command's output.
MIN_TEST_ACCURACY = 0.6


def finished_run(tmp_path_factory: Any) -> Path:
    """runs/d of a tiny finished recipe: finetune + export, 16 px, 4 synthetic shapes, trained
    well above chance (checked: test accuracy >= MIN_TEST_ACCURACY)."""
    if "run" not in _CACHE:
        from edgeslim.pipeline import run_pipeline
        from edgeslim.progress import NULL
        from edgeslim.recipe import parse_recipe

        out = tmp_path_factory.mktemp("integrity-runs")
        recipe = parse_recipe(
            {
                "run": {"name": "d", "output_dir": str(out), "threads": 1, "latency_iters": 5},
                "model": {"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}},
                "data": {
                    "source": "synthetic",
                    "image_size": 16,
                    "synthetic_classes": 4,
                    "synthetic_per_class": 60,
                    "val_fraction": 0.2,
                    "test_fraction": 0.25,
                },
                "stages": [
                    {"stage": "finetune", "train": {"epochs": 12, "batch_size": 16, "optimizer": {"lr": 0.005}}},
                    {"stage": "export"},
                ],
            }
        )
        res = run_pipeline(recipe, NULL)
        acc = res.stages[0].metrics["test_accuracy"]
        # 60 test images, chance 0.25: 0.6 is 6 binomial SDs above a guesser, and the model
        # reaches 0.95 (AMD EPYC, 4 s), 21 images above the threshold: no CPU's kernels flip it.
        assert acc >= MIN_TEST_ACCURACY, f"fixture run trained to only {acc:.3f} (min {MIN_TEST_ACCURACY})"
        _CACHE["run"] = res.run_dir
    return _CACHE["run"]


def bundle_copy(tmp_path_factory: Any, dest: Path) -> Path:
    """A fresh copy of an x86-cpu bundle (with its test images) at ``dest``."""
    if "bundle" not in _CACHE:
        from edgeslim.deploy.bundle.build import build_bundle

        b = tmp_path_factory.mktemp("integrity-bundle") / "bundle"
        build_bundle(finished_run(tmp_path_factory), b, "x86-cpu", tarball=False)
        _CACHE["bundle"] = b
    shutil.copytree(_CACHE["bundle"], dest)
    return dest


def one_line_error(err: str) -> bool:
    """A single 'error: ...' line on stderr, no traceback."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    return len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err
