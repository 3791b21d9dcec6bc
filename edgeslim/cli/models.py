"""``edgeslim models [PATTERN]``: list built-in models, stages and data sources."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list built-in models, stages and data sources",
                       epilog="examples:\n  edgeslim models\n  edgeslim models 'tiny*'\n"
                       "  edgeslim models --torchvision 'resnet*'",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. 'tiny*'")
    p.add_argument("--torchvision", action="store_true", help="list torchvision classification models instead")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import fnmatch

    if args.torchvision:
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)
        print("\n".join(f"torchvision:{n}" for n in names if fnmatch.fnmatch(n, args.pattern)))
        return 0
    from edgeslim.data.sources import data_sources
    from edgeslim.models import list_models
    from edgeslim.stages.registry import get_stage, stage_names

    print("built-in models:", ", ".join(list_models(args.pattern)) or "(none match)")
    print("data sources:   ", ", ".join(data_sources()))
    print("stages:")
    for name in stage_names():
        print(f"  {name:<10} {get_stage(name).doc}")
    return 0
