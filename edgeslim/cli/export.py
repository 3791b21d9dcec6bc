"""``edgeslim export MODEL_OR_RUN [--checkpoint PATH] --out FILE.onnx``"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

EPILOG = """examples:
  edgeslim export runs/demo --out demo.onnx       newest model of a run (its test split for parity)
  edgeslim export runs/demo/01-finetune/model.pt --out m.onnx  an edgeslim model file
  edgeslim export torchvision:resnet18 --checkpoint w.pth --num-classes 10 --input-size 224 \\
      --out r18.onnx
  edgeslim export tinycnn --input-size 32 --out tiny.onnx      a registry name (random weights)
The model is exported and gated under a temp name; FILE.onnx is written only when the FP32
parity gate passes. A failed gate exits 1, keeps the model as FILE.failed.onnx and leaves an
existing FILE.onnx untouched."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model or a run's model to ONNX (with parity gate)",
        description="Export to one ONNX file: dynamo exporter (TorchScript fallback), "
        "onnxslim, checker, shape inference, metadata, then the FP32 parity gate.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model", metavar="MODEL_OR_RUN", help="run folder, edgeslim model.pt, or registry name"
    )
    p.add_argument("--out", required=True, help="output .onnx file")
    p.add_argument(
        "--checkpoint", help="weights (.pt/.pth state dict or .safetensors) for a registry name"
    )
    p.add_argument("--num-classes", type=int, help="classes of the head (registry name only)")
    p.add_argument(
        "--kwargs", help="builder arguments as JSON (registry name only), e.g. '{\"width\": 8}'"
    )
    p.add_argument(
        "--input-size", type=int, help="image side in pixels (default: the run's, else 224/32)"
    )
    p.add_argument("--channels", type=int, default=None, choices=[1, 3])
    p.add_argument("--opset", type=int, default=18)
    p.add_argument("--exporter", choices=["auto", "dynamo", "torchscript"], default="auto")
    p.add_argument(
        "--static-batch", action="store_true", help="fixed batch 1 instead of a dynamic batch axis"
    )
    p.add_argument("--no-simplify", action="store_true", help="skip onnxslim")
    p.add_argument("--no-parity", action="store_true", help="skip the FP32 parity gate")
    p.add_argument("--samples", type=int, default=32, help="parity inputs")
    p.set_defaults(func=main)


def resolve_model(args: argparse.Namespace) -> tuple[Any, Any, str]:
    """(model, DataBundle or None, description) from a run folder, model file or registry name."""
    from edgeslim.errors import InputError
    from edgeslim.models.serialize import load_model

    src = Path(args.model)
    if src.is_dir():
        from edgeslim.deploy.bundle.build import data_of, load_run

        rec = load_run(src)
        st = next(
            (
                s
                for s in reversed(rec["stages"])
                if isinstance(s, dict) and s.get("status") == "completed" and s.get("model_file")
            ),
            None,
        )
        if st is None:
            raise InputError(f"run '{src}' has no completed stage with a torch model (model.pt)")
        path = src / st["dir"] / st["model_file"]
        return _readable(lambda: load_model(path), path), data_of(rec), f"{src.name}/{st['dir']}"
    if src.suffix in (".pt", ".pth", ".pt2", ".ts", ".jit") and src.is_file() and not args.checkpoint:
        from edgeslim.models.inspect import open_model  # edgeslim model.pt (any source), TorchScript, .pt2

        return _readable(lambda: open_model(str(src), image_size=args.input_size).model, src), None, src.name
    if src.suffix == ".onnx":
        raise InputError(f"'{src}' is already ONNX; deploy or bench it directly (edgeslim export takes torch models)")
    from edgeslim.models.registry import create_model

    in_chans = args.channels or 3
    kw = _kwargs(args.kwargs)
    model = _readable(
        lambda: create_model(args.model, num_classes=args.num_classes, in_chans=in_chans, **kw),
        args.model,
        "cannot be built with these arguments",
    )
    if args.checkpoint:
        from edgeslim.fsutil import require_file
        from edgeslim.models.checkpoint import load_weights_into

        ck = require_file(args.checkpoint, "checkpoint")
        _readable(lambda: load_weights_into(model, ck, num_classes=args.num_classes), ck)
    return model.eval(), None, args.model


def _readable(fn: Any, what: Any, problem: str = "cannot be read as a model or checkpoint") -> Any:
    """Call ``fn``; an unexpected library error becomes a one-line InputError naming ``what``."""
    from edgeslim.errors import EdgeslimError, InputError

    try:
        return fn()
    except EdgeslimError:
        raise
    except Exception as exc:  # torch.load/builders raise KeyError, TypeError, RuntimeError, ...
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        raise InputError(f"'{what}' {problem} ({type(exc).__name__}: {first})") from exc


def _kwargs(text: str | None) -> dict[str, Any]:
    from edgeslim.errors import InputError

    if not text:
        return {}
    try:
        kw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"--kwargs '{text}' is not JSON ({exc.msg}); write e.g. '{{\"width\": 8}}'"
        ) from exc
    if not isinstance(kw, dict):
        raise InputError(f"--kwargs must be a JSON object, e.g. '{{\"width\": 8}}'; given {text}")
    return kw


