"""``edgeslim run RECIPE [--resume]``"""

from __future__ import annotations

import argparse

from edgeslim.cli import add_quiet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a recipe's stages", description="Run every stage of a recipe. "
                       "Stages whose inputs and settings hash the same as a finished stage folder are reused.",
                       epilog="example: edgeslim run recipes/demo.yaml --resume")
    p.add_argument("recipe", help="path to a recipe .yaml")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run after its last completed stage")
    p.add_argument("--fresh", action="store_true", help="recompute every stage, ignoring finished ones")
    p.add_argument("--output-dir", help="override run.output_dir")
    p.add_argument("--name", help="override run.name")
    add_quiet(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeslim.pipeline import run_pipeline
    from edgeslim.progress import Reporter
    from edgeslim.recipe import load_recipe
    from edgeslim.report import print_table

    over: dict = {}
    if args.output_dir is not None:
        over.setdefault("run", {})["output_dir"] = args.output_dir
    if args.name is not None:  # --name "" is refused by validation, not ignored
        over.setdefault("run", {})["name"] = args.name
    recipe = load_recipe(args.recipe, over)
    if args.resume and args.fresh:
        from edgeslim.errors import InputError

        raise InputError("--resume and --fresh contradict each other; give one of them")
    reporter = Reporter(quiet=args.quiet)
    res = run_pipeline(recipe, reporter, fresh=args.fresh)
    from rich.console import Console

    print_table(res.record, Console())
    print(f"run record: {res.run_dir / 'run.json'}\nreport:     {res.report}")
    return 0
