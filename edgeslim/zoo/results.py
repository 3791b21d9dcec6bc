"""The results file ``DIR/results.jsonl``: one JSON row per finished model, append-only.

Each row is written as one ``write`` of a whole line followed by ``fsync``, so a ``kill -9``
at any moment leaves every finished row on disk and at most a torn last line, which readers
skip (and the next append starts on a fresh line). A row's ``key`` is the SHA-256 of the model,
its resolved settings, the content of the files it names and the tool versions: a rerun skips
rows whose key is already there, and a changed setting, file or version computes the model again.
"""

from __future__ import annotations

import contextlib
import importlib.metadata as md
import json
import os
import platform
from pathlib import Path
from typing import Any

from edgeslim.fsutil import sha256_file, sha256_json

RESULTS = "results.jsonl"
TOOLS = ("edgeslim", "torch", "torchvision", "timm", "onnx", "onnxruntime", "onnxscript", "onnxslim", "numpy")


def tool_versions(backends: list[str] | tuple[str, ...] = ()) -> dict[str, str | None]:
    """Versions of what decides a row, from package metadata (nothing imported)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    extra = tuple(b for b in backends if b not in ("onnxruntime", "torch"))
    for name in TOOLS + extra:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def file_fingerprint(path: str | os.PathLike) -> str | None:
    """SHA-256 of a file, or of the (name, size, mtime) list of a folder's files; None if absent."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    if p.is_dir():
        files = sorted(f for f in p.rglob("*") if f.is_file())
        return sha256_json([[str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns] for f in files])
    return None


def row_key(source: str, name: str, settings: dict[str, Any], versions: dict[str, Any],
            files: dict[str, Any]) -> str:
    return sha256_json({"source": source, "name": name, "settings": settings, "versions": versions,
                        "files": files})[:24]


def read_rows(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete row of a results file, in order; torn or foreign lines are skipped."""
    p = Path(path)
    if not p.is_file():
        return []
    rows = []
    with open(p, "rb") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:  # a line torn by a kill: that model was still in flight
                continue
            if isinstance(row, dict) and isinstance(row.get("key"), str) and "model" in row:
                rows.append(row)
    return rows


def latest_by_key(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        out[r["key"]] = r  # a later line (a retried model) replaces an earlier one
    return out


def append_row(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one row as one line and fsync; start a fresh line after a torn one."""
    p = Path(path)
    data = (json.dumps(row, sort_keys=False, default=str) + "\n").encode()
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
    try:
        size = os.fstat(fd).st_size
        if size and _last_byte(p, size) != b"\n":
            data = b"\n" + data
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    if size == 0:  # a new file: make its directory entry durable too
        with contextlib.suppress(OSError):
            dfd = os.open(p.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)


def _last_byte(path: Path, size: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(size - 1)
        return fh.read(1)
