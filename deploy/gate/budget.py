"""Hard budgets for ``edgeslim check --budget``: latency per device profile, size, MACs, accuracy.

Budget file (YAML, committed next to the code)::

    profile: default            # profile used when --profile is not given
    latency_ms:                 # ceiling on the candidate's median latency, per device profile
      default: 5.0
      rpi4: 40
    p99_ms: {default: 12}       # optional ceiling on p99, per device profile
    max_size_mb: 5              # artifact file size
    max_params: 2000000
    max_macs: 60000000
    min_accuracy: 0.90          # test accuracy (0..1) of the candidate
    accuracy_from: runs/demo/run.json   # run.json or bundle manifest.json, relative to this file
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeslim.errors import InputError, unknown_name

KEYS = (
    "schema",
    "profile",
    "latency_ms",
    "p99_ms",
    "max_size_mb",
    "max_params",
    "max_macs",
    "min_accuracy",
    "accuracy_from",
)


@dataclass
class BudgetResult:
    """One budget line: passed when ``value`` is within ``limit``."""

    name: str
    limit: float
    value: float | None
    passed: bool
    unit: str = ""

    @property
    def message(self) -> str:
        if self.value is None:
            return f"{self.name}: no value to check against {self.limit:g}{self.unit}"
        rel = "<=" if self.name.startswith(("max", "latency", "p99")) else ">="
        state = "ok" if self.passed else "EXCEEDED"
        lim = f"{self.limit:g}{self.unit}"
        return f"{self.name}: {self.value:.4g}{self.unit} (budget {rel} {lim}) {state}"


def _number(path: Path, key: str, v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise InputError(
            f"budget '{path}': {key} must be a non-negative number, got {v!r}; "
            "e.g. max_macs: 60000000 (YAML reads 6e7 as text; write it out)"
        )
    return float(v)


def _per_profile(path: Path, key: str, v: Any) -> dict[str, float]:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return {"default": _number(path, key, v)}
    if not isinstance(v, dict) or not v:
        raise InputError(
            f"budget '{path}': {key} must map device profiles to ms, e.g. "
            f"{key}: {{default: 5.0, rpi4: 40}}; got {v!r}"
        )
    return {str(k): _number(path, f"{key}.{k}", x) for k, x in v.items()}


def load_budget(path: str | Path) -> dict[str, Any]:
    """Read and validate a budget YAML file; every problem is a one-line InputError.

    Read with ``edgeslim.safe_yaml`` (size, alias and depth bounds) like every user YAML.
    """
    from edgeslim.safe_yaml import load_yaml_file

    p = Path(path)
    raw = load_yaml_file(p, "budget file")
    raw = {} if raw is None else raw
    if not isinstance(raw, dict):
        raise InputError(
            f"budget file '{p}' must be a mapping of budget keys; valid: {', '.join(KEYS)}"
        )
    out: dict[str, Any] = {"path": str(p)}
    for key, v in raw.items():
        if key not in KEYS:
            raise unknown_name("budget key", str(key), KEYS, hint=f"in '{p}'")
        if key in ("latency_ms", "p99_ms"):
            out[key] = _per_profile(p, key, v)
        elif key == "accuracy_from":
            out[key] = (
                str((p.parent / str(v)).resolve()) if not Path(str(v)).is_absolute() else str(v)
            )
        elif key in ("profile", "schema"):
            out[key] = str(v)
        else:
            out[key] = _number(p, key, v)
    if "min_accuracy" in out and out["min_accuracy"] > 1:
        raise InputError(
            f"budget '{p}': min_accuracy is a fraction in 0..1, got {out['min_accuracy']:g}; "
            f"write {out['min_accuracy'] / 100:g} for {out['min_accuracy']:g}%"
        )
    return out


def _find_accuracy(obj: Any, depth: int = 0) -> float | None:
    if not isinstance(obj, dict) or depth > 3:
        return None
    for key in ("test_accuracy", "accuracy", "top1"):
        v = obj.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        if isinstance(v, dict):
            found = _find_accuracy(v, depth + 1)
            if found is not None:
                return found
    for key in ("final", "metrics", "eval", "evaluation"):
        found = _find_accuracy(obj.get(key), depth + 1)
        if found is not None:
            return found
    return None


def read_accuracy(source: str | Path, artifact: str | Path | None = None) -> float:
    """Test accuracy from a run's run.json (the stage that made ``artifact``, else the final
    metrics) or from a deploy bundle's manifest.json."""
    p = Path(source)
    if p.is_dir():
        p = p / ("manifest.json" if (p / "manifest.json").is_file() else "run.json")
    if p.name == "run.json":  # through the run record reader: a killed run reads "interrupted"
        from edgeslim.runrecord import read_record

        obj: Any = read_record(p.parent)
    else:
        try:
            obj = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(
                f"cannot read accuracy from '{p}' ({exc}); pass a run.json or a bundle "
                "manifest.json with --accuracy-from"
            ) from exc
    if isinstance(obj, dict) and isinstance(obj.get("stages"), list):
        acc = _accuracy_of_stage(obj["stages"], p.parent, artifact)
        if acc is not None:
            return acc
    acc = _find_accuracy(obj)
    if acc is None:
        state = obj.get("status") if isinstance(obj, dict) else None
        why = f" (the run is {state})" if state in ("interrupted", "failed", "running") else ""
        raise InputError(
            f"'{p}' holds no test_accuracy/accuracy{why}; pass a run.json or a bundle "
            "manifest.json that records one"
        )
    if not math.isfinite(acc):
        raise InputError(f"'{p}' records a test accuracy of {acc}; rerun the stage that measured it")
    return acc