def _shape(args: argparse.Namespace, model: Any, data: Any) -> tuple[int, int, int]:
    if data is not None and args.input_size is None:
        return tuple(data.input_shape)  # type: ignore[return-value]
    from edgeslim.errors import InputError
    from edgeslim.models.source_registry import default_input_size

    spec = getattr(model, "_edgeslim_spec", {}) or {}
    try:
        known = default_input_size(str(spec.get("source", args.model)), spec.get("kwargs"))
    except InputError:  # an in-memory object source named in an old spec: no default
        known = None
    size = args.input_size or known or 32
    return (args.channels or int(spec.get("in_chans", 3)), size, size)


def _probe_data(shape: tuple[int, int, int], n: int) -> Any:
    """Outside a run there is no test split: synthetic shape images stand in as realistic inputs."""
    from edgeslim.data import build_data
    from edgeslim.recipe import DataSpec

    return build_data(
        DataSpec(
            source="synthetic",
            image_size=shape[1],
            channels=shape[0],
            synthetic_classes=4,
            synthetic_per_class=max(8, n),
            test_fraction=0.3,
            val_fraction=0.1,
        ),
        seed=0,
    )


def _check_args(args: argparse.Namespace, out: Path) -> None:
    from edgeslim.errors import InputError

    if out.suffix != ".onnx":
        raise InputError(f"--out '{out}' must end in .onnx, e.g. --out model.onnx")
    if out.is_symlink() or (out.exists() and not out.is_file()):
        raise InputError(
            f"--out '{out}' is a folder, link or special file; give a file name like model.onnx"
        )
    limits = {"samples": (1, 100_000), "input_size": (8, 4096), "num_classes": (1, 100_000),
              "opset": (13, 23)}
    for name, (lo, hi) in limits.items():
        v = getattr(args, name)
        if v is not None and not lo <= v <= hi:
            raise InputError(f"--{name.replace('_', '-')} {v} is out of range; give {lo}..{hi}")


def main(args: argparse.Namespace) -> int:
    from edgeslim.deploy.bundle.outpath import os_error_message, output_lock
    from edgeslim.errors import InputError
    from edgeslim.onnxio.export import export_onnx, move_onnx, staging_dir

    out = Path(args.out)
    _check_args(args, out)
    model, data, what = resolve_model(args)
    shape = _shape(args, model, data)
    meta: dict[str, Any] = {"edgeslim.source": what, "edgeslim.precision": "fp32"}
    if data is not None:
        meta.update(
            {
                "edgeslim.class_names": data.class_names,
                "edgeslim.mean": data.mean,
                "edgeslim.std": data.std,
            }
        )
    # exported and gated under a temp name: FILE.onnx appears only after the gate passed
    with output_lock(out), staging_dir(out) as stage:
        staged = stage / out.name
        try:
            res = export_onnx(
                model, shape, staged, args.opset, not args.static_batch, meta, args.exporter,
                simplify=not args.no_simplify,
            )
            rep = None if args.no_parity else _parity_gate(model, staged, out, shape, data, args.samples)
            move_onnx(staged, out)
        except OSError as exc:
            raise InputError(os_error_message(exc, f"exporting to '{out}'")) from exc
    for note in res.warnings:  # a fallback to the TorchScript exporter, a skipped simplification...
        print(f"note: {note}", file=sys.stderr)
    info: dict[str, Any] = {
        "onnx": str(out),
        "exporter": res.exporter,
        "opset": res.opset,
        "input_shape": list(shape),
        "simplified": res.simplified,
        "warnings": res.warnings,
    }
    if rep is not None:
        from edgeslim.fsutil import atomic_write_json

        atomic_write_json(out.with_name(out.name + ".parity.json"), rep.to_json())
        info["parity"] = rep.summary()
    print(json.dumps(info))
    return 0


def _parity_gate(
    model: Any, staged: Path, out: Path, shape: tuple[int, int, int], data: Any, samples: int
) -> Any:
    """FP32 gate on the staged file. On failure it is kept as FILE.failed.onnx (with its report
    FILE.failed.onnx.parity.json), FILE.onnx stays as it was, and GateError propagates."""
    from edgeslim.deploy.export.parity import ParityConfig, fp32_parity, gate, split_inputs
    from edgeslim.errors import GateError
    from edgeslim.fsutil import atomic_write_json
    from edgeslim.onnxio.export import move_onnx
    from edgeslim.runtime import open_backend

    x, _ = split_inputs(data if data is not None else _probe_data(shape, samples), samples)
    art = open_backend(staged, "onnxruntime")
    cfg = ParityConfig(samples=samples)
    rep = fp32_parity(
        open_backend(model, "torch", input_shape=shape), art, x, cfg, out.name, "pytorch", art.output_names
    )
    failed = out.with_name(out.stem + ".failed.onnx")
    try:
        gate(rep, None, f"{failed} ({out.name} left unchanged)")
    except GateError:
        move_onnx(staged, failed)
        atomic_write_json(failed.with_name(failed.name + ".parity.json"), rep.to_json())
        raise
    return rep
