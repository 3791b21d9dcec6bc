"""A cheap fingerprint of the data a source reads, so caches follow the data, not just the recipe.

A stage's cache key hashes its settings; without the data in it, adding a class folder or
deleting images would reuse the stage trained on the old data. Each source registers a
fingerprint function beside its reader (``@register_fingerprint("imagefolder")``) that looks
at metadata only: file names, sizes and modification times for folders, dataset identity and
library version for built-ins. Nothing is decoded, so a fingerprint costs one directory walk.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edgeslim.recipe import DataSpec

Fingerprint = Callable[["DataSpec"], dict[str, Any]]
_FINGERPRINTS: dict[str, Fingerprint] = {}


def register_fingerprint(name: str) -> Callable[[Fingerprint], Fingerprint]:
    """Register the fingerprint of data source ``name`` (put it next to the source's reader)."""

    def deco(fn: Fingerprint) -> Fingerprint:
        if name in _FINGERPRINTS:
            raise ValueError(f"data fingerprint '{name}' is already registered")
        _FINGERPRINTS[name] = fn
        return fn

    return deco


def data_fingerprint(spec: DataSpec) -> dict[str, Any]:
    """``{"source": ..., <what was looked at>, "sha256": <hash of all of it>}``; never raises
    for missing data (the reader reports that), so a later stage's key can be computed early.

    >>> data_fingerprint(DataSpec(source="digits"))["sklearn"]  # doctest: +SKIP
    '1.5.2'
    """
    import edgeslim.data.sources  # noqa: F401 - registers the built-in sources' fingerprints

    fn = _FINGERPRINTS.get(spec.source)
    fp = fn(spec) if fn else {"source": spec.source}
    fp["sha256"] = hashlib.sha256(json.dumps(fp, sort_keys=True, default=str).encode()).hexdigest()
    return fp


def package_version(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def stat_listing(base: Path, files: Iterable[Path]) -> dict[str, Any]:
    """Count and hash of (relative path, size, mtime_ns) of ``files`` (stat only, nothing read)."""
    h, n = hashlib.sha256(), 0
    for f in sorted(files):
        try:
            st = os.stat(f)
            entry = f"{f.relative_to(base).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_mode:o}\n"
        except OSError as exc:  # vanished or unreadable: still part of what the reader will see
            entry = f"{f.relative_to(base).as_posix()}\0{type(exc).__name__}\n"
        h.update(entry.encode("utf-8", "surrogateescape"))
        n += 1
    return {"files": n, "listing_sha256": h.hexdigest()}
