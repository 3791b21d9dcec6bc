"""The pipeline runner: stages in order, each written atomically, cached by the hash of its inputs."""

from __future__ import annotations

import errno
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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

CACHE_VERSION = 1  # bump when stage outputs change meaning, so old caches are not reused


@dataclass
class RunResult:
    run_dir: Path
    record: dict[str, Any]
    stages: list[StageRecord]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def stage_dir(run_dir: Path, index: int, cfg: Any) -> Path:
    return run_dir / f"{index:02d}-{cfg.label or cfg.stage}"


def run_pipeline(recipe: Recipe, reporter: Reporter | None = None, fresh: bool = False) -> RunResult:
    """Run every stage of ``recipe``; stages whose key matches a finished folder are reused."""
    reporter = reporter or Reporter()
    run_dir = recipe.run_dir()
    preflight(recipe)
    ensure_writable_dir(run_dir)
    clean_stale_temps(run_dir)
    if recipe.run.threads:
        torch.set_num_threads(recipe.run.threads)
    resolved = recipe.resolved()
    record = new_record(recipe.run.name, resolved, sha256_json(resolved)[:16], recipe.run.seed)
    device = _device(recipe.run.device)
    key = sha256_json({"model": resolved["model"], "data": resolved["data"], "seed": recipe.run.seed,
                       "v": CACHE_VERSION})
    history: list[StageRecord] = []
    chain: dict[str, Any] = {"model_path": None, "onnx_path": None, "class_names": None}
    for i, cfg in enumerate(recipe.stages):
        key = sha256_json({"prev": key, "stage": cfg.model_dump(mode="json")})
        folder = stage_dir(run_dir, i, cfg)
        rec = None if fresh else load_cached(folder, key)
        if rec is not None:
            reporter.log(f"[dim]{folder.name}: up to date, reused[/dim]")
        else:
            rec = _run_stage(recipe, i, cfg, folder, key, history, chain, device, reporter, record, run_dir)
        history.append(rec)
        record["stages"] = [h.to_json(run_dir) for h in history]
        _advance_chain(chain, rec)
        write_record(run_dir, record)
    _remove_stale(run_dir, {h.dir.name for h in history}, reporter)
    record["status"] = "completed"
    record["final"] = next((h.metrics for h in reversed(history) if "test_accuracy" in h.metrics), {})
    write_record(run_dir, record)
    return RunResult(run_dir, record, history)


def preflight(recipe: Recipe) -> None:
    """Check the inputs every run needs before anything is written: data and model weights."""
    from edgeslim.data import build_data

    data = build_data(recipe.data, recipe.run.seed)
    if recipe.model.checkpoint or recipe.model.weights:
        from edgeslim.models.factory import model_from_spec

        model_from_spec(recipe.model, data.input_shape[0], data.num_classes)


def _run_stage(recipe: Recipe, i: int, cfg: Any, folder: Path, key: str, history: list[StageRecord],
               chain: dict[str, Any], device: torch.device, reporter: Reporter, record: dict[str, Any],
               run_dir: Path) -> StageRecord:
    sdef = get_stage(cfg.stage)
    rec = StageRecord(i, cfg.stage, folder, status="running", key=key)
    reporter.log(f"[bold]{folder.name}[/bold]: {sdef.doc or cfg.stage}")
    record["stages"] = [h.to_json(run_dir) for h in history] + [rec.to_json(run_dir)]
    write_record(run_dir, record)
    seed_everything(recipe.run.seed + 1000 * (i + 1))
    t0 = time.perf_counter()
    try:
        with atomic_dir(folder, keep_failed=GateError) as tmp:
            ctx = StageContext(recipe, i, tmp, run_dir, recipe.run.seed + 1000 * (i + 1), device, reporter,
                               list(history), chain["model_path"], chain["onnx_path"], chain["class_names"])
            out = sdef.run(cfg, ctx)
            rec.wall_s = time.perf_counter() - t0
            finish_stage(rec, out, ctx, tmp)
    except BaseException as exc:
        rec.status, rec.wall_s = "failed", time.perf_counter() - t0
        rec.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, KeyboardInterrupt) else "interrupted"
        record["status"] = "failed" if not isinstance(exc, KeyboardInterrupt) else "interrupted"
        record["stages"] = [h.to_json(run_dir) for h in history] + [rec.to_json(run_dir)]
        write_record(run_dir, record)
        raise _stage_failure(folder.name, exc) from exc
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
    meta = folder / "meta.json"
    if not meta.is_file():
        return None
    try:
        m = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if m.get("key") != key or m.get("status") != "completed":
        return None
    return StageRecord(m["index"], m["name"], folder, "completed", key, m.get("wall_s", 0.0), m.get("metrics", {}),
                       m.get("artifact"), m.get("model_file"), m.get("onnx_file"), m.get("class_names"))


def _remove_stale(run_dir: Path, planned: set[str], reporter: Reporter) -> None:
    """Drop stage folders an earlier version of the recipe left (they would mislead a reader).

    A ``<stage>.failed`` folder (a failed gate's artifact) is kept until that stage succeeds.
    """
    import re
    import shutil

    for p in sorted(run_dir.iterdir()):
        if not (p.is_dir() and re.match(r"^\d{2}-", p.name)):
            continue
        failed = p.name.endswith(".failed")
        if (failed and p.name.removesuffix(".failed") in planned) or (not failed and p.name not in planned):
            shutil.rmtree(p, ignore_errors=True)
            reporter.log(f"[dim]removed {p.name}: not a stage of this recipe, or superseded[/dim]")


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
