"""The pipeline runner: stages in order, each written atomically, cached by the hash of its inputs."""

from __future__ import annotations

import errno
import json
import random
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from edgeslim.errors import EdgeslimError, GateError, InputError, StageError
from edgeslim.fsutil import atomic_dir, clean_stale_temps, ensure_writable_dir, sha256_json
from edgeslim.progress import Reporter
from edgeslim.recipe import Recipe
from edgeslim.runrecord import new_record, write_record
from edgeslim.stages.context import StageContext, StageRecord
from edgeslim.stages.registry import get_stage
from edgeslim.stages.standard import finish_stage

if TYPE_CHECKING:
    from edgeslim.data.bundle import DataBundle

CACHE_VERSION = 2  # bump when stage outputs change meaning, so old caches are not reused


@dataclass
class RunResult:
    run_dir: Path
    record: dict[str, Any]
    stages: list[StageRecord]
    report: Path | None = None  # report.md


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def stage_dir(run_dir: Path, index: int, cfg: Any) -> Path:
    return run_dir / f"{index:02d}-{cfg.label or cfg.stage}"


def run_pipeline(recipe: Recipe, reporter: Reporter | None = None, fresh: bool = False,
                 lock_wait: bool = False) -> RunResult:
    """Run every stage of ``recipe``; stages whose key matches a finished folder are reused.

    The run folder is locked for the whole run (``<run>/.lock``); a second writer is refused
    with the holder's details, or waits for it when ``lock_wait`` is set. ``fresh`` recomputes
    every stage and discards interrupted training state (``.resume/``).
    """
    from edgeslim.runlock import locked_run

    reporter = reporter or Reporter()
    run_dir = recipe.run_dir()
    data = preflight(recipe)
    ensure_writable_dir(run_dir)

    def waiting(holder: dict[str, Any]) -> None:
        reporter.log(f"waiting for pid {holder.get('pid', '?')} ({holder.get('command', '?')}) "
                     f"to finish with {run_dir}")

    # Taken before anything in the folder is cleaned or written: a second run never touches
    # the temp folders of a stage the first one is writing.
    with locked_run(run_dir, wait=lock_wait, on_wait=waiting):
        check_previous_record(run_dir, reporter)
        clean_stale_temps(run_dir)
        if fresh:
            shutil.rmtree(run_dir / ".resume", ignore_errors=True)
        return _run_stages(recipe, run_dir, data, reporter, fresh)


def _run_stages(recipe: Recipe, run_dir: Path, data: DataBundle, reporter: Reporter, fresh: bool) -> RunResult:
    if recipe.run.threads:
        torch.set_num_threads(recipe.run.threads)
    resolved = recipe.resolved()
    record = _start_record(recipe, resolved, data, reporter)
    device = _device(recipe.run.device)
    # The normalisation in use is part of the key: it may come from the model's weights or the
    # train split, not only from the recipe.
    key = sha256_json({"model": resolved["model"], "data": resolved["data"], "seed": recipe.run.seed,
                       "data_fingerprint": record["data_fingerprint"]["sha256"], "v": CACHE_VERSION,
                       "norm": [data.mean, data.std]})
    history: list[StageRecord] = []
    chain: dict[str, Any] = {"model_path": None, "onnx_path": None, "class_names": None}
    for i, cfg in enumerate(recipe.stages):
        key = stage_key(key, cfg)
        folder = stage_dir(run_dir, i, cfg)
        rec = None if fresh else load_cached(folder, key)
        if rec is not None:
            from edgeslim.report import stage_summary

            reporter.stage_reused(folder.name, stage_summary(rec.metrics))
            for w in rec.metrics.get("warnings", []):
                reporter.warn(f"{folder.name}: {w}")
        else:
            rec = _run_stage(recipe, i, cfg, folder, key, history, chain, device, reporter, record, run_dir)
        history.append(rec)
        record["stages"] = [h.to_json(run_dir) for h in history]
        _advance_chain(chain, rec)
        write_record(run_dir, record)
    _remove_stale(run_dir, {h.dir.name for h in history}, reporter)
    # Every stage is finished: resume state left in .resume/ belongs to superseded settings.
    shutil.rmtree(run_dir / ".resume", ignore_errors=True)
    record["status"] = "completed"
    record["final"] = next((h.metrics for h in reversed(history) if "test_accuracy" in h.metrics), {})
    record["warnings"] = list(data.extra["warnings"]) + [
        f"{h.dir.name}: {w}" for h in history for w in h.metrics.get("warnings", [])]
    write_record(run_dir, record)
    from edgeslim.report import write_report

    # Written here, while the folder is still locked, like every other file of the run.
    return RunResult(run_dir, record, history, write_report(run_dir, record))


