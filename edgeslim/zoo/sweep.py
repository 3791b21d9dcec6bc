"""Run a zoo: skip finished rows, run the rest (local worker processes or Ray), record, report.

The driver is the only writer of ``DIR/results.jsonl`` (guarded by ``DIR/.lock``): every row,
whether it was computed by a local worker or by a Ray task, is appended and fsync'd as soon as
it arrives, then the matrix files are rewritten. A ``kill -9`` of the driver therefore loses
only the models in flight (their workers die with it, see ``worker.die_with_parent``).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeslim.errors import InputError
from edgeslim.fsutil import atomic_write_json, atomic_write_text, ensure_writable_dir
from edgeslim.zoo.isolate import error_row, kill_all, run_task
from edgeslim.zoo.matrix import ICON, summary, write_matrix
from edgeslim.zoo.results import RESULTS, append_row, latest_by_key, read_rows

OnRow = Callable[[dict[str, Any], dict[str, Any]], None]


@dataclass
class SweepOptions:
    out: Path
    workers: int = 1
    ray: str | None = None  # a Ray address ("auto", "host:port", "ray://...") or None: local
    retry_failed: bool = False
    redo: bool = False
    quiet: bool = False
    title: str = "edgeslim zoo"


def _lock(out: Path) -> Any:
    from edgeslim.runlock import RunLock, read_holder

    lock = RunLock(out)
    try:
        lock.acquire()
    except InputError:
        h = read_holder(lock.path)
        who = f"pid {h.get('pid', '?')} on {h.get('host', '?')}: {h.get('command', '?')}" if h else "another process"
        raise InputError(f"zoo folder '{out}' is in use by {who}; wait for it, or give another --out "
                         "(a killed holder frees it at once)") from None
    return lock


def run_sweep(tasks: list[dict[str, Any]], opts: SweepOptions,
              shown: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Compute the rows of ``tasks`` that ``opts.out`` does not hold yet; write the matrix.

    ``shown``: the models the matrix lists when they have a row (default ``tasks``; the whole
    zoo when ``--only`` picked a few, so a partial rerun does not shrink the matrix).
    """
    shown = tasks if shown is None else shown
    out = Path(opts.out)
    if opts.ray:  # before anything is written: a bad address or a missing ray is bad input
        from edgeslim.errors import require

        require("ray", "ray")
        _probe(opts.ray)
    ensure_writable_dir(out)
    lock = _lock(out)
    t0 = time.monotonic()
    try:
        results = out / RESULTS
        known = latest_by_key(read_rows(results))
        have, todo = _split(tasks, known, opts)
        atomic_write_json(out / "zoo.json", {"schema": "edgeslim.zoo/1", "tasks": tasks})
        progress = Progress(len(tasks), len(have), opts.quiet)
        progress.start(len(todo), "ray " + opts.ray if opts.ray else f"{opts.workers} worker(s)", out)

        for t in shown:  # rows of models not run this time, for the matrix
            if t["key"] in known:
                have.setdefault(t["key"], known[t["key"]])

        def on_row(task: dict[str, Any], row: dict[str, Any]) -> None:
            append_row(results, row)
            have[task["key"]] = row
            write_matrix(out, [have[t["key"]] for t in shown if t["key"] in have], opts.title)
            progress.row(row)

        try:
            if todo:
                (_run_ray if opts.ray else _run_local)(todo, out, opts, on_row)
        finally:
            progress.close()
        rows = [have[t["key"]] for t in shown if t["key"] in have]
        paths = write_matrix(out, rows, opts.title)
        s = {**summary(rows), "computed": len(todo), "reused": len(tasks) - len(todo),
             "wall_s": round(time.monotonic() - t0, 1), "matrix": {k: str(v) for k, v in paths.items()}}
        atomic_write_json(out / "summary.json", s)
        return s
    finally:
        lock.release()


