"""``edgeslim validate RECIPE``"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a recipe without running it",
                       epilog="example: edgeslim validate recipes/demo.yaml")
    p.add_argument("recipe")
    p.add_argument("--print", action="store_true", help="print the resolved recipe with all defaults")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    import yaml

    from edgeslim.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    if args.print:
        print(yaml.safe_dump(recipe.resolved(), sort_keys=False))
    print(f"ok: {args.recipe} ({len(recipe.stages)} stages: {', '.join(s.stage for s in recipe.stages)})")
    return 0
