"""``edgeslim zoo ZOO.yaml --out DIR`` and ``edgeslim zoo merge DIR... --out DIR``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgeslim.cli import add_quiet

EPILOG = """examples:
  edgeslim zoo zoo.yaml --out zoo-out                      every model of the file
  edgeslim zoo --torchvision --out tv --workers 2          all torchvision classifiers <= 150M params
  edgeslim zoo --timm 'resnet*' --input-size 64 --precisions fp32 --out r
  edgeslim zoo zoo.yaml --out part0 --shard 0/2            one shard (CI matrix, Slurm array)
  edgeslim zoo merge part0 part1 --out all                 one matrix from the shards
  edgeslim zoo zoo.yaml --out z --ray auto                 the same tasks on a running Ray cluster
A rerun with the same --out skips finished models (results.jsonl); --retry-failed reruns the
failed ones. Outputs: DIR/matrix.csv, matrix.md, matrix.html, results.jsonl, DIR/<model>/."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "zoo", help="batch export + parity + INT8 + latency of a model zoo (isolated, resumable)",
        description="Export every model of a zoo to ONNX (FP32, INT8), check parity and time it; one worker "
        "process per model with a timeout and a memory cap; results resume, shard and merge.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("items", nargs="*", metavar="ZOO.yaml | merge DIR...",
                   help="a zoo file (models: list + defaults), or 'merge' and the folders to merge")
    p.add_argument("--out", required=True, help="output folder (results.jsonl, matrix.*, one folder per model)")
    p.add_argument("--torchvision", action="store_true", help="add every torchvision classification model")
    p.add_argument("--max-params", default="150M", help="--torchvision: largest model (default 150M)")
    p.add_argument("--timm", action="append", default=[], metavar="PATTERN",
                   help="add the installed timm's list_models(PATTERN), e.g. 'resnet*' (repeatable)")
    p.add_argument("--only", action="append", default=[], metavar="PATTERN",
                   help="run only models whose name matches (shell pattern, repeatable)")
    p.add_argument("--workers", type=int, default=1, help="models at once on this machine (default 1)")
    p.add_argument("--shard", metavar="I/N", help="run shard I of N (deterministic by model name)")
    p.add_argument("--ray", metavar="ADDRESS", help="run the tasks on a Ray cluster: HOST:PORT, ray://... or auto")
    over = p.add_argument_group("settings for every model (a model's own keys in the file still win)")
    over.add_argument("--backend", help="latency backends, comma-separated (default onnxruntime)")
    over.add_argument("--precisions", help="fp32 or fp32,int8 (default)")
    over.add_argument("--int8", choices=("auto", "static", "static_matmul", "dynamic"),
                      help="auto (default: static QDQ; only the weight layers of a net with attention), static, "
                           "static_matmul or dynamic INT8")
    over.add_argument("--calibration", help="folder of images/.npy for static INT8 (default: synthetic images)")
    over.add_argument("--input-size", type=int, help="image side (default: each source's own)")
    over.add_argument("--opset", type=int)
    over.add_argument("--threads", type=int, help="threads per model (default 1)")
    over.add_argument("--timeout", type=float, dest="timeout_s", help="seconds per model (default 900)")
    over.add_argument("--memory-gb", type=float, help="address-space cap per worker (default: the machine's RAM)")
    over.add_argument("--latency-iters", type=int, help="timed runs per backend and precision (default 50)")
    p.add_argument("--retry-failed", action="store_true", help="rerun models whose row is 'failed'")
    p.add_argument("--redo", action="store_true", help="rerun every model, finished or not")
    p.add_argument("--strict", action="store_true", help="exit 1 unless every model is ok")
    p.add_argument("--no-artifacts", action="store_true", help="merge: do not link model folders into --out")
    add_quiet(p)
    p.set_defaults(func=main)


def _count(text: str) -> float:
    from edgeslim.errors import InputError

    t = text.strip().upper()
    mult = {"K": 1e3, "M": 1e6, "G": 1e9}.get(t[-1:], 1.0)
    try:
        return float(t[:-1] if mult != 1.0 else t) * mult
    except ValueError:
        raise InputError(f"--max-params '{text}' is not a count; write e.g. 150M or 25e6") from None


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("int8", "calibration", "input_size", "opset", "threads", "timeout_s", "memory_gb", "latency_iters"):
        if getattr(args, key) is not None:
            out[key] = getattr(args, key)
    if args.backend:
        out["backends"] = [b.strip() for b in args.backend.split(",") if b.strip()]
    if args.precisions:
        out["precisions"] = [b.strip() for b in args.precisions.split(",") if b.strip()]
    return out


