"""From a zoo file (and family shortcuts) to tasks: merged settings, names, keys, shards.

A task is plain JSON (it crosses a process boundary, and a Ray cluster):
``{name, folder, source, settings, versions, key, cwd}``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeslim.errors import InputError, RecipeError
from edgeslim.zoo.config import ZooEntry, ZooSettings, check_entries, default_name, folder_name, merged_settings
from edgeslim.zoo.results import TOOLS, file_fingerprint, row_key, tool_versions


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``I/N`` -> (I, N) with 0 <= I < N; one-line InputError otherwise."""
    if text is None:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise InputError(f"--shard '{text}' is not I/N; write e.g. --shard 0/4 (shards 0..3 of 4)") from None
    if n < 1 or not 0 <= i < n:
        raise InputError(f"--shard '{text}': I must be in 0..N-1 and N >= 1, e.g. --shard 0/{max(n, 2)}")
    return i, n


def in_shard(tasks: list[dict[str, Any]], shard: tuple[int, int] | None) -> list[dict[str, Any]]:
    """Shard I of N: sort by the hash of each model's name, take every N-th from position I.

    Depends only on the names (not on versions or paths), so jobs on different machines agree,
    and shards differ in size by at most one model.
    """
    if shard is None:
        return tasks
    i, n = shard
    order = sorted(tasks, key=lambda t: hashlib.sha256(t["name"].encode()).hexdigest())
    mine = {t["name"] for k, t in enumerate(order) if k % n == i}
    return [t for t in tasks if t["name"] in mine]


def _files(source: str, s: ZooSettings) -> dict[str, Any]:
    """Content fingerprints of the files a model names (its source, checkpoint, calibration)."""
    from edgeslim.models.source_registry import source_info

    out: dict[str, Any] = {}
    info = source_info(source)
    if info.file is not None:
        out["source"] = file_fingerprint(info.file)
    if s.checkpoint:
        out["checkpoint"] = file_fingerprint(s.checkpoint)
    if s.calibration:
        out["calibration"] = file_fingerprint(s.calibration)
    return out


def make_tasks(defaults: ZooSettings, entries: list[ZooEntry], where: str) -> list[dict[str, Any]]:
    """Validate every entry against the defaults and build its task; RecipeError lists all problems."""
    from edgeslim.recipe import format_validation

    if not entries:
        raise InputError(f"{where}: no models; list them under 'models:' (e.g. '- source: timm:resnet18d') "
                         "or use --torchvision / --timm PATTERN")
    problems = check_entries(entries, where)
    merged: list[ZooSettings | None] = []
    for i, e in enumerate(entries):
        try:
            merged.append(merged_settings(defaults, e))
        except ValidationError as exc:
            problems += [f"{where}: models.{i}.{p}" for p in format_validation(exc, ZooSettings)]
            merged.append(None)
    for i, s in enumerate(merged):
        for key in ("checkpoint", "calibration"):
            val = getattr(s, key, None) if s is not None else None
            if val and not Path(val).exists() and not getattr(entries[i], key):
                problems.append(f"{where}: {key}: '{val}' does not exist (relative to {Path.cwd()})")
    if problems:
        raise RecipeError(list(dict.fromkeys(problems)))
    backends = sorted({b for s in merged if s is not None for b in s.backends})
    versions = tool_versions(backends)
    return [_task(e, s, versions) for e, s in zip(entries, merged, strict=True) if s is not None]


def _task(e: ZooEntry, s: ZooSettings, versions: dict[str, Any]) -> dict[str, Any]:
    name = e.name or default_name(e.source)
    settings = s.model_dump(mode="json")
    # a backend's own version (openvino) keys only the models timed on it
    vers = {k: v for k, v in versions.items() if k in TOOLS or k == "python" or k in s.backends}
    return {"name": name, "folder": folder_name(name), "source": e.source, "settings": settings,
            "versions": vers, "key": row_key(e.source, name, settings, vers, _files(e.source, s)),
            "cwd": os.getcwd()}
