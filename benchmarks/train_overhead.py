"""Engine overhead: fit() training throughput vs a bare hand-written PyTorch loop.

Same model (the demo's tinyresnet), same data (the demo's source task, digits 0-4, 32 px),
same batch size, optimizer and number of steps, measured side by side in one process and
interleaved (bare, engine, bare, engine, ...) so machine load hits both alike. The headline
is train-phase images/s (the engine's own per-epoch counter vs the bare loop's); the
end-to-end figure adds the engine's per-epoch validation and metric files.

    .venv/bin/python benchmarks/train_overhead.py [--rounds 9] [--steps 20] [--clock wall|cpu]

--clock cpu runs torch on one thread and times with time.thread_time() (CPU seconds of the
training thread), which other processes on a shared machine barely disturb; the engine's own
timer is pointed at the same clock. --clock wall (default) is plain wall time on 2 threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_demo_common import demo_recipe, write_result  # noqa: E402

CLOCK = time.perf_counter


def bare_loop(model, data, batch_size: int, steps: int, lr: float, seed: int) -> float:
    """The loop a user would write by hand; returns images/s."""
    import torch

    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    ce = torch.nn.CrossEntropyLoss()
    loader = data.loader("train", batch_size, shuffle=True, augment=True, seed=seed)
    model.train()
    seen, t0 = 0, CLOCK()
    for i, (x, y) in enumerate(loader):
        if i >= steps:
            break
        loss = ce(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += len(y)
    return seen / (CLOCK() - t0)


def engine(model, data, batch_size: int, steps: int, lr: float, seed: int, workdir: Path) -> tuple[float, float]:
    from edgeslim.train.config import TrainConfig
    from edgeslim.train.engine import fit

    cfg = TrainConfig(
        epochs=1,
        batch_size=batch_size,
        max_steps_per_epoch=steps,
        eval_test=False,
        optimizer={"name": "adamw", "lr": lr},
    )
    t0 = CLOCK()
    res = fit(model, data, cfg, seed=seed, workdir=workdir)
    wall = CLOCK() - t0
    h = res.history[0]
    seen = h["train_images_per_s"] * h["epoch_train_s"]  # the last batch of an epoch may be short
    return h["train_images_per_s"], seen / wall


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = ap.parse_args()
    global CLOCK
    import types

    from edgeslim.train import engine as engine_mod

    if args.clock == "cpu":
        CLOCK = time.thread_time
        # the engine's per-epoch timer reads time.perf_counter; give it the same clock
        engine_mod.time = types.SimpleNamespace(perf_counter=time.thread_time)
    import tempfile

    import torch

    from edgeslim.data import build_data
    from edgeslim.models.factory import model_from_spec

    torch.set_num_threads(1 if args.clock == "cpu" else 2)
    recipe = demo_recipe()
    pre = next(s for s in recipe.stages if s.stage == "pretrain")
    data = build_data(pre.data, recipe.run.seed)
    bare, eng, eng_e2e = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds + 1):  # round 0 warms up both paths and is dropped
            torch.manual_seed(r)
            m1 = model_from_spec(recipe.model, 3, data.num_classes)
            m2 = model_from_spec(recipe.model, 3, data.num_classes)
            m2.load_state_dict(m1.state_dict())
            b = bare_loop(m1, data, args.batch_size, args.steps, 1e-3, r)
            e, e2e = engine(m2, data, args.batch_size, args.steps, 1e-3, r, Path(tmp) / f"r{r}")
            if r:
                bare.append(b)
                eng.append(e)
                eng_e2e.append(e2e)
            print(
                f"round {r}: bare {b:.1f} img/s, engine {e:.1f} img/s (end-to-end {e2e:.1f})",
                flush=True,
            )
    med = {k: statistics.median(v) for k, v in (("bare", bare), ("engine", eng), ("engine_e2e", eng_e2e))}
    ratios = [e / b for e, b in zip(eng, bare, strict=True)]
    write_result(
        "train_overhead" if args.clock == "wall" else "train_overhead_cpu",
        {
            "clock": args.clock,
            "model": recipe.model.source,
            "data": "digits 0-4, 32 px, with the recipe's (empty) augmentation",
            "batch_size": args.batch_size,
            "steps_per_round": args.steps,
            "rounds": args.rounds,
            "bare_images_per_s": bare,
            "engine_images_per_s": eng,
            "engine_end_to_end_images_per_s": eng_e2e,
            "median": med,
            "engine_over_bare_median": med["engine"] / med["bare"],
            "engine_over_bare_per_round": ratios,
            "engine_e2e_over_bare_median": med["engine_e2e"] / med["bare"],
            "within_10_percent": med["engine"] / med["bare"] >= 0.9,
            "note": "engine = fit() with default settings (metrics files + TensorBoard on); "
            "its train-phase "
            "counter excludes per-epoch validation, which the end-to-end figure includes; with "
            "--clock cpu the TensorBoard writer thread is not counted",
        },
    )


if __name__ == "__main__":
    main()
