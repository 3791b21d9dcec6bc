"""Transfer learning vs training from scratch on the demo's target task (same budget).

Both start from the same architecture (tinyresnet) and run the demo's finetune settings
(epochs, batch size, optimizer) on digits 5-9 with 40 training images per class; "transfer"
starts from the demo's pretrain stage (digits 0-4), "scratch" from random weights.
Test accuracy is top-1 on the held-out test split, several seeds.

    .venv/bin/python benchmarks/transfer_vs_scratch.py [--seeds 3]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_demo_common import finetune_cfg, pretrained_demo_model, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    import torch

    from edgeslim.data import build_data
    from edgeslim.models.edits import record_edit
    from edgeslim.models.factory import model_from_spec
    from edgeslim.train.engine import fit

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    source, _, recipe = pretrained_demo_model()
    pretrain_s = time.perf_counter() - t0
    data = build_data(recipe.data, recipe.run.seed)
    ft = finetune_cfg(recipe)
    train = ft.train.model_copy(update={"tensorboard": False})
    runs: dict[str, list[dict]] = {"transfer": [], "scratch": []}
    for seed in range(args.seeds):
        for arm in ("transfer", "scratch"):
            torch.manual_seed(seed)
            if arm == "transfer":
                model = record_edit(
                    copy.deepcopy(source),
                    {
                        "op": "replace_head",
                        "num_classes": data.num_classes,
                        "init": recipe.model.head_init,
                    },
                )
            else:
                model = model_from_spec(recipe.model, data.input_shape[0], data.num_classes)
            t = time.perf_counter()
            res = fit(model, data, train, seed=seed)
            runs[arm].append(
                {
                    "seed": seed,
                    "test_top1": res.test["top1"],
                    "best_val_top1": res.best["val_top1"],
                    "train_s": round(time.perf_counter() - t, 2),
                }
            )
            print(arm, runs[arm][-1], flush=True)
    summary = {
        arm: {
            "test_top1_mean": statistics.mean(r["test_top1"] for r in rs),
            "test_top1_min": min(r["test_top1"] for r in rs),
            "test_top1_max": max(r["test_top1"] for r in rs),
        }
        for arm, rs in runs.items()
    }
    write_result(
        "transfer_vs_scratch",
        {
            "task": "digits 5-9, 40 train images/class, 32 px; source task digits 0-4",
            "model": recipe.model.source,
            "budget": train.model_dump(mode="json"),
            "seeds": args.seeds,
            "pretrain_s": round(pretrain_s, 1),
            "test_images": len(data.test),
            "runs": runs,
            "summary": summary,
            "transfer_beats_scratch": summary["transfer"]["test_top1_mean"]
            > summary["scratch"]["test_top1_mean"],
            "transfer_wins_every_seed": all(
                a["test_top1"] > b["test_top1"]
                for a, b in zip(runs["transfer"], runs["scratch"], strict=True)
            ),
        },
    )


if __name__ == "__main__":
    main()
