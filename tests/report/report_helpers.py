"""Helpers of the report tests: a tiny recipe, running the CLI as a user does, reading the page."""

from __future__ import annotations

import html.parser
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

FINETUNE_EPOCHS = 2


def tiny_recipe(root: Path, name: str, stages: list[dict[str, Any]] | None = None) -> Path:
    """tinycnn on scikit-learn's digits at 32 px: fine-tune, static INT8, export (the INT8 stage exists)."""
    recipe = {
        "run": {"name": name, "output_dir": str(root / "runs"), "seed": 0, "threads": 1, "latency_iters": 5},
        "model": {"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}},
        "data": {"source": "digits", "image_size": 32, "channels": 3, "val_fraction": 0.2, "test_fraction": 0.25},
        "stages": stages if stages is not None else [
            {"stage": "finetune", "train": {"epochs": FINETUNE_EPOCHS, "batch_size": 32, "optimizer": {"lr": 0.01}}},
            {"stage": "quantize", "precision": "int8", "calibration": {"samples": 32}},
            {"stage": "export"},
        ],
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def run_cli(args: list[str], cwd: Path, timeout: float, stdout_file: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m edgeslim ARGS`` in a separate process with stdout a file or a pipe: not a terminal,
    as in CI (``EDGESLIM_PROGRESS`` cleared so the test sees the default behaviour)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "EDGESLIM_PROGRESS"}
    if stdout_file is None:
        return subprocess.run([sys.executable, "-m", "edgeslim", *args], cwd=cwd, env=env, capture_output=True,
                              text=True, timeout=timeout)
    with open(stdout_file, "w") as fh:
        p = subprocess.run([sys.executable, "-m", "edgeslim", *args], cwd=cwd, env=env, stdout=fh,
                           stderr=subprocess.PIPE, text=True, timeout=timeout)
    p.stdout = stdout_file.read_text()
    return p


def without_timestamp(page: str) -> str:
    """The page with the one element that records when it was drawn blanked out."""
    return re.sub(r'<span id="generated">[^<]*</span>', '<span id="generated"></span>', page)


class Page(html.parser.HTMLParser):
    """Tags with their attributes, and every table as rows of (row class, cell texts)."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.tables: list[list[tuple[str, list[str]]]] = []
        self._cell: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append((a.get("class", ""), []))
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self.tables and self.tables[-1]:
            self.tables[-1][-1][1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def table_with(self, header: str) -> list[tuple[str, list[str]]]:
        """The first table whose header row has a cell equal to ``header``."""
        for t in self.tables:
            if t and header in t[0][1]:
                return t
        raise AssertionError(f"no table with a '{header}' column")

    def images(self) -> list[str]:
        return [a.get("src", "") for t, a in self.tags if t == "img"]
