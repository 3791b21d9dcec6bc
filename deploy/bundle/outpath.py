"""Output paths that never cost the user a file (``deploy --out DIR``, ``export --out FILE``).

- ``check_bundle_out``: DIR may be new, empty, or an edgeslim bundle (manifest.json with schema
  ``edgeslim.bundle/1`` and no file the bundle does not list); a bundle is replaced only with
  ``force``. cwd and its parents, the run folder and its parents, ``/`` and home are refused.
  DIR.tar.gz is overwritten only when it is itself a bundle tarball of DIR.
- ``output_lock``: an OS lock (flock) on ``.<name>.lock`` beside the output for the whole write.
  The kernel drops it when the writer dies, so while it is held every temp sibling that
  matches edgeslim's own temp names belongs to a writer that is gone: those are removed.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeslim.errors import InputError

BUNDLE_SCHEMA = "edgeslim.bundle/1"
# written inside a bundle on the device by build_engine.sh; derived from the bundle, so a
# replacement may drop them
DEVICE_FILES = frozenset({"model.engine", "timing.cache"})
_MANIFEST_MAX = 16 << 20


def _names(items: list[str], n: int = 3) -> str:
    shown = ", ".join(items[:n])
    return shown + (f" and {len(items) - n} more" if len(items) > n else "")


def protected_reason(out: Path, run_dir: Path | None = None) -> str | None:
    """Why ``out`` must never be replaced by a bundle, or None."""
    res = out.expanduser().resolve()
    if res == Path(res.anchor):
        return "the file-system root"
    if res == Path.home().resolve():
        return "your home folder"
    with contextlib.suppress(OSError):  # a deleted cwd protects nothing
        cwd = Path.cwd().resolve()
        if res == cwd or res in cwd.parents:
            return "the current folder or one of its parents"
    if run_dir is not None:
        r = run_dir.resolve()
        if res == r or res in r.parents:
            return "the run folder or one of its parents"
    return None


def read_bundle_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest of an edgeslim bundle folder, or None when ``folder`` is no bundle."""
    path = folder / "manifest.json"
    try:
        if path.is_symlink() or path.stat().st_size > _MANIFEST_MAX:
            return None
        man = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return man if isinstance(man, dict) and man.get("schema") == BUNDLE_SCHEMA else None


def foreign_files(folder: Path, manifest: dict[str, Any]) -> list[str]:
    """Files under a bundle folder that the bundle did not write (relative POSIX paths)."""
    files = manifest.get("files")
    ours = {"manifest.json", *DEVICE_FILES, *(files if isinstance(files, dict) else ())}
    extra = []
    for root, _, names in os.walk(folder):
        for n in names:
            rel = (Path(root) / n).relative_to(folder).as_posix()
            if rel not in ours:
                extra.append(rel)
    return sorted(extra)


def is_bundle_tarball(path: Path, name: str) -> bool:
    """True when ``path`` is a gzip tar of one bundle folder called ``name`` (what we write)."""
    if path.is_symlink() or not path.is_file():
        return False
    try:
        with tarfile.open(path, "r:gz") as tf:
            if not all(n == name or n.startswith(name + "/") for n in tf.getnames()):
                return False
            fh = tf.extractfile(f"{name}/manifest.json")
            man = json.loads(fh.read(_MANIFEST_MAX)) if fh is not None else None
    except (OSError, EOFError, KeyError, ValueError, tarfile.TarError):
        return False
    return isinstance(man, dict) and man.get("schema") == BUNDLE_SCHEMA


def tarball_of(out: Path) -> Path:
    return out.with_name(out.name + ".tar.gz")