def _start_record(recipe: Recipe, resolved: dict[str, Any], data: DataBundle, reporter: Reporter) -> dict[str, Any]:
    """The run record before any stage: recipe, data fingerprint, skipped images, the
    normalisation in use and the data's warnings (said here, once per run)."""
    record = new_record(recipe.run.name, resolved, sha256_json(resolved)[:16], recipe.run.seed)
    record["data_fingerprint"], record["data_skipped"] = data.extra["fingerprint"], data.extra["skipped"]
    record["normalization"] = {"mean": data.mean, "std": data.std, "from": data.extra["normalization"]["from"]}
    # data.root as this run resolved it: later commands reopen the run from any directory.
    record["data_root"] = str(Path(recipe.data.root).resolve()) if recipe.data.root else None
    record["warnings"] = list(data.extra["warnings"])
    for s in data.extra["skipped"]:
        reporter.log(f"[yellow]skipped {s['path']}: {s['reason']}[/yellow]")
    for w in record["warnings"]:
        reporter.warn(w)
    return record


def stage_key(prev: str, cfg: Any) -> str:
    """A stage's cache key: the previous key, its settings, and the fingerprint of its own
    ``data:`` when it reads other data than the recipe's (pretrain on a source task)."""
    from edgeslim.data.fingerprint import data_fingerprint
    from edgeslim.recipe import DataSpec

    parts: dict[str, Any] = {"prev": prev, "stage": cfg.model_dump(mode="json")}
    if isinstance(getattr(cfg, "data", None), DataSpec):
        parts["data_fingerprint"] = data_fingerprint(cfg.data)["sha256"]
    return sha256_json(parts)


def check_previous_record(run_dir: Path, reporter: Reporter) -> None:
    """Refuse a run.json that is not a file (one line, nothing removed); say when the previous
    run was killed (its record says running, yet we hold the lock, so its writer is gone)."""
    from edgeslim.runrecord import load_record_file

    path = run_dir / "run.json"
    if not (path.exists() or path.is_symlink()):
        return
    try:
        rec = load_record_file(path)
    except InputError as exc:
        if not path.is_file():
            raise
        reporter.log(f"[yellow]{exc}; this run writes a new one[/yellow]")
        return
    if rec.get("status") == "running":
        reporter.log(f"[yellow]the previous run of {run_dir} was interrupted (started {rec.get('created', '?')}); "
                     "its finished stages are reused[/yellow]")


def preflight(recipe: Recipe) -> DataBundle:
    """Check the inputs every run needs before anything is written: the model source, data,
    weights, and a frozen graph's fit to the data (input size, classes, batch axis)."""
    from edgeslim.data import build_data
    from edgeslim.models.source_registry import check_source
    from edgeslim.stages.context import model_norm

    info = check_source(recipe.model.source)
    if info.editable:
        from edgeslim.models.factory import check_model_kwargs

        # Before the data is read: a misspelt or mistyped model.kwargs is a one-line error here,
        # not a TypeError from the first stage after the run folder exists.
        check_model_kwargs(recipe.model, run_user_code=True)
    data = build_data(recipe.data, recipe.run.seed, model_norm(recipe.model))
    if not info.editable:
        from edgeslim.models.frozen import open_frozen

        open_frozen(info).check_fits(tuple(data.input_shape), data.num_classes)
    elif recipe.model.checkpoint or recipe.model.weights or info.kind in ("pyfile", "module", "edgeslim"):
        # A user's file is imported here: its errors (and a checkpoint that does not fit) stop
        # the run before anything is written.
        from edgeslim.models.factory import model_from_spec

        model_from_spec(recipe.model, data.input_shape[0], data.num_classes)
    return data


