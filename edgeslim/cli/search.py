"""``edgeslim search RECIPE --trials N [--sampler nsga2|tpe|random|grid] [--pick 'latency_ms<=2.0'] ...``

Accuracy vs measured latency of the deployed artifact; rerunning the same command continues the study.
"""

from __future__ import annotations

import argparse

from edgeslim.cli import add_quiet

EPILOG = """examples:
  edgeslim search recipes/search-demo.yaml --trials 12
  edgeslim search recipes/search-demo.yaml --trials 24 --sampler nsga2 --seed 1
  edgeslim search recipes/search-demo.yaml --pick 'latency_ms<=0.12'      (no new trials: pick and run)
  edgeslim search recipes/search-demo.yaml --trials 12 --pick 'accuracy>=0.95'
  edgeslim search recipes/search-demo.yaml --backend openvino --threads 2
  edgeslim search recipes/search-demo.yaml --remote pi@raspberrypi.local --known-hosts ~/.ssh/known_hosts
  edgeslim search recipes/search-demo.yaml --storage postgresql://u:p@db/optuna --study demo   (several workers)
outputs: runs/<name>/search/{pareto.json,trials.csv,pareto.png,summary.json}; with --pick also
picked-recipe.yaml and the run runs/<name>-picked/ (its TEST accuracy is printed)
exit codes: 0 ok, 1 failure, 2 bad input"""


def register(sub: argparse._SubParsersAction) -> None:
    from edgeslim.deploy.gate.ssh import add_remote_args

    p = sub.add_parser(
        "search",
        help="compression search: accuracy vs measured latency of the deployed artifact (Pareto front)",
        description="A two-objective Optuna study over the compression settings the recipe's search: block "
        "marks searchable: maximise the final artifact's validation accuracy, minimise its latency measured "
        "on the target. The study is stored in <run>/search/study.db (or --storage): rerunning continues it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("recipe", help="path to a recipe .yaml with a search: block over compression settings")
    p.add_argument("--trials", type=int, help="completed trials the study should reach (default search.trials)")
    p.add_argument("--sampler", choices=("nsga2", "tpe", "random", "grid"), help="default search.sampler (tpe)")
    p.add_argument("--seed", type=int, help="sampler seed (default search.seed, else run.seed)")
    p.add_argument("--storage", help="Optuna RDB URL shared by workers (default sqlite in <run>/search)")
    p.add_argument("--study", help="study name (default run.name)")
    p.add_argument("--backend", metavar="NAME",
                   help="runtime that runs and times the artifact: onnxruntime or openvino (default: the one "
                   "the quantize stage chose, else onnxruntime)")
    p.add_argument("--threads", type=int,
                   help="intra-op threads when timing (default search.threads, else run.threads)")
    p.add_argument("--pick", metavar="COND",
                   help="after the trials, choose a point and run its recipe: 'latency_ms<=2.0' (most accurate "
                   "within the bound) or 'accuracy>=0.95' (fastest meeting it)")
    add_remote_args(p)
    add_quiet(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeslim.errors import InputError
    from edgeslim.progress import Reporter
    from edgeslim.search.study import search

    for name in ("trials", "threads"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise InputError(f"--{name} must be at least 1; given {v}")
    remote = None
    if args.remote:
        from edgeslim.deploy.gate.ssh import target_from_args

        remote = target_from_args(args)
    s = search(args.recipe, trials=args.trials, sampler=args.sampler, storage=args.storage,
               study_name=args.study, seed=args.seed, backend=args.backend, threads=args.threads,
               remote=remote, pick=args.pick, reporter=Reporter(quiet=args.quiet))
    hv = s["hypervolume"]
    print(f"study {s['study']}: {s['n_complete']} complete, {s['n_failed']} failed, {s['n_pareto']} on the front"
          + (f"; hypervolume {hv['normalized']:.4f} (normalised; reference accuracy {hv['reference']['accuracy']:g}, "
             f"latency {hv['reference']['latency_ms']:.4g} ms)" if hv else ""))
    for key in ("pareto_json", "trials_csv", "pareto_png"):
        if key in s["files"]:
            print(f"{key.replace('_', '.'):<12} {s['files'][key]}")
    if "picked" in s:
        pk = s["picked"]
        pt = pk["point"]
        test = pk["test_accuracy"]
        print(f"picked ({pk['pick']}): trial #{pt['trial']}, val accuracy {pt['accuracy']:.4f}, "
              f"latency {pt['latency_ms']:.4g} ms; TEST accuracy {test:.4f}" if test is not None else
              f"picked ({pk['pick']}): trial #{pt['trial']}; the run recorded no test accuracy")
        print(f"recipe:      {pk['recipe']}\nrun:         {pk['run_dir']}\n"
              f"bundle:      edgeslim deploy {pk['run_dir']} --target x86-cpu --out bundle")
    return 0