def _defaults(args: argparse.Namespace, zoo: Any) -> Any:
    """The file's defaults with the command line's settings on top (validated: one line each)."""
    from pydantic import ValidationError

    from edgeslim.errors import RecipeError
    from edgeslim.recipe import format_validation
    from edgeslim.zoo.config import ZooSettings

    base = zoo.model_dump(exclude={"models"}) if zoo is not None else {}
    over = _overrides(args)
    try:
        return ZooSettings.model_validate({**base, **over})
    except ValidationError as exc:
        lines = format_validation(exc, ZooSettings)
        raise RecipeError([f"command line: {ln}" for ln in lines]) from None


def _plan(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the tasks to run, the tasks the matrix lists: the zoo's, or its shard's, whatever --only says)."""
    import fnmatch

    from edgeslim.errors import InputError
    from edgeslim.zoo.config import load_zoo_file, timm_entries, torchvision_entries
    from edgeslim.zoo.plan import in_shard, make_tasks, parse_shard

    if len(args.items) > 1:
        raise InputError(f"give one zoo file, not {len(args.items)} ({' '.join(args.items)}); to combine "
                         "results use: edgeslim zoo merge DIR... --out DIR")
    if not args.items and not args.torchvision and not args.timm:
        raise InputError("nothing to run: give a zoo file (ZOO.yaml), --torchvision or --timm PATTERN")
    shard = parse_shard(args.shard)
    zoo = load_zoo_file(args.items[0]) if args.items else None
    entries = list(zoo.models) if zoo is not None else []
    if args.torchvision:
        entries += torchvision_entries(_count(args.max_params))
    for pattern in args.timm:
        entries += timm_entries(pattern)
    where = args.items[0] if args.items else "command line"
    shown = in_shard(make_tasks(_defaults(args, zoo), entries, where), shard)
    tasks = shown
    if args.only:
        tasks = [t for t in tasks if any(fnmatch.fnmatchcase(t["name"], p) for p in args.only)]
        if not tasks:
            raise InputError(f"--only {' '.join(args.only)} matches no model of this zoo{' shard' if shard else ''};"
                             " names look like 'timm:resnet18d' or 'torchvision:resnet18' (quote patterns: "
                             "--only 'timm:*')")
    return tasks, shown


def main(args: argparse.Namespace) -> int:
    from edgeslim.errors import InputError

    if args.workers < 1:
        raise InputError(f"--workers must be at least 1; given {args.workers}")
    if args.items[:1] == ["merge"]:
        return _merge(args)
    from edgeslim.zoo.sweep import SweepOptions, run_sweep

    tasks, shown = _plan(args)
    opts = SweepOptions(out=Path(args.out), workers=args.workers, ray=args.ray, retry_failed=args.retry_failed,
                        redo=args.redo, quiet=args.quiet)
    s = run_sweep(tasks, opts, shown)
    _print_summary(s, f"{s['computed']} computed, {s['reused']} reused, {s['wall_s']} s")
    return 1 if args.strict and s["ok"] != s["models"] else 0


def _merge(args: argparse.Namespace) -> int:
    from edgeslim.errors import InputError
    from edgeslim.zoo.sweep import merge

    if len(args.items) < 2:
        raise InputError("edgeslim zoo merge needs the folders to merge: edgeslim zoo merge DIR... --out DIR")
    s = merge([Path(d) for d in args.items[1:]], Path(args.out), artifacts=not args.no_artifacts)
    for m in s["conflicts"]:
        print(f"note: {m} was computed with different settings or versions in two folders; kept the newest row")
    _print_summary(s, f"merged from {len(s['merged_from'])} folder(s)")
    return 1 if args.strict and s["ok"] != s["models"] else 0


def _print_summary(s: dict[str, Any], how: str) -> None:
    print(f"zoo: {s['models']} models: {s['ok']} ok, {s['gate_failed']} gate failed, {s['failed']} failed ({how})")
    if s["by_error_class"]:
        print("not ok by error class: " + ", ".join(f"{k}: {v}" for k, v in s["by_error_class"].items()))
    print(f"matrix: {s['matrix']['html']}")