def check_bundle_out(out: Path, run_dir: Path | None, force: bool, tarball: bool) -> None:
    """Refuse (InputError) an ``--out`` whose replacement could lose anything not ours."""
    fix = "give a new or empty folder, e.g. --out bundles/<name>"
    if out.name in ("", ".", ".."):
        raise InputError(f"--out '{out}' names no folder of its own; {fix}")
    why = protected_reason(out, run_dir)
    if why:
        raise InputError(f"--out '{out}' is {why}, which deploy never replaces; {fix}")
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise InputError(f"--out '{out}' exists and is not a folder; {fix}")
    existing = False
    if out.is_dir():
        try:
            entries = sorted(os.listdir(out))
        except OSError as exc:
            raise InputError(f"--out '{out}' cannot be read ({exc.strerror}); {fix}") from exc
        man = read_bundle_manifest(out)
        extra = entries if man is None else foreign_files(out, man)
        if extra and man is None:
            raise InputError(
                f"--out '{out}' is not an edgeslim bundle and holds {_names(extra)}; deploy "
                f"never deletes a folder it did not write (not even with --force): {fix}"
            )
        if extra:
            raise InputError(
                f"--out '{out}' holds a bundle plus files that are not part of it "
                f"({_names(extra)}); move them out first, or {fix}"
            )
        existing = man is not None
    tgz = tarball_of(out)
    if tgz.exists() or tgz.is_symlink():
        if is_bundle_tarball(tgz, out.name):
            existing = True
        elif tarball:
            raise InputError(
                f"'{tgz}' exists and is not an edgeslim bundle tarball; deploy never "
                "overwrites it (not even with --force): move it away, or pass --no-tar"
            )
    if existing and not force:
        raise InputError(
            f"--out '{out}' already holds an edgeslim bundle (folder or {tgz.name}); "
            "pass --force to replace it (only a bundle is ever replaced)"
        )


def remove_stale_tarball(out: Path) -> None:
    """``--no-tar``: an older bundle tarball of DIR (maybe another target) must not sit beside it."""
    tgz = tarball_of(out)
    if is_bundle_tarball(tgz, out.name):
        tgz.unlink()


def _stale_patterns(name: str) -> re.Pattern[str]:
    n = re.escape(name)
    stem = re.escape(Path(name).stem)
    return re.compile(
        rf"\.{n}\.tmp-[a-z0-9_]{{8}}"  # fsutil.atomic_dir / export staging (mkdtemp)
        rf"|\.{n}\.old-\d+"  # fsutil.atomic_dir: the replaced folder before removal
        rf"|\.{n}\.[a-z0-9_]{{8}}\.tmp"  # fsutil.temp_path_beside
        rf"|\.{n}\.tar\.gz\.tmp(-\d+)?"  # write_tarball
        rf"|\.{stem}\.export-[a-z0-9_]{{8}}"  # export scratch of older versions
    )


def clean_stale_siblings(out: Path) -> list[str]:
    """Remove temp siblings of ``out`` left by killed writers. Call only under output_lock."""
    pat, removed = _stale_patterns(out.name), []
    with contextlib.suppress(OSError):
        for p in out.parent.iterdir():
            if pat.fullmatch(p.name):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p, ignore_errors=True)
                else:
                    p.unlink(missing_ok=True)
                removed.append(p.name)
    return removed


def _open_locked(path: Path, what: Path) -> int:
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise InputError(
                f"another edgeslim process (pid {holder}) is writing '{what}'; wait for it to "
                "finish, or choose another --out"
            ) from None
        try:  # the holder before us may have unlinked the file: lock the one at the path
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


@contextlib.contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock for writing ``out``; clean its stale temp siblings first."""
    lock = out.with_name(f".{out.name}.lock")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_locked(lock, out)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise InputError(
            f"cannot write in '{out.parent}' ({reason}); choose a writable --out"
        ) from exc
    try:
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        clean_stale_siblings(out)
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        os.close(fd)


def os_error_message(exc: OSError, what: str) -> str:
    """One line for a write that failed half-way (disk full, read-only, permissions)."""
    hint = "free disk space" if exc.errno in (errno.ENOSPC, errno.EDQUOT) else "check permissions"
    where = f": {exc.filename}" if exc.filename else ""
    return f"{what} failed ({exc.strerror or exc}{where}); {hint} and retry"
