"""``edgeslim tune RECIPE [--trials N] [--sampler grid|random|tpe] [--storage URL] [--study NAME]``

The study continues when the same command is run again.
"""

from __future__ import annotations

import argparse

from edgeslim.cli import add_quiet


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tune",
        help="hyperparameter search over a recipe's search: block (Optuna)",
        description="Search the recipe's 'search:' space with Optuna. The study is stored in "
        "<run>/tune/study.db (or --storage), so rerunning the same command continues it.",
        epilog="examples:\n  edgeslim tune recipes/tune-demo.yaml --trials 12 --sampler tpe\n"
        "  edgeslim tune recipes/tune-demo.yaml --storage postgresql://u:p@db/optuna --study demo",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", help="path to a recipe .yaml with a search: block")
    p.add_argument(
        "--trials", type=int, help="finished trials the study should reach (default search.trials)"
    )
    p.add_argument("--sampler", choices=("grid", "random", "tpe"), help="default search.sampler")
    p.add_argument(
        "--pruner", choices=("none", "median", "hyperband"), help="default search.pruner"
    )
    p.add_argument(
        "--storage", help="Optuna RDB URL shared by workers (default sqlite in the run folder)"
    )
    p.add_argument("--study", help="study name (default run.name)")
    add_quiet(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeslim.errors import InputError
    from edgeslim.progress import Reporter
    from edgeslim.tune.study import tune

    if args.trials is not None and args.trials < 1:
        raise InputError(f"--trials must be at least 1; given {args.trials}")
    s = tune(
        args.recipe,
        trials=args.trials,
        sampler=args.sampler,
        storage=args.storage,
        study_name=args.study,
        pruner=args.pruner,
        reporter=Reporter(quiet=args.quiet),
    )
    print(
        f"study {s['study']}: {s['n_complete']} complete, {s['n_pruned']} pruned, "
        f"{s['n_failed']} failed"
    )
    if "best_value" in s:
        print(
            f"best trial #{s['best_trial']}: {s['metric']} = {s['best_value']:.4f} "
            f"{s['best_params']}"
        )
        print(f"best recipe: {s['best_recipe']}")
    print(f"trials:      {s['trials_csv']}")
    for p in s["plots"]:
        print(f"plot:        {p}")
    return 0
