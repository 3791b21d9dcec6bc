"""TPE vs random search with the same number of trials on the demo task (recipes/tune-demo.yaml).

Both samplers search the same space with the same N, the same sampler seeds (0..S-1) and no
pruning (so every trial gets the full budget); the figure is the best validation top-1 each
study found, plus the test top-1 of that best trial. The pretrain stage runs once and is shared.

    .venv/bin/python benchmarks/tune_tpe_vs_random.py [--trials 10] [--seeds 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_demo_common import ROOT, WORK, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--seeds", type=int, default=2)
    args = ap.parse_args()
    from edgeslim.tune.study import tune

    raw = yaml.safe_load((ROOT / "recipes" / "tune-demo.yaml").read_text())
    raw["run"].update({"output_dir": str(WORK), "name": "tune-bench"})
    raw["search"].update({"pruner": "none", "trials": args.trials})
    out: dict[str, list[dict]] = {"random": [], "tpe": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.seeds):
            for sampler in ("random", "tpe"):
                raw["search"]["seed"] = seed
                path = Path(tmp) / f"{sampler}-{seed}.yaml"
                path.write_text(yaml.safe_dump(raw, sort_keys=False))
                study = f"bench-{sampler}-s{seed}-n{args.trials}"
                s = tune(
                    path,
                    sampler=sampler,
                    study_name=study,
                    storage=f"sqlite:///{Path(tmp) / (study + '.db')}",
                )
                out[sampler].append(
                    {
                        "seed": seed,
                        "best_val_top1": s.get("best_value"),
                        "best_params": s.get("best_params"),
                        "n_complete": s["n_complete"],
                        "n_failed": s["n_failed"],
                    }
                )
                print(sampler, out[sampler][-1], flush=True)
    mean = {k: statistics.mean(r["best_val_top1"] for r in v) for k, v in out.items()}
    write_result(
        "tune_tpe_vs_random",
        {
            "recipe": "recipes/tune-demo.yaml (pruner none)",
            "trials_per_study": args.trials,
            "seeds": args.seeds,
            "studies": out,
            "mean_best_val_top1": mean,
            "tpe_at_least_random_mean": mean["tpe"] >= mean["random"],
            "tpe_at_least_random_each_seed": all(
                t["best_val_top1"] >= r["best_val_top1"]
                for t, r in zip(out["tpe"], out["random"], strict=True)
            ),
        },
    )


if __name__ == "__main__":
    main()
