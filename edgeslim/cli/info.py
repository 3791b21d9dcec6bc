"""``edgeslim info MODEL [--checkpoint PATH]``"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="params, MACs, size and layer summary of a model",
                       epilog="examples:\n  edgeslim info tinyresnet\n  edgeslim info torchvision:resnet18 "
                       "--image-size 224\n  edgeslim info tinycnn --checkpoint my.pt --num-classes 5\n"
                       "  edgeslim info runs/demo/01-finetune/model.pt",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", help="registry name (tinycnn, torchvision:resnet18, timm:...) or an edgeslim model.pt")
    p.add_argument("--checkpoint", help="local state dict (.pt/.pth/.safetensors) for the architecture")
    p.add_argument("--num-classes", type=int, default=None)
    p.add_argument("--image-size", type=int, default=32)
    p.add_argument("--in-chans", type=int, default=3)
    p.add_argument("--depth", type=int, default=2, help="layer summary depth")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgeslim.models.inspect import describe, load_for_info

    model, shape = load_for_info(args.model, args.checkpoint, args.num_classes, args.in_chans, args.image_size)
    print(describe(model, shape, args.depth, Path(args.checkpoint) if args.checkpoint else None))
    return 0
