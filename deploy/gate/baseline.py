"""Stored baselines: where they live (per host and branch) and what a valid one holds.

A stored baseline is an ``edgeslim bench --json`` result (schema ``edgeslim.bench/1``) with raw
``samples_ms`` and the host fingerprint. Latencies from different machines cannot be compared,
so baselines are kept per host and per branch::

    .edgeslim/baselines/<host key>/<branch>.json   the bench result (samples, host, settings)
    .edgeslim/baselines/models/<branch>.onnx       the model it measured (any host can rerun it)

``host_key`` is readable (machine, CPU model, core count) plus a hash of every fingerprint
field that ``check`` compares (CPU, cores, machine, GPU, GPU driver) and the runtime versions,
so two hosts that ``check`` would refuse to compare never share a folder.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from edgeslim.errors import InputError

BASELINE_DIR = ".edgeslim/baselines"
MIN_SAMPLES = 10  # fewer stored samples cannot give a confidence interval worth deciding on


def _slug(text: str, limit: int = 40) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return s[:limit].strip("-") or "unknown"


def host_key(fp: dict[str, Any] | None = None) -> str:
    """``<machine>-<cpu>-<cores>c-<hash8>`` for a host fingerprint (default: this host's)."""
    from edgeslim.deploy.gate.bench import FINGERPRINT_KEYS, host_fingerprint

    fp = host_fingerprint() if fp is None else fp
    runtimes = fp.get("runtimes") or {}
    ident = {k: fp.get(k) for k in FINGERPRINT_KEYS}
    ident["runtimes"] = {k: runtimes.get(k) for k in ("onnxruntime", "openvino", "tensorrt")}
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]
    cpu = re.sub(r"\((r|tm)\)|\bcpu\b|\bprocessor\b|@.*$", "", str(fp.get("cpu") or ""), flags=re.I)
    return f"{_slug(fp.get('machine') or '', 12)}-{_slug(cpu, 32)}-{fp.get('cores')}c-{digest}"


def branch_file(branch: str) -> str:
    """``feature/x`` -> ``feature-x.json``: one safe file name per branch."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", branch).strip(".-")
    if not name:
        raise InputError(f"branch name {branch!r} gives no file name; use letters, digits, . _ - /")
    return f"{name}.json"


def baseline_path(branch: str, root: str | Path = BASELINE_DIR, key: str | None = None) -> Path:
    """Where this host's baseline of ``branch`` lives under ``root``."""
    return Path(root) / (key or host_key()) / branch_file(branch)


def model_path(branch: str, suffix: str, root: str | Path = BASELINE_DIR) -> Path:
    """Where the model of ``branch``'s baseline is kept: ``<root>/models/<branch><suffix>``
    (one per branch, for every host: a PR job on another CPU compares it side by side)."""
    return Path(root) / "models" / (branch_file(branch)[: -len(".json")] + suffix)


def save_model(artifact: str | Path, branch: str, root: str | Path = BASELINE_DIR) -> Path | None:
    """Copy a benched model file (an OpenVINO .xml with its .bin) beside the baselines,
    atomically; None for what is not a file (a registry name)."""
    import shutil

    from edgeslim.deploy.gate.artifact import resolve_artifact
    from edgeslim.fsutil import atomic_write_bytes

    src = resolve_artifact(artifact)
    if isinstance(src, str):
        return None
    dest = model_path(branch, src.suffix, root)
    dest.parent.mkdir(parents=True, exist_ok=True)
    pairs = [(src, dest)] + ([(src.with_suffix(".bin"), dest.with_suffix(".bin"))]
                             if src.suffix == ".xml" and src.with_suffix(".bin").is_file() else [])
    for a, b in reversed(pairs):  # the .bin first: a reader never sees an .xml without it
        if a.stat().st_size <= 1 << 30:
            atomic_write_bytes(b, a.read_bytes())
        else:  # very large files: copy then rename in place
            tmp = b.with_name(f".{b.name}.tmp")
            shutil.copyfile(a, tmp)
            tmp.replace(b)
    return dest


def _number_problem(v: Any) -> str | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return f"{v!r} is not a number"
    if not math.isfinite(v):
        return f"{v!r} is not finite"
    if v <= 0:
        return f"{v!r} is not a positive time"
    return None


def _fields_problem(obj: dict[str, Any]) -> str | None:
    missing = [k for k in ("samples_ms", "artifact", "host") if k not in obj]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    if not isinstance(obj["artifact"], dict) or not isinstance(obj["artifact"].get("name"), str):
        return "artifact.name is missing or not text"
    if not isinstance(obj["host"], dict):
        return "host is not a mapping"
    if "settings" in obj and not isinstance(obj["settings"], dict):
        return "settings is not a mapping"
    batch = obj.get("batch", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        return f"batch {batch!r} is not a positive integer"
    return None


def validate_baseline(obj: dict[str, Any], path: str | Path) -> dict[str, Any]:
    """A stored bench result fit to compare against, or a one-line InputError naming the problem.

    Every sample must be a finite positive number (NaN, inf, text, null and negative times are
    refused, not skipped: a baseline with such values was not written by ``edgeslim bench``).
    """
    fix = "record it again with: edgeslim bench MODEL --save-baseline BRANCH (or --json FILE)"
    problem = _fields_problem(obj)
    samples = obj.get("samples_ms")
    if problem is None and not isinstance(samples, list):
        problem = f"samples_ms is a {type(samples).__name__}, not a list"
    if problem is None:
        bad = [(i, p) for i, v in enumerate(samples) if (p := _number_problem(v))]
        if bad:
            i, p = bad[0]
            problem = f"{len(bad)} of {len(samples)} samples_ms are unusable (samples_ms[{i}]: {p})"
        elif len(samples) < MIN_SAMPLES:
            problem = f"samples_ms holds {len(samples)} samples; at least {MIN_SAMPLES} are needed"
    if problem:
        raise InputError(f"stored baseline '{path}' cannot be used: {problem}; {fix}")
    return obj


def load_baseline(path: str | Path) -> dict[str, Any]:
    """Read and validate a stored baseline (missing, not JSON, wrong schema, bad samples: exit 2)."""
    from edgeslim.deploy.gate.bench import load_result

    p = Path(path)
    if p.is_dir():
        raise InputError(f"--baseline-json '{p}' is a folder; give the .json file inside it")
    return validate_baseline(load_result(p), p)


def other_hosts(branch: str, root: str | Path = BASELINE_DIR) -> list[str]:
    """Host keys under ``root`` that hold a baseline of ``branch`` (for a helpful error)."""
    r = Path(root)
    if not r.is_dir():
        return []
    return sorted(d.name for d in r.iterdir() if (d / branch_file(branch)).is_file())
