"""Parts (a) and (c) of benchmarks/reliability_campaign.py: kill -9 + resume, concurrent runs."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

STABLE = ("params", "macs", "size_bytes", "test_accuracy")  # latency is a measurement and varies
CAP_S = 1200.0  # a run that takes longer than this is hung, whatever the machine's load

# A small run through the stages that write the most (training state, pruning, INT8, ONNX). The
# campaign checks integrity, not accuracy: the accuracy guards warn instead of failing, and the
# export gate is loose, so a weak-but-identical model never stops the comparison.
KILL_RECIPE: dict[str, Any] = {
    "run": {"name": "rc", "output_dir": "runs", "seed": 0, "threads": 1, "latency_iters": 5},
    "model": {"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}},
    "data": {"source": "digits", "image_size": 16, "val_fraction": 0.2, "test_fraction": 0.25},
    "stages": [
        {"stage": "finetune", "train": {"epochs": 3, "batch_size": 32, "optimizer": {"lr": 0.01},
                                        "tensorboard": False}},
        {"stage": "prune", "target": {"ratio": 0.3}, "round_to": 4, "on_budget": "warn",
         "recovery": {"train": {"epochs": 1, "batch_size": 32, "tensorboard": False}}},
        {"stage": "quantize", "precision": "int8", "calibration": {"samples": 32}, "latency_iters": 5,
         "sensitivity": {"enabled": False}, "on_budget": "warn"},
        {"stage": "export", "parity": {"quant_min_agreement": 0.5, "quant_max_accuracy_drop": 0.5}},
    ],
}


def run_edgeslim(args: list[str], timeout: float = CAP_S) -> tuple[int | None, str]:
    """`python -m edgeslim ARGS` to completion: (exit code or None when it hung, stderr)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        p = subprocess.run([sys.executable, "-m", "edgeslim", *args], capture_output=True, text=True,
                           timeout=timeout, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:
        return None, (e.stderr or b"").decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
    return p.returncode, p.stderr


def stage_metrics(run_json: Path) -> dict[str, Any]:
    rec = json.loads(run_json.read_text())
    return {"status": rec.get("status"),
            "stages": [{"dir": s.get("dir"), "status": s.get("status"),
                        **{k: (s.get("metrics") or {}).get(k) for k in STABLE}} for s in rec.get("stages", [])]}


def compare_runs(ref: dict[str, Any], got: dict[str, Any]) -> list[str]:
    """Differences in status or stable metrics, one string each (empty: identical)."""
    diffs = []
    if got.get("status") != "completed":
        diffs.append(f"run status {got.get('status')}")
    if len(ref["stages"]) != len(got["stages"]):
        return diffs + [f"{len(got['stages'])} stages vs {len(ref['stages'])}"]
    for a, b in zip(ref["stages"], got["stages"], strict=True):
        for k in ("dir", "status", *STABLE):
            if a.get(k) != b.get(k):
                diffs.append(f"{a.get('dir')}.{k}: {b.get(k)} vs reference {a.get(k)}")
    return diffs


def _leftovers(run_dir: Path) -> list[str]:
    """Temp folders/files a finished run should not leave behind."""
    if not run_dir.is_dir():
        return []
    return sorted(p.name for p in run_dir.iterdir() if ".tmp" in p.name or p.name.endswith(".partial"))


def _in_progress(run_json: Path) -> str | None:
    try:
        stages = json.loads(run_json.read_text()).get("stages", [])
    except (OSError, ValueError):
        return None if not run_json.exists() else "run.json unreadable"
    running = [s.get("dir") for s in stages if s.get("status") == "running"]
    return running[0] if running else f"after {len(stages)} stage(s)"


def kill_trial(i: int, recipe: Path, ref: dict[str, Any], t_ref: float, work: Path,
               rng: random.Random) -> dict[str, Any]:
    """Start a run, SIGKILL it after a random delay, `--resume` it, compare with the reference."""
    out = work / f"kill-{i:02d}"
    run_dir = out / KILL_RECIPE["run"]["name"]
    delay = rng.uniform(0.05, 0.8) * t_ref  # the reference's wall time includes its start-up
    cmd = [sys.executable, "-m", "edgeslim", "run", str(recipe), "-q", "--output-dir", str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        p.wait(timeout=delay)
        killed = False
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        killed = True
    t: dict[str, Any] = {"trial": i, "delay_s": round(delay, 2), "killed": killed,
                         "killed_during": _in_progress(run_dir / "run.json") if killed else None}
    try:
        t["status_after_kill"] = json.loads((run_dir / "run.json").read_text()).get("status")
    except (OSError, ValueError):
        t["status_after_kill"] = None
    if killed and list(run_dir.glob(".resume/*/state.pt")):
        snap = work / f"killed-snapshot-{i:02d}"
        shutil.copytree(run_dir, snap, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
        t["snapshot"] = str(snap)
    t0 = time.monotonic()
    code, err = run_edgeslim(["run", str(recipe), "-q", "--output-dir", str(out), "--resume"])
    t["resume_exit"], t["resume_s"] = code, round(time.monotonic() - t0, 1)
    t["resume_stderr"] = err.strip()[-400:]
    try:
        diffs = compare_runs(ref, stage_metrics(run_dir / "run.json"))
    except (OSError, ValueError) as e:
        diffs = [f"run.json unreadable: {e}"]
    t["differences"], t["identical"] = diffs, code == 0 and not diffs
    t["leftover"] = _leftovers(run_dir)
    shutil.rmtree(out, ignore_errors=True)
    return t


def killed_in_training(recipe: Path, work: Path) -> Path | None:
    """A run killed once its training has saved resume state (``.resume/*/state.pt``), copied aside
    for the corrupt-state cases. Random kill moments may all miss an epoch boundary, so this one
    waits for the state file itself (a condition, not a clock) before the SIGKILL."""
    out = work / "killed-in-training"
    run_dir = out / KILL_RECIPE["run"]["name"]
    cmd = [sys.executable, "-m", "edgeslim", "run", str(recipe), "-q", "--output-dir", str(out)]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + CAP_S
    while not list(run_dir.glob(".resume/*/state.pt")) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    if not list(run_dir.glob(".resume/*/state.pt")):
        return None  # the run finished (or failed) before it saved any state
    snap = work / "killed-snapshot-training"
    shutil.copytree(run_dir, snap, symlinks=True, ignore=shutil.ignore_patterns(".lock"))
    shutil.rmtree(out, ignore_errors=True)
    return snap


def concurrent_trial(i: int, extra: list[str], recipe: Path, ref: dict[str, Any], work: Path) -> dict[str, Any]:
    """A first run holds the run folder; a second `edgeslim run` of the same recipe must be refused."""
    out = work / f"conc-{i}"
    run_dir = out / KILL_RECIPE["run"]["name"]
    base = [sys.executable, "-m", "edgeslim", "run", str(recipe), "-q", "--output-dir", str(out)]
    first = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)
    deadline = time.monotonic() + CAP_S
    # run.json appears once the first run holds the folder's lock; wait on that, not on a clock.
    while not (run_dir / "run.json").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    started = first.poll() is None
    code2, err2 = run_edgeslim(["run", str(recipe), "-q", "--output-dir", str(out), *extra], timeout=600)
    try:
        _, err1 = first.communicate(timeout=CAP_S)
    except subprocess.TimeoutExpired:
        os.killpg(first.pid, signal.SIGKILL)
        _, err1 = first.communicate()
    try:
        diffs = compare_runs(ref, stage_metrics(run_dir / "run.json"))
    except (OSError, ValueError) as e:
        diffs = [f"run.json unreadable: {e}"]
    lines = [ln for ln in err2.strip().splitlines() if ln.strip()]
    t = {"second_argv": extra, "first_was_running": started, "second_exit": code2,
         "second_stderr": err2.strip()[-400:], "second_one_line": len(lines) == 1 and lines[0].startswith("error:"),
         "lock_message": "in use" in err2 or "lock" in err2.lower(), "first_exit": first.returncode,
         "first_stderr": (err1 or "").strip()[-400:], "first_differences": diffs,
         "first_identical": first.returncode == 0 and not diffs}
    t["passed"] = bool(started and code2 == 2 and t["second_one_line"] and t["lock_message"] and t["first_identical"])
    shutil.rmtree(out, ignore_errors=True)
    return t
