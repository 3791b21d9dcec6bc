"""One writer per run folder: an OS lock on ``<run>/.lock``.

``flock`` locks belong to the open file, so the kernel releases them when the holder exits,
crashes or is killed (kill -9 included): there is never a stale lock to clean up. The file
also holds who took it (pid, host, start time, command) so a refused second writer can say so.
The file itself is never deleted (another process may be waiting on that very inode).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgeslim.errors import InputError

LOCK_NAME = ".lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock; runs there are not locked
    fcntl = None  # type: ignore[assignment]


class RunLock:
    """An exclusive lock on a run folder (created if needed).

    >>> with RunLock("runs/demo"):  # doctest: +SKIP
    ...     ...  # only this process writes runs/demo/ here
    """

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, wait: bool = False, on_wait: Any = None) -> None:
        """Take the lock, or raise InputError naming the holder (``wait``: block until free)."""
        if fcntl is None or self._fd is not None:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o666)
        try:
            if not _try_lock(fd):
                if not wait:
                    raise InputError(busy_message(self.run_dir, read_holder(self.path)))
                if on_wait is not None:
                    on_wait(read_holder(self.path))
                fcntl.flock(fd, fcntl.LOCK_EX)
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(_me()) + "\n").encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # a reader never sees a finished process as the holder
        os.close(self._fd)  # closing the last descriptor drops the flock
        self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _try_lock(fd: int) -> bool:
    # A few quick retries: lock_holder() probes take the lock (shared) for microseconds.
    for attempt in range(5):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            time.sleep(0.05 * (attempt + 1))
    return False


def _me() -> dict[str, Any]:
    cmd = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv and sys.argv[0] else "python"
    return {"pid": os.getpid(), "host": platform.node(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": cmd.replace("\n", " ")[:300]}


def read_holder(path: Path) -> dict[str, Any]:
    """What the lock file says about its holder (empty when unreadable or being written)."""
    try:
        info = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def busy_message(run_dir: Path, holder: dict[str, Any]) -> str:
    who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, since {holder.get('started', '?')}: "
           f"{holder.get('command', '?')}") if holder else "a process that has not written its details yet"
    return (f"run folder '{run_dir}' is in use by another edgeslim process ({who}); wait for it to "
            "finish, or give this run another name with --name (a killed holder frees it at once)")


def lock_holder(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """The holder's details while someone holds ``run_dir``'s lock, else None."""
    path = Path(run_dir) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        # A shared probe: it fails only while an exclusive holder exists, and is dropped at once.
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(path) or {"pid": None}
    finally:
        os.close(fd)
    return None


@contextlib.contextmanager
def locked_run(run_dir: str | os.PathLike, wait: bool = False, on_wait: Any = None) -> Iterator[RunLock]:
    """Hold ``run_dir``'s lock for the block (see :class:`RunLock`)."""
    lock = RunLock(run_dir)
    lock.acquire(wait=wait, on_wait=on_wait)
    try:
        yield lock
    finally:
        lock.release()
