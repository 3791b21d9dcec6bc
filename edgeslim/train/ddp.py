"""``torchrun --nproc_per_node=N -m edgeslim.train.ddp RECIPE``: a recipe on N data-parallel ranks.

Every rank runs the whole recipe (so any stage that trains, including compression recovery,
joins the collective), always fresh (a stage cached on one rank but not another would leave
the others waiting). Rank 0 writes the run folder; rank r writes ``<run>/.ddp-rank<r>/`` quietly.
Backend: gloo on CPU, nccl on CUDA (``run.device: cuda``, one GPU per rank via LOCAL_RANK).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="torchrun ... -m edgeslim.train.ddp",
        description="Run a recipe with distributed data-parallel training.",
    )
    p.add_argument("recipe")
    p.add_argument("-q", "--quiet", action="store_true")
    args = p.parse_args(argv)
    import torch

    from edgeslim.errors import EdgeslimError
    from edgeslim.pipeline import run_pipeline
    from edgeslim.progress import Reporter
    from edgeslim.recipe import load_recipe
    from edgeslim.train import dist

    try:
        recipe = load_recipe(args.recipe)
        if not dist.init_from_env():
            print(
                "note: not started by torchrun (WORLD_SIZE unset); training on one process",
                file=sys.stderr,
            )
        r = dist.rank()
        if r > 0:
            recipe.run.output_dir = str(recipe.run_dir() / f".ddp-rank{r}")
        res = run_pipeline(recipe, Reporter(quiet=args.quiet or r > 0), fresh=True)
        if r == 0:
            print(f"run record: {res.run_dir / 'run.json'} ({dist.world_size()} ranks)")
    except EdgeslimError as exc:
        print(f"error (rank {dist.rank()}): {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        if dist.world_size() > 1:
            torch.distributed.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