def _accuracy_of_stage(
    stages: list[Any], run_dir: Path, artifact: str | Path | None
) -> float | None:
    done = [s for s in stages if isinstance(s, dict) and s.get("status") == "completed"]
    if artifact is not None:
        target = Path(artifact).resolve()
        for s in done:
            art = s.get("artifact")
            if art and (run_dir / art).resolve() in (target, target / "model.onnx"):
                return _find_accuracy(s.get("metrics"))
    for s in reversed(done):
        acc = _find_accuracy(s.get("metrics"))
        if acc is not None:
            return acc
    return None


def auto_accuracy_source(artifact: str | Path) -> Path | None:
    """run.json of the run a stage artifact (or run folder) belongs to, or its bundle's manifest."""
    p = Path(artifact)
    folder = p if p.is_dir() else p.parent
    for cand in (folder / "manifest.json", folder / "run.json", folder.parent / "run.json"):
        if cand.is_file():
            return cand
    return None


def check_budgets(
    budget: dict[str, Any], candidate: dict[str, Any], profile: str | None, accuracy: float | None
) -> list[BudgetResult]:
    """Check a candidate's bench figures (median_ms, p99_ms, artifact size/params/macs)."""
    art = candidate.get("artifact", {})
    prof = profile or budget.get("profile") or "default"
    res: list[BudgetResult] = []
    for key, stat in (("latency_ms", "median_ms"), ("p99_ms", "p99_ms")):
        if key in budget:
            table = budget[key]
            if prof not in table:
                raise unknown_name(
                    "device profile",
                    prof,
                    table,
                    hint=f"add it under {key} in '{budget['path']}' or pass --profile",
                )
            v = candidate.get(stat)
            res.append(
                BudgetResult(
                    f"{key}[{prof}]", table[prof], v, v is not None and v <= table[prof], " ms"
                )
            )
    for key, field, scale, unit in (
        ("max_size_mb", "size_bytes", 2**20, " MiB"),
        ("max_params", "params", 1, ""),
        ("max_macs", "macs", 1, ""),
    ):
        if key in budget:
            raw = art.get(field)
            v = None if raw is None else raw / scale
            res.append(BudgetResult(key, budget[key], v, v is not None and v <= budget[key], unit))
    if "min_accuracy" in budget:
        ok = accuracy is not None and accuracy >= budget["min_accuracy"]
        res.append(BudgetResult("min_accuracy", budget["min_accuracy"], accuracy, ok))
    return res
