"""`edgeslim search --remote`: every artifact timed by its bundle runner over a REAL sshd on 127.0.0.1
(the device is a venv holding only numpy + onnxruntime, as on a board; nothing mocked)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from bench_helpers import device_python  # noqa: E402
from test_remote import sshd  # noqa: E402, F401  (the module-scoped throwaway sshd fixture)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_search_run import _recipe  # noqa: E402

pytestmark = pytest.mark.ssh


def test_search_times_artifacts_on_the_remote_device(sshd, tmp_path, capsys):  # noqa: F811
    from edgeslim.cli import main

    search = {"trials": 1, "sampler": "random", "latency": {"warmup": 1, "min_iters": 5, "min_time_s": 0.0},
              "params": {"precision": {"choices": ["fp32"]}}}
    recipe = _recipe(tmp_path, "remote", search)
    py = device_python(tmp_path / "device")
    d = sshd["dir"]
    code = main(["search", str(recipe), "-q", "--remote", sshd["target"], "--known-hosts", str(d / "known_hosts"),
                 "--identity", str(d / "user_key"), "--remote-python", str(py)])
    err = capsys.readouterr().err
    assert code == 0, err
    sdir = tmp_path / "runs" / "remote" / "search"
    point = json.loads((sdir / "pareto.json").read_text())[0]
    assert point["latency_ms"] > 0 and point["backend"] == "onnxruntime"
    summary = json.loads((sdir / "summary.json").read_text())
    assert summary["remote"] == sshd["target"] and summary["latency_measured"]["where"] == f"remote {sshd['target']}"
    cached = [json.loads(p.read_text()) for p in (sdir / "cache").glob("*.latency-*.json")]
    assert len(cached) == 1 and cached[0]["where"].startswith("remote ")
    assert cached[0]["device"]  # the runner's own host record came back over SSH
