"""Shared pieces of the zoo tests: tiny models in a user's file, zoo files, running the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

NETS = '''
import os, time
import torch
from torch import nn


class Small(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.f = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.f(x))


class Hang(Small):
    def forward(self, x):
        while True:
            time.sleep(0.5)


class Abort(Small):
    def forward(self, x):
        os.abort()


class Raise(Small):
    def forward(self, x):
        raise ValueError("this model raises on purpose")


class Gated(Small):
    # waits until the test creates `release` beside this file: a model "in flight" on any machine
    def forward(self, x):
        from pathlib import Path

        while not Path(__file__).with_name("release").exists():
            time.sleep(0.05)
        return super().forward(x)


class Hog(Small):
    def forward(self, x):
        # 12 GiB of address space: refused under the test's 8 GiB cap, never touched otherwise
        big = torch.empty(3 * 2**30, dtype=torch.float32)
        return self.fc(self.f(x)) + big[:1]
'''

# Fast settings for every test zoo: 32 px, FP32 + INT8, few latency runs, and the TorchScript
# exporter (about 0.8 s a tiny model against 4-5 s for dynamo; the isolation test keeps the
# default `auto`, i.e. dynamo, which the sweeps in benchmarks/ use).
FAST = {"input_size": 32, "latency_iters": 3, "latency_warmup": 1, "parity_samples": 8,
        "calibration_samples": 8, "timeout_s": 240, "exporter": "torchscript"}


def write_nets(folder: Path) -> Path:
    path = folder / "nets.py"
    path.write_text(NETS)
    return path


def write_zoo(path: Path, models: list[dict[str, Any]], **defaults: Any) -> Path:
    path.write_text(yaml.safe_dump({**FAST, **defaults, "models": models}, sort_keys=False))
    return path


def zoo_cmd(*args: Any) -> list[str]:
    return [sys.executable, "-m", "edgeslim", "zoo", *map(str, args)]


def run_zoo(*args: Any, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(zoo_cmd(*args), cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def rows(out: Path) -> list[dict[str, Any]]:
    from edgeslim.zoo.results import read_rows

    return read_rows(out / "results.jsonl")


def by_model(out: Path) -> dict[str, dict[str, Any]]:
    return {r["model"]: r for r in rows(out)}


# The fields that must not depend on where or when a model ran (not durations or latencies).
STABLE = ("key", "model", "status", "failed_step", "error_class")
STABLE_METRICS = ("max_rel_err", "agreement", "int8_agreement", "int8_rel_err", "fp32_bytes", "int8_bytes",
                  "opset", "exporter", "params", "input_shape")


def stable(row: dict[str, Any]) -> dict[str, Any]:
    m = row.get("metrics") or {}
    return {**{k: row.get(k) for k in STABLE}, **{k: m.get(k) for k in STABLE_METRICS},
            "steps": [(s["name"], s["status"]) for s in row["steps"]]}


def matrix_rows(out: Path) -> dict[str, dict[str, str]]:
    import csv

    with open(out / "matrix.csv", newline="") as fh:
        return {r["model"]: r for r in csv.DictReader(fh)}
