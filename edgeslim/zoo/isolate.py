"""Run one zoo task in a worker process and turn whatever happens into a row.

A worker that finishes gives its steps; one that hangs past ``timeout_s`` is killed (its whole
process group); one that dies by a signal (a segfault, ``abort()``), exits early or runs out
of memory becomes a ``failed`` row naming the step it was in and why. Nothing a model does can
end the sweep. ``run_task`` is the function both the local pool and Ray run.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from edgeslim.zoo.task import OOM_MARKERS, PROGRESS, first_line

SCHEMA = "edgeslim.zoo.row/1"
CRASH_SIGNALS = ("SIGSEGV", "SIGABRT", "SIGBUS", "SIGILL", "SIGFPE")
_RUNNING: dict[int, subprocess.Popen] = {}  # pid -> worker, so an interrupted sweep can kill them


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def run_task(task: dict[str, Any], out_dir: str, memory_bytes: int | None) -> dict[str, Any]:
    """Run ``task`` in ``out_dir/<folder>/`` (emptied first) and return its row."""
    model_dir = Path(out_dir) / task["folder"]
    shutil.rmtree(model_dir, ignore_errors=True)
    model_dir.mkdir(parents=True)
    (model_dir / "task.json").write_text(json.dumps(task, indent=1))
    s = task["settings"]
    threads = str(s["threads"])
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "PYTHONUNBUFFERED": "1",
           "EDGESLIM_ZOO_PARENT": str(os.getpid())}
    cmd = [sys.executable, "-m", "edgeslim.zoo.worker", str(model_dir / "task.json"),
           "--memory-bytes", str(int(memory_bytes or machine_ram()))]
    cwd = task.get("cwd") if task.get("cwd") and Path(task["cwd"]).is_dir() else None
    started, t0 = now(), time.monotonic()
    timed_out = False
    with open(model_dir / "worker.log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)
        _RUNNING[proc.pid] = proc
        try:
            rc = proc.wait(timeout=float(s["timeout_s"]))
        except subprocess.TimeoutExpired:
            timed_out = True
            _where_it_hangs(proc)
            _kill_group(proc)
            rc = proc.wait()
        finally:
            _kill_group(proc)  # grandchildren a model may have started
            _RUNNING.pop(proc.pid, None)
    progress = _read_progress(model_dir)
    row = make_row(task, progress, rc, timed_out, _log_tail(model_dir / "worker.log"))
    row.update(duration_s=round(time.monotonic() - t0, 2), started_at=started, finished_at=now(),
               host=platform.node())
    return row


def machine_ram() -> int:
    """Physical memory in bytes: the default address-space cap of a worker (0 when unknown)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0


def error_row(task: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """A failed row for a task whose worker could not even be run (disk full, a lost Ray node)."""
    row = make_row(task, {"steps": [], "done": True}, 0, False, [])
    step = {"name": "(driver)", "status": "failed", "error_class": type(exc).__name__,
            "error": first_line(str(exc)) or repr(exc), "duration_s": None}
    row.update(steps=[step], status="failed", failed_step=step["name"], error_class=step["error_class"],
               error=step["error"], duration_s=None, started_at=None, finished_at=now(), host=platform.node())
    return row


def kill_all() -> None:
    """Kill every running worker (an interrupted sweep; kill -9 is handled by PR_SET_PDEATHSIG)."""
    for proc in list(_RUNNING.values()):
        _kill_group(proc)


def _where_it_hangs(proc: subprocess.Popen) -> None:
    """Ask the worker's faulthandler for its stack (into worker.log) before it is killed."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(proc.pid, signal.SIGUSR1)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=2.0)  # a grace for the dump; the worker does not exit on SIGUSR1


def python_frame(tail: list[str]) -> str:
    """' in file.py:LINE (func)' from the last faulthandler dump, else ''.

    The newest frame outside the Python installation (the user's model code) when there is
    one, else the newest frame.
    """
    import re

    starts = [i for i, ln in enumerate(tail) if "most recent call first" in ln]
    frames = []
    for ln in tail[starts[-1] + 1:] if starts else []:
        m = re.search(r'File "(.+)", line (\d+) in (\S+)', ln)
        if not m:
            break
        frames.append(m)
    lib = (sys.prefix, sys.base_prefix, "<frozen", str(Path(__file__).resolve().parents[1]))
    ours = [m for m in frames if not m[1].startswith(lib)]
    m = (ours or frames or [None])[0]
    return f" in {Path(m[1]).name}:{m[2]} ({m[3]})" if m else ""


def _kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _read_progress(model_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((model_dir / PROGRESS).read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _log_tail(path: Path, n: int = 400) -> list[str]:
    try:
        with open(path, "rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - 65536))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return []
    return [ln for ln in text.splitlines() if ln.strip()][-n:]


def make_row(task: dict[str, Any], progress: dict[str, Any], rc: int, timed_out: bool,
             tail: list[str]) -> dict[str, Any]:
    """The row for a finished, crashed or killed worker (status, failing step, error class)."""
    steps = list(progress.get("steps") or [])
    row: dict[str, Any] = {"schema": SCHEMA, "key": task["key"], "model": task["name"], "folder": task["folder"],
                           "source": task["source"], "settings": task["settings"], "versions": task["versions"],
                           "metrics": dict(progress.get("metrics") or {}), "worker_exit": rc}
    if not (progress.get("done") and rc == 0 and not timed_out):
        step = progress.get("running") or ("(worker start)" if not steps else "(after last step)")
        cls, why = _process_failure(rc, timed_out, float(task["settings"]["timeout_s"]), tail)
        steps.append({"name": step, "status": "failed", "error_class": cls, "error": why, "duration_s": None})
    row["steps"] = steps
    failed = next((st for st in steps if st["status"] == "failed"), None)
    gated = next((st for st in steps if st["status"] == "gate_failed"), None)
    worst = failed or gated
    row["status"] = "failed" if failed else "gate_failed" if gated else "ok"
    row["failed_step"] = worst["name"] if worst else None
    row["error_class"] = worst.get("error_class") if worst else None
    row["error"] = worst.get("error") if worst else None
    return row


def _process_failure(rc: int, timed_out: bool, timeout: float, tail: list[str]) -> tuple[str, str]:
    """(error class, one-line reason) for a worker that gave no finished row."""
    fatal = [ln for ln in tail if ln.startswith("Fatal Python error")]
    plain = [ln for ln in tail if not ln.startswith(("Extension modules", "  File ", "Current thread", "Thread 0x"))]
    last = first_line((fatal or plain or [""])[-1])
    oom = any(m in " ".join(tail[-10:]).lower() for m in OOM_MARKERS)
    where = python_frame(tail)
    if timed_out:
        return "Timeout", f"no result within timeout_s={timeout:g} s; killed while{where or ' running'}"
    if rc < 0:
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = f"signal {-rc}"
        if oom:
            return "OutOfMemory", f"killed by {name} after an allocation failed: {last}"
        if name == "SIGKILL":
            return "Killed", "killed by SIGKILL (the kernel's OOM killer, or another process)"
        cls = "Crash" if name in CRASH_SIGNALS else "Killed"
        return cls, f"worker died with {name}{where}" + (f"; last output: {last}" if last else "")
    if oom:
        return "OutOfMemory", f"worker exited with code {rc} after an allocation failed: {last}"
    return "WorkerExit", f"worker exited with code {rc} before finishing" + (f"; last output: {last}" if last else "")
