"""One model of the zoo, step by step (runs inside the worker process, see ``worker.py``).

Each step is recorded with its status (``ok``, ``gate_failed``, ``failed``, ``skipped``), the
error class and first line of its error, and its duration. A step whose prerequisite did not
pass is ``skipped``; independent steps still run (a failed INT8 step does not stop the FP32
latency). After every step the partial row is written to ``progress.json`` (atomically), so a
crash or a hang in a later step still leaves what was measured and names the step it died in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeslim.fsutil import atomic_write_json
from edgeslim.zoo import steps

PROGRESS = "progress.json"
OOM_MARKERS = ("can't allocate memory", "cannot allocate memory", "bad_alloc", "out of memory",
               "failed to allocate")


def error_class(exc: BaseException) -> str:
    """The class recorded for an exception: ``OutOfMemory`` for any allocation failure, else the
    root cause's class (edgeslim's own wrappers -- "export failed with both exporters" -- say
    less about what broke than the library error they wrap)."""
    chain = [exc]
    while chain[-1].__cause__ is not None and len(chain) < 20:
        chain.append(chain[-1].__cause__)
    text = " ".join(f"{type(e).__name__} {e}" for e in chain).lower()
    if any(isinstance(e, MemoryError) for e in chain) or any(m in text for m in OOM_MARKERS):
        return "OutOfMemory"
    return type(chain[-1]).__name__


def first_line(text: str, limit: int = 300) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return (lines[0] if lines else "")[:limit]


class Recorder:
    """Runs steps, records each, and keeps ``progress.json`` current."""

    def __init__(self, task: dict[str, Any], model_dir: Path):
        self.dir = model_dir
        self.row: dict[str, Any] = {"steps": [], "metrics": {}, "running": None, "done": False}
        self.task = task
        self._save()

    def status(self, name: str) -> str | None:
        return next((s["status"] for s in self.row["steps"] if s["name"] == name), None)

    def run(self, name: str, fn: Callable[[], dict[str, Any] | None], needs: tuple[str, ...] = ()) -> bool:
        """Run step ``name`` unless a needed step did not pass; True when it passed."""
        blocked = [n for n in needs if self.status(n) != "ok"]
        step: dict[str, Any] = {"name": name, "status": "skipped", "duration_s": 0.0}
        if blocked:
            step["error"] = f"needs {', '.join(blocked)}"
            self.row["steps"].append(step)
            self._save()
            return False
        self.row["running"] = name
        self._save()
        t0 = time.perf_counter()
        try:
            out = fn() or {}
            gate = out.pop("_gate", None)
            self.row["metrics"].update(out)
            step["status"] = "gate_failed" if gate else "ok"
            if gate:
                step["error_class"], step["error"] = "GateError", gate
        except Exception as exc:  # any library error is this model's result, never the sweep's end
            step.update(status="failed", error_class=error_class(exc), error=first_line(f"{exc}") or repr(exc))
        step["duration_s"] = round(time.perf_counter() - t0, 3)
        self.row["steps"].append(step)
        self.row["running"] = None
        self._save()
        return step["status"] == "ok"

    def finish(self) -> dict[str, Any]:
        self.row["done"] = True
        self._save()
        return self.row

    def _save(self) -> None:
        atomic_write_json(self.dir / PROGRESS, self.row)


def run_model(task: dict[str, Any], model_dir: Path) -> dict[str, Any]:
    """All steps for one model; returns the steps and metrics (``status`` is decided by the caller)."""
    s = task["settings"]
    rec = Recorder(task, model_dir)
    ctx: dict[str, Any] = {"dir": model_dir, "task": task, "s": s}
    rec.run("build", lambda: steps.build(ctx))
    rec.run("export", lambda: steps.export(ctx), needs=("build",))
    rec.run("checker", lambda: steps.checker(ctx), needs=("export",))
    rec.run("fp32_parity", lambda: steps.fp32_parity(ctx), needs=("export",))
    if "int8" in s["precisions"]:
        rec.run("int8", lambda: steps.int8(ctx), needs=("export",))
        rec.run("int8_agreement", lambda: steps.int8_agreement(ctx), needs=("int8",))
    for backend in s["backends"]:
        for precision in s["precisions"]:
            need = ("export",) if precision == "fp32" else ("int8",)
            rec.run(f"latency:{backend}/{precision}", lambda b=backend, p=precision: steps.latency(ctx, b, p),
                    needs=need)
    rec.run("sizes", lambda: steps.sizes(ctx), needs=("export",))
    return rec.finish()
