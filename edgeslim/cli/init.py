"""``edgeslim init``: write a commented starter recipe from a few answers.

The recipe is validated before it is written (it passes ``edgeslim validate``), an existing file
is never overwritten without ``--force``, and the write is atomic.
"""

from __future__ import annotations

import argparse
import datetime
from pathlib import Path
from typing import Any

EPILOG = """examples:
  edgeslim init --model mynet.py:Net --checkpoint w.pt --data path/to/images \\
      --target jetson-orin-nano --out recipe.yaml
  edgeslim init --model torchvision:mobilenet_v3_small --weights DEFAULT --data photos --out r.yaml
  edgeslim init --model model.onnx --data photos --target jetson-orin-nano --out r.yaml   (frozen graph)
Then: edgeslim validate recipe.yaml && edgeslim run recipe.yaml"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("init", help="write a commented starter recipe for your model, data and target",
                       epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="model source: path/to/file.py:Class, package.module:Name, "
                   "torchvision:NAME, timm:NAME, a built-in, or a .onnx/.pt2/TorchScript file")
    p.add_argument("--checkpoint", help="your trained weights (.pt/.pth state dict or .safetensors)")
    p.add_argument("--weights", help="torchvision weights enum (DEFAULT, IMAGENET1K_V1), local cache only")
    p.add_argument("--data", required=True, help="image folder (one sub-folder per class), or a data source "
                   "name (digits, synthetic)")
    p.add_argument("--target", default="x86-cpu", help="deploy profile (edgeslim deploy --help lists them)")
    p.add_argument("--out", required=True, help="recipe file to write (.yaml)")
    p.add_argument("--image-size", type=int, help="input side in pixels (default: the model's, else 224)")
    p.add_argument("--macs", type=float, default=0.5, help="prune target: fraction of MACs to keep (default 0.5)")
    p.add_argument("--name", help="run name (default: the recipe file's name)")
    p.add_argument("--force", action="store_true", help="replace an existing file")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeslim.errors import InputError
    from edgeslim.fsutil import atomic_write_text

    out = Path(args.out)
    if out.suffix not in (".yaml", ".yml"):
        raise InputError(f"--out '{out}' must end in .yaml, e.g. --out recipe.yaml")
    if out.exists() and not args.force:
        raise InputError(f"'{out}' already exists; pass --force to replace it, or choose another --out")
    text = starter_recipe(**_answers(args))
    _validate(text, out)
    atomic_write_text(out, text)
    print(f"wrote {out}; check it with `edgeslim validate {out}`, run it with `edgeslim run {out}`")
    return 0


def _answers(args: argparse.Namespace) -> dict[str, Any]:
    from edgeslim.data.sources import data_sources
    from edgeslim.deploy.profiles import get_profile
    from edgeslim.errors import InputError
    from edgeslim.models.source_registry import check_source, default_input_size

    info = check_source(args.model)
    get_profile(args.target)  # unknown names fail here with the valid ones
    if args.checkpoint and not Path(args.checkpoint).is_file():
        raise InputError(f"--checkpoint '{args.checkpoint}' does not exist; give the path to your weights file")
    if not 0 < args.macs < 1:
        raise InputError(f"--macs {args.macs} is not a fraction; give e.g. 0.5 (keep half of the MACs)")
    data = args.data
    if data not in data_sources() and not Path(data).is_dir():
        raise InputError(f"--data '{data}' is not a folder of images nor a data source "
                         f"({', '.join(data_sources())}); give a folder with one sub-folder per class")
    size = args.image_size or _size(info.source)
    return {"path": str(args.out), "model": args.model, "checkpoint": args.checkpoint, "weights": args.weights,
            "data": data, "target": args.target, "image_size": size, "macs": args.macs, "frozen": not info.editable,
            "name": args.name or Path(args.out).stem, "known_size": default_input_size(info.source) is not None}


def _size(source: str) -> int:
    from edgeslim.models.source_registry import default_input_size

    try:
        return default_input_size(source) or 224
    except Exception:  # a frozen graph that cannot be probed: the usual ImageNet size
        return 224


def _y(value: Any) -> str:
    """One YAML scalar or flow collection, quoted as YAML needs it."""
    import yaml

    return yaml.safe_dump(value, default_flow_style=True, width=1000).strip().removesuffix("\n...").strip()


def starter_recipe(path: str, model: str, checkpoint: str | None, weights: str | None, data: str, target: str,
                   image_size: int, macs: float, frozen: bool, name: str, known_size: bool) -> str:
    """The commented recipe text (see ``edgeslim init --help``)."""
    today = datetime.date.today().isoformat()
    lines = [
        f"# edgeslim recipe written by `edgeslim init` on {today}.",
        f"# {model} -> {'INT8' if not frozen else 'INT8 (frozen graph)'} -> {target} bundle.",
        f"# Check it: edgeslim validate {path}    Run it: edgeslim run {path}",
        "run:",
        f"  name: {_y(name)}             # outputs go to <output_dir>/<name>/",
        "  output_dir: runs",
        "  seed: 0",
        "",
        "model:",
        f"  source: {_y(model)}" + ("   # imports your file: its code runs as Python" if ".py:" in model else ""),
    ]
    if checkpoint:
        lines.append(f"  checkpoint: {_y(checkpoint)}   # a state dict, loaded with weights_only=True")
    if weights:
        lines.append(f"  weights: {_y(weights)}   # torchvision weights enum, from the local torch hub cache")
    if not frozen:
        lines.append("  kwargs: {}                # arguments your class or factory takes, e.g. {width: 32}")
    lines += ["", "data:", *_data_lines(data, image_size, known_size), "", "stages:", *_stage_lines(
        checkpoint or weights, frozen, macs, target)]
    return "\n".join(lines) + "\n"


def _data_lines(data: str, image_size: int, known_size: bool) -> list[str]:
    from edgeslim.data.sources import data_sources

    if data in data_sources():
        out = [f"  source: {data}"]
    else:
        out = ["  source: imagefolder        # root/<class>/*.png|jpg: one sub-folder per class",
               f"  root: {_y(data)}"]
    out += [
        f"  image_size: {image_size}" + ("" if known_size else "            # the side your model was trained at"),
        "  # The normalisation your checkpoint was trained with. Left null: torchvision / timm weights",
        "  # bring their own; for your own checkpoint the train split's statistics are used and the run",
        "  # warns. Set them, e.g. ImageNet's [0.485, 0.456, 0.406] / [0.229, 0.224, 0.225].",
        "  mean: null",
        "  std: null",
        "  val_fraction: 0.15        # the accuracy guards and precision choice use this split",
        "  test_fraction: 0.2        # reported, never used to choose",
    ]
    return out


def _stage_lines(pretrained: str | None, frozen: bool, macs: float, target: str) -> list[str]:
    out: list[str] = []
    if frozen:
        out += ["  # A frozen graph (ONNX / ExportedProgram / TorchScript) cannot be pruned or trained;",
                "  # give model.source as path/to/file.py:Class plus model.checkpoint to prune it."]
    elif not pretrained:
        out += ["  - stage: finetune           # no checkpoint given: train first",
                "    train: {epochs: 10, batch_size: 32, optimizer: {name: adamw, lr: 0.001}}"]
    if not frozen:
        out += [f"  - stage: prune              # structured pruning to <= {macs:g} of the MACs",
                f"    target: {{macs: {macs:g}}}",
                "    steps: 2                  # prune, recover, prune, recover",
                "    accuracy_budget: 5.0      # fail if val top-1 drops more than 5 points (on_budget: warn to keep)",
                "    recovery:",
                "      train: {epochs: 5, batch_size: 32, optimizer: {lr: 0.001}}",
                "      kd: {teacher: auto}     # distil from the unpruned model while recovering"]
    out += ["  - stage: quantize           # static INT8, built the way the deploy target's runtime takes it",
            "    precision: int8",
            "    calibration: {samples: 256}",
            "    accuracy_budget: 1.0      # max val top-1 drop vs the float model, in points",
            "  - stage: export             # final ONNX + parity gate against the float parent",
            "  - stage: deploy             # edge bundle with a standalone runner",
            f"    target: {target}"]
    return out


def _validate(text: str, out: Path) -> None:
    """The written recipe must load; a failure here is a bug in this command, said plainly."""
    import yaml

    from edgeslim.errors import RecipeError
    from edgeslim.recipe import parse_recipe

    try:
        parse_recipe(yaml.safe_load(text), str(out))
    except RecipeError as exc:
        raise RecipeError([f"edgeslim init built an invalid recipe (please report): {p}" for p in exc.problems]) \
            from exc
