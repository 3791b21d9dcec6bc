"""``python -m edgeslim.zoo.worker TASK.json``: one zoo model in a process of its own.

Before anything heavy is imported it caps its address space (``RLIMIT_AS``; an allocation past
it fails inside the process and is recorded as ``OutOfMemory``), turns core dumps off, offers
itself first to the kernel's OOM killer (``oom_score_adj`` 1000, so a runaway model never takes
the sweep down) and asks to be killed when its parent dies (``PR_SET_PDEATHSIG``: a ``kill -9``
of ``edgeslim zoo`` leaves no orphan computing a row nobody will record). The steps and their
results go to ``progress.json`` in the model's folder (see ``task.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import json
import os
import signal
import sys
from pathlib import Path

PARENT_ENV = "EDGESLIM_ZOO_PARENT"


def set_limits(memory_bytes: int | None) -> None:
    """Address-space cap and no core files (a crashing model must not fill the disk)."""
    import resource

    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes:
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def oom_first() -> None:
    """Make this process the OOM killer's first choice (raising one's own score needs no privilege)."""
    with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as fh:
        fh.write("1000")


def die_with_parent() -> None:
    """SIGKILL this process when the process that started it dies (Linux; elsewhere a no-op)."""
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent and os.getppid() != parent:  # the parent died before the prctl took effect
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edgeslim.zoo.worker", description=__doc__.splitlines()[0])
    ap.add_argument("task", help="task.json written by edgeslim zoo")
    ap.add_argument("--memory-bytes", type=int, default=0, help="address-space cap (0: none)")
    args = ap.parse_args(argv)
    die_with_parent()
    oom_first()
    # A crash prints the Python stack it died in; SIGUSR1 (sent on a timeout) prints where it hangs.
    faulthandler.enable(all_threads=False)
    faulthandler.register(signal.SIGUSR1, all_threads=False)
    set_limits(args.memory_bytes or None)
    task_path = Path(args.task)
    task = json.loads(task_path.read_text())
    import torch

    torch.set_num_threads(int(task["settings"]["threads"]))
    from edgeslim.zoo.task import run_model

    run_model(task, task_path.parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
