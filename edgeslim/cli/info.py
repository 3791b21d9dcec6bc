"""``edgeslim info MODEL [--checkpoint PATH]``"""

from __future__ import annotations

import argparse

EPILOG = """examples:
  edgeslim info tinyresnet
  edgeslim info torchvision:resnet18 --image-size 224
  edgeslim info tinycnn --checkpoint my.pt --num-classes 5
  edgeslim info mynet.py:TwoBranchNet --checkpoint w.pt      your own class (imports mynet.py)
  edgeslim info mypkg.models:build_net --kwargs '{"width": 32}'
  edgeslim info model.onnx | model.pt2 | model.ts             frozen graphs
  edgeslim info runs/demo/01-finetune/model.pt"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="params, MACs, size and layer summary of a model", epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="registry name (tinycnn, torchvision:resnet18, timm:...), path/to/file.py:Name, "
                   "package.module:Name, .onnx/.pt2/TorchScript file, or an edgeslim model.pt")
    p.add_argument("--checkpoint", help="local state dict (.pt/.pth/.safetensors) for the architecture")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--kwargs", help="builder arguments as JSON, e.g. '{\"width\": 8}'")
    p.add_argument("--image-size", type=int, default=None,
                   help="image side (default: what the model fixes or its source's default, else 32)")
    p.add_argument("--in-chans", type=int, default=3)
    p.add_argument("--depth", type=int, default=2, help="layer summary depth")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgeslim.models.inspect import describe, describe_frozen, open_model

    opened = open_model(args.model, args.checkpoint, args.num_classes, args.in_chans, args.image_size,
                        _kwargs(args.kwargs))
    if opened.frozen is not None:
        print(describe_frozen(opened, _frozen_macs(opened)))
        return 0
    assert opened.model is not None  # editable sources always give a module
    print(describe(opened.model, opened.input_shape, args.depth, Path(args.checkpoint) if args.checkpoint else None,
                   opened.kind))
    return 0


def _kwargs(text: str | None) -> dict:
    import json

    from edgeslim.errors import InputError

    if not text:
        return {}
    try:
        kw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"--kwargs '{text}' is not JSON ({exc.msg}); write e.g. '{{\"width\": 8}}'") from exc
    if not isinstance(kw, dict):
        raise InputError(f"--kwargs must be a JSON object, e.g. '{{\"width\": 8}}'; given {text}")
    return kw


def _frozen_macs(opened) -> int | None:  # noqa: ANN001 - OpenedModel, imported lazily
    fm = opened.frozen
    if fm.kind == "onnx":
        from edgeslim.onnxio.info import count_macs

        return count_macs(fm.path, (1, *opened.input_shape))
    from edgeslim.measure import count_macs

    try:
        return count_macs(fm.module, opened.input_shape)
    except Exception:  # a graph the FLOP counter cannot follow: MACs are informative only
        return None