def _split(tasks: list[dict[str, Any]], known: dict[str, dict[str, Any]],
           opts: SweepOptions) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """(rows to reuse by key, tasks to run): a finished row is reused unless --redo/--retry-failed."""
    have: dict[str, dict[str, Any]] = {}
    todo = []
    for t in tasks:
        r = known.get(t["key"])
        if r is not None and not opts.redo and not (opts.retry_failed and r.get("status") == "failed"):
            have[t["key"]] = r
        else:
            todo.append(t)
    return have, todo


def _run_local(todo: list[dict[str, Any]], out: Path, opts: SweepOptions, on_row: OnRow) -> None:
    pool = ThreadPoolExecutor(max_workers=max(1, opts.workers), thread_name_prefix="zoo")
    futs = {pool.submit(run_task, t, str(out.resolve()), _memory(t)): t for t in todo}
    try:
        for f in as_completed(futs):
            t = futs[f]
            try:
                row = f.result()
            except Exception as exc:  # the driver's own failure (disk full...): still a row
                row = error_row(t, exc)
            on_row(t, row)
    except BaseException:
        for f in futs:
            f.cancel()
        kill_all()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _memory(task: dict[str, Any]) -> int:
    gb = task["settings"].get("memory_gb")
    return int(gb * 2**30) if gb else 0  # 0: the worker caps itself at the machine's RAM


def _run_ray(todo: list[dict[str, Any]], out: Path, opts: SweepOptions, on_row: OnRow) -> None:
    """The same ``run_task`` as Ray tasks on an existing cluster (one CPU per worker thread)."""
    import logging

    from edgeslim.errors import require

    ray: Any = require("ray", "ray")
    try:
        ray.init(address=opts.ray, logging_level=logging.ERROR, log_to_driver=False,
                 namespace="edgeslim-zoo", ignore_reinit_error=True)
    except Exception as exc:  # ConnectionError, ValueError...: a user's address problem
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputError(f"cannot connect to the Ray cluster at '{opts.ray}' ({type(exc).__name__}: {first}); "
                         "start one (ray start --head) and give --ray HOST:PORT, or --ray auto on one of its "
                         "nodes") from None
    remote = ray.remote(max_retries=0)(run_task)
    # an absolute DIR: Ray workers run elsewhere (another cwd; on other nodes, a shared file system)
    where = str(out.resolve())
    refs = {remote.options(num_cpus=t["settings"]["threads"]).remote(t, where, _memory(t)): t for t in todo}
    try:
        while refs:
            done, _ = ray.wait(list(refs), num_returns=1)
            for ref in done:
                t = refs.pop(ref)
                try:
                    row = ray.get(ref)
                except Exception as exc:  # a lost node or worker: this model's row, not the sweep's end
                    row = error_row(t, exc)
                on_row(t, row)
    finally:
        for ref in refs:
            ray.cancel(ref, force=True)
        ray.shutdown()


def _probe(address: str) -> None:
    """A HOST:PORT nobody listens on is refused at once (Ray itself retries for minutes)."""
    import re
    import socket

    m = re.fullmatch(r"(?:ray://)?\[?([^\]]+?)\]?:(\d+)", address.strip())
    if not m:
        return  # "auto" or another form Ray resolves itself
    try:
        socket.create_connection((m[1], int(m[2])), timeout=10).close()
    except OSError as exc:
        raise InputError(f"cannot connect to the Ray cluster at '{address}': nothing answers on "
                         f"{m[1]}:{m[2]} ({exc.strerror or exc}); start one (ray start --head --port "
                         f"{m[2]}) or give its address (ray status prints it)") from None