def _run_stage(recipe: Recipe, i: int, cfg: Any, folder: Path, key: str, history: list[StageRecord],
               chain: dict[str, Any], device: torch.device, reporter: Reporter, record: dict[str, Any],
               run_dir: Path) -> StageRecord:
    sdef = get_stage(cfg.stage)
    rec = StageRecord(i, cfg.stage, folder, status="running", key=key)
    reporter.stage_start(folder.name, sdef.doc or cfg.stage)
    record["stages"] = [h.to_json(run_dir) for h in history] + [rec.to_json(run_dir)]
    write_record(run_dir, record)
    seed_everything(recipe.run.seed + 1000 * (i + 1))
    t0 = time.perf_counter()
    try:
        with atomic_dir(folder, keep_failed=GateError) as tmp:
            ctx = StageContext(recipe, i, tmp, run_dir, recipe.run.seed + 1000 * (i + 1), device, reporter,
                               list(history), chain["model_path"], chain["onnx_path"], chain["class_names"],
                               key=key)
            out = sdef.run(cfg, ctx)
            rec.wall_s = time.perf_counter() - t0
            finish_stage(rec, out, ctx, tmp)
    except BaseException as exc:
        rec.status, rec.wall_s = "failed", time.perf_counter() - t0
        rec.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, KeyboardInterrupt) else "interrupted"
        record["status"] = "failed" if not isinstance(exc, KeyboardInterrupt) else "interrupted"
        record["stages"] = [h.to_json(run_dir) for h in history] + [rec.to_json(run_dir)]
        write_record(run_dir, record)
        reporter.stage_end(folder.name, failed=rec.error)
        raise _stage_failure(folder.name, exc) from exc
    from edgeslim.report import stage_summary

    reporter.stage_end(folder.name, stage_summary(rec.metrics))
    return rec


def _stage_failure(name: str, exc: BaseException) -> BaseException:
    if isinstance(exc, KeyboardInterrupt):
        return exc
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
        return InputError(f"stage {name} failed: cannot write output ({exc.strerror}: {exc.filename}); "
                          "free disk space or choose a writable run.output_dir, then rerun with --resume")
    if isinstance(exc, EdgeslimError):
        new = type(exc).__new__(type(exc))
        Exception.__init__(new, f"stage {name} failed: {exc}")
        new.__dict__.update(exc.__dict__)
        return new
    return StageError(f"stage {name} failed: {type(exc).__name__}: {exc}")


def load_cached(folder: Path, key: str) -> StageRecord | None:
    """The finished stage in ``folder`` when its key matches and its files are all there."""
    meta = folder / "meta.json"
    if not meta.is_file():
        return None
    try:
        m = json.loads(meta.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(m, dict) or m.get("key") != key or m.get("status") != "completed":
        return None
    try:
        rec = StageRecord.from_meta(m, folder)
    except (KeyError, TypeError, ValueError):
        return None
    # A stage folder whose model was deleted by hand is recomputed, not reused.
    if any(f and not (folder / f).is_file() for f in (rec.model_file, rec.onnx_file)):
        return None
    return rec


def _remove_stale(run_dir: Path, planned: set[str], reporter: Reporter) -> None:
    """Drop stage folders an earlier version of the recipe left (they would mislead a reader).

    Only folders edgeslim made are touched: a stage folder (its meta.json says so) that this
    recipe no longer has, or the ``<stage>.failed`` folder (a failed gate's artifact) of a stage
    of this recipe that has now succeeded. Anything else, even named like ``07-x``, is kept.
    """
    for p in sorted(run_dir.iterdir()):
        if not (p.is_dir() and re.match(r"^\d{2}-", p.name)):
            continue
        failed = p.name.endswith(".failed")
        ours_and_done = failed and p.name.removesuffix(".failed") in planned
        ours_and_stale = not failed and p.name not in planned and is_stage_folder(p)
        if not (ours_and_done or ours_and_stale):
            continue
        _remove(p)
        reporter.log(f"[dim]removed {p.name}: not a stage of this recipe, or superseded[/dim]")


def is_stage_folder(p: Path) -> bool:
    """True when ``p`` holds the meta.json of an edgeslim stage matching its folder name."""
    try:
        m = json.loads((p / "meta.json").read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(m, dict) and {"index", "name", "key", "status"} <= m.keys()
            and isinstance(m["index"], int) and p.name.startswith(f"{m['index']:02d}-"))


def _remove(p: Path) -> None:
    if p.is_symlink():  # tune trials link the shared base stages: drop the link, never its target
        p.unlink()
    else:
        shutil.rmtree(p, ignore_errors=True)


def _advance_chain(chain: dict[str, Any], rec: StageRecord) -> None:
    if rec.model_file:
        chain["model_path"] = rec.dir / rec.model_file
    if rec.onnx_file:
        chain["onnx_path"] = rec.dir / rec.onnx_file
    if rec.class_names:
        chain["class_names"] = rec.class_names


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("run.device is 'cuda' but no CUDA GPU is visible; use device: cpu or auto")
    return torch.device(name)
