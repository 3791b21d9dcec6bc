"""BPAG (learnable per-unit activation gain) vs the plain activation on the demo task.

Fine-tunes the demo's pretrained tinyresnet on digits 5-9 (40 images/class) with and without
adaptive-gain activations, same settings and seeds; reports test top-1, validation top-1,
training time, and the learned gains. Also trains both from scratch (where BPAG was
originally proposed to help gradients flow). Reported as measured, whichever way it goes.

    .venv/bin/python benchmarks/train_bpag.py [--seeds 3]
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


def _model(start: str, source, recipe, data, bpag: bool):
    from edgeslim.models.edits import record_edit
    from edgeslim.models.factory import model_from_spec
    from edgeslim.train.adaptive_gain import add_adaptive_gain

    if start == "pretrained":
        m = record_edit(
            copy.deepcopy(source),
            {"op": "replace_head", "num_classes": data.num_classes, "init": recipe.model.head_init},
        )
    else:
        m = model_from_spec(recipe.model, data.input_shape[0], data.num_classes)
    return add_adaptive_gain(m, data.input_shape) if bpag else m


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--starts", default="pretrained,scratch", help="pretrained,scratch")
    args = ap.parse_args()
    starts = [s for s in args.starts.split(",") if s]
    import torch

    from edgeslim.data import build_data
    from edgeslim.train.adaptive_gain import gain_stats
    from edgeslim.train.engine import fit

    torch.set_num_threads(2)
    source, _, recipe = pretrained_demo_model()
    data = build_data(recipe.data, recipe.run.seed)
    train = finetune_cfg(recipe).train.model_copy(update={"tensorboard": False})
    runs: dict[str, list[dict]] = {}
    for start in starts:
        for seed in range(args.seeds):
            for arm in ("plain", "bpag"):
                torch.manual_seed(seed)
                model = _model(start, source, recipe, data, arm == "bpag")
                t = time.perf_counter()
                res = fit(model, data, train, seed=seed)
                r = {
                    "seed": seed,
                    "test_top1": res.test["top1"],
                    "best_val_top1": res.best["val_top1"],
                    "train_s": round(time.perf_counter() - t, 2),
                    **gain_stats(model),
                }
                runs.setdefault(f"{start}/{arm}", []).append(r)
                print(start, arm, r, flush=True)
    summary = {
        k: {
            "test_top1_mean": statistics.mean(r["test_top1"] for r in rs),
            "train_s_mean": statistics.mean(r["train_s"] for r in rs),
        }
        for k, rs in runs.items()
    }
    verdict = {
        start: summary[f"{start}/bpag"]["test_top1_mean"]
        - summary[f"{start}/plain"]["test_top1_mean"]
        for start in starts
    }
    write_result(
        "train_bpag",
        {
            "task": "digits 5-9, 40 train images/class; finetune settings of recipes/demo.yaml",
            "model": recipe.model.source,
            "seeds": args.seeds,
            "runs": runs,
            "summary": summary,
            "bpag_minus_plain_test_top1": verdict,
        },
    )


if __name__ == "__main__":
    main()