class Progress:
    """A rich bar on a terminal, one plain line per model otherwise (CI logs), nothing with -q."""

    def __init__(self, total: int, reused: int, quiet: bool):
        self.total, self.done, self.quiet = total, reused, quiet
        self.tty = sys.stderr.isatty() and not quiet
        self._bar: Any = None

    def start(self, todo: int, how: str, out: Path) -> None:
        self._print(f"zoo: {self.total} model(s), {self.done} already in {out / RESULTS}, {todo} to run on {how}")
        if self.tty and todo:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("zoo"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                                 TimeElapsedColumn(), transient=True, console=Console(stderr=True))
            self._bar.start()
            self._tid = self._bar.add_task("zoo", total=self.total, completed=self.done)

    def row(self, row: dict[str, Any]) -> None:
        self.done += 1
        self._print(f"[{self.done}/{self.total}] {describe(row)}")
        if self._bar is not None:
            self._bar.update(self._tid, completed=self.done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def _print(self, line: str) -> None:
        if self.quiet:
            return
        if self._bar is not None:
            self._bar.console.print(line, highlight=False, markup=False)
        else:
            print(line, file=sys.stderr, flush=True)


def describe(row: dict[str, Any]) -> str:
    """One line for a finished model: icon, status, the key figures or the error."""
    m = row.get("metrics") or {}
    parts = [ICON.get(row.get("status"), "?"), row.get("model", "?"), row.get("status", "?")]
    if m.get("max_rel_err") is not None:
        parts.append(f"rel {m['max_rel_err']:.1e}")
    if m.get("int8_agreement") is not None:
        parts.append(f"int8 agree {m['int8_agreement']:.2f}")
    elif m.get("int8_rel_err") is not None:  # too few decisive images: the error gate decided
        parts.append(f"int8 err {m['int8_rel_err']:.2f} (agreement inconclusive)")
    lat = next((f"{k[:-7]} p50 {v:.2f} ms" for k, v in m.items() if k.endswith("_p50_ms") and v is not None), None)
    if lat:
        parts.append(lat)
    parts.append(f"{row.get('duration_s', 0):.0f} s")
    if row.get("status") != "ok":
        parts.append(f"[{row.get('failed_step')}: {row.get('error_class')}] {str(row.get('error') or '')[:160]}")
    return " ".join(str(p) for p in parts)


def merge(dirs: list[Path], out: Path, artifacts: bool = True, title: str = "edgeslim zoo") -> dict[str, Any]:
    """Rows of several zoo folders (shards) in one: the newest row per model; artifacts linked in."""
    out = Path(out)
    srcs = [Path(d) for d in dirs]
    for d in srcs:
        if not (d / RESULTS).is_file():
            raise InputError(f"'{d}' has no {RESULTS}; give folders written by 'edgeslim zoo ... --out DIR'")
    if (out / RESULTS).is_file() and not any(d.resolve() == out.resolve() for d in srcs):
        raise InputError(f"--out '{out}' already holds {RESULTS}; merge into an empty folder, or list '{out}' "
                         "among the inputs so its rows are kept")
    chosen: dict[str, tuple[dict[str, Any], Path]] = {}
    conflicts = []
    for d in srcs:
        for r in latest_by_key(read_rows(d / RESULTS)).values():
            prev = chosen.get(r["model"])
            if prev is not None and prev[0]["key"] != r["key"]:
                conflicts.append(r["model"])
            if prev is None or str(r.get("finished_at", "")) >= str(prev[0].get("finished_at", "")):
                chosen[r["model"]] = (r, d)
    ensure_writable_dir(out)
    lock = _lock(out)
    try:
        rows = [chosen[m][0] for m in sorted(chosen)]
        if artifacts:
            for r, d in chosen.values():
                _link_tree(d / r["folder"], out / r["folder"])
        import json

        atomic_write_text(out / RESULTS, "".join(json.dumps(r, default=str) + "\n" for r in rows))
        paths = write_matrix(out, rows, title)
        s = {**summary(rows), "merged_from": [str(d) for d in srcs], "conflicts": sorted(set(conflicts)),
             "matrix": {k: str(v) for k, v in paths.items()}}
        atomic_write_json(out / "summary.json", s)
        return s
    finally:
        lock.release()


def _link_tree(src: Path, dst: Path) -> None:
    """Copy a model folder by hard links where the file system allows (shards on one disk)."""
    if not src.is_dir() or src.resolve() == dst.resolve():
        return

    def link(a: str, b: str) -> None:
        try:
            os.link(a, b)
        except OSError:
            shutil.copy2(a, b)

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst, copy_function=link)
