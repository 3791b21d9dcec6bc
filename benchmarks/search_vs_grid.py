"""`edgeslim search` vs a uniform grid over the same space, same trial budget, on the demo task.

For each seed, two (or more) studies on recipes/search-demo.yaml share one run folder (the shared
pretrain/finetune, trial folders and the latency cache by artifact hash, so one setting scores
the same in both): the search (TPE by default; ``--samplers tpe,nsga2`` adds NSGA-II) and the
grid (Optuna's GridSampler: ``grid_points`` levels per numeric range x every choice, N distinct
points of it visited in a seeded random order). Figures:

* hypervolume of each study's points, normalised, under ONE reference point for all studies:
  accuracy 0, latency 1.1 x the slowest point observed over every study (edgeslim.search.pareto);
* whether each front holds a point at least as accurate (validation top-1) as recipes/demo.yaml's
  final artifact and at least 1.2x faster than it (the demo artifact is scored the same way:
  its runtime, val split, the same latency measurement and cache);
* every Pareto point's artifact re-measured at the end in this one process: validation accuracy
  re-evaluated (must be identical) and latency timed again against the studies' anchor exactly
  as the search timed it (``Measurer.against_anchor``: rounds interleaved with the anchor), its
  ratio to the anchor compared with the ratio the search recorded (within 10%?); the 1.2x check
  is repeated on these re-measured figures.

Latency needs a quiet machine. Real run (writes benchmarks/results/search_vs_grid.json):

    .venv/bin/python benchmarks/search_vs_grid.py --trials 12 --seeds 3

Smoke (1-epoch training, 2 trials, 1 seed; writes benchmarks/results/search_vs_grid_smoke.json):

    .venv/bin/python benchmarks/search_vs_grid.py --smoke
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_demo_common import ROOT, write_result  # noqa: E402

WORK = ROOT / "runs" / "bench-search"  # ignored by git; caches the shared stages and trials
FASTER = 1.2
WITHIN = 0.10


def _shrink(raw: dict[str, Any]) -> None:
    """Smoke: one epoch everywhere, one pruning step, guards that warn (plumbing, not figures)."""
    for s in raw["stages"]:
        if "train" in s:
            s["train"]["epochs"] = 1
        if s.get("stage") == "prune":
            s["steps"] = 1
            s["recovery"]["train"]["epochs"] = 1
        if s.get("stage") in ("prune", "quantize"):
            s["on_budget"] = "warn"


def recipes(args: argparse.Namespace, tmp: Path) -> tuple[Path, Path]:
    """(search recipe, demo recipe) with their run folders under WORK."""
    name = "search-bench-smoke" if args.smoke else "search-bench"
    raw = yaml.safe_load((ROOT / "recipes" / "search-demo.yaml").read_text())
    demo = yaml.safe_load((ROOT / "recipes" / "demo.yaml").read_text())
    for r, n in ((raw, name), (demo, name + "-demo")):
        r["run"].update({"output_dir": str(WORK), "name": n})
        if args.smoke:
            _shrink(r)
    raw["search"]["grid_points"] = args.grid_points
    raw["search"]["explore_bounds"] = args.explore_bounds
    if args.smoke:
        raw["search"]["latency"] = {"min_time_s": 0.2}
    paths = tmp / f"{name}.yaml", tmp / f"{name}-demo.yaml"
    paths[0].write_text(yaml.safe_dump(raw, sort_keys=False))
    paths[1].write_text(yaml.safe_dump(demo, sort_keys=False))
    return paths


def demo_reference(demo_path: Path, search_dir: Path, measurer: Any) -> dict[str, Any]:
    """recipes/demo.yaml run to its end (its pretrain/finetune copied from the search's base when
    the keys match), its final artifact scored like a trial."""
    from edgeslim.pipeline import run_pipeline
    from edgeslim.progress import Reporter
    from edgeslim.recipe import load_recipe
    from edgeslim.search.picked import seed_from_trial
    from edgeslim.search.study import score_artifact

    recipe = load_recipe(demo_path)
    seed_from_trial(recipe.run_dir(), search_dir / "base")
    res = run_pipeline(recipe, Reporter())
    art = next(s for s in reversed(res.stages) if s.onnx_file)
    path = (art.dir / str(art.onnx_file)).resolve()
    score = score_artifact(measurer, path, recipe)
    return {**score, "artifact": str(path), "test_accuracy": res.record["final"].get("test_accuracy"),
            "precision": res.record["final"].get("precision")}


def study_name(method: str, seed: int, args: argparse.Namespace) -> str:
    """One study per (sampler, seed, budget); a search study with the bound trials (the default
    since search.explore_bounds) is named apart from one run before it, which is never resumed
    as if it had them (the grid never queues trials)."""
    bounds = method != "grid" and args.explore_bounds
    return f"{method}-s{seed}-n{args.trials}" + ("-bounds" if bounds else "") + ("-smoke" if args.smoke else "")


def run_studies(args: argparse.Namespace, path: Path) -> list[dict[str, Any]]:
    import csv

    from edgeslim.progress import Reporter
    from edgeslim.search.study import search

    out = []
    for seed in range(args.seeds):
        for method in [*args.samplers, "grid"]:
            study = study_name(method, seed, args)
            t0 = time.perf_counter()
            s = search(path, trials=args.trials, sampler=method, seed=seed, study_name=study, reporter=Reporter())
            sdir = Path(s["files"]["trials_csv"]).parent
            with open(sdir / "trials.csv", newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if r["state"] == "COMPLETE"]
            points = [{"trial": int(r["trial"]), "accuracy": float(r["accuracy"]), "latency_ms": float(r["latency_ms"]),
                       "latency_vs_anchor": float(r["latency_vs_anchor"]) if r.get("latency_vs_anchor") else None,
                       "artifact": r["artifact"], "sha256": r["sha256"], "backend": r["backend"],
                       "settings": {k[6:]: v for k, v in r.items() if k.startswith("param_")}} for r in rows]
            out.append({"method": method, "seed": seed, "study": study, "n_complete": s["n_complete"],
                        "n_failed": s["n_failed"], "wall_s": round(time.perf_counter() - t0, 1), "points": points})
            print(f"{study}: {len(points)} complete in {out[-1]['wall_s']} s", flush=True)
    return out


def judge(studies: list[dict[str, Any]], demo: dict[str, Any]) -> dict[str, Any]:
    from edgeslim.search.pareto import hypervolume_report, pareto_front, reference

    ref = reference([p for s in studies for p in s["points"]])
    for s in studies:
        s["front"] = pareto_front(s["points"])
        s["hypervolume"] = hypervolume_report(s["points"], ref)["normalized"]
        s["beats_demo"] = [p["trial"] for p in s["front"]
                           if p["accuracy"] >= demo["accuracy"] and FASTER * p["latency_ms"] <= demo["latency_ms"]]
    methods = list(dict.fromkeys(s["method"] for s in studies))
    by = {m: [s for s in studies if s["method"] == m] for m in methods}
    summary: dict[str, Any] = {}
    for m in methods:
        hv = [s["hypervolume"] for s in by[m]]
        summary[m] = {"hypervolume_per_seed": [round(h, 5) for h in hv],
                      "hypervolume_mean": round(statistics.mean(hv), 5),
                      "seeds_with_a_point_as_accurate_and_1.2x_faster": sum(bool(s["beats_demo"]) for s in by[m])}
        if m != "grid":
            summary[m]["hypervolume_at_least_grid_per_seed"] = [
                a["hypervolume"] >= g["hypervolume"] for a, g in zip(by[m], by["grid"], strict=True)]
    return {"reference_point": ref, "summary": summary}


def remeasure(studies: list[dict[str, Any]], demo: dict[str, Any], measurer: Any) -> dict[str, Any]:
    """Every Pareto point's artifact (and the demo's): accuracy again, and latency timed again
    against the studies' anchor exactly as the search timed it; compared as ratios to the anchor."""
    from edgeslim.data import build_data
    from edgeslim.measure import evaluate
    from edgeslim.recipe import load_recipe
    from edgeslim.runtime.timing import make_input
    from edgeslim.search.measure import open_runtime
    from edgeslim.stages.context import model_norm

    recipe = load_recipe(ROOT / "recipes" / "search-demo.yaml")
    data = build_data(recipe.data, recipe.run.seed, model_norm(recipe.model))
    anchor = measurer.anchor()
    arts: dict[str, dict[str, Any]] = {"demo": demo}
    for s in studies:
        for p in s["front"]:
            arts.setdefault(p["sha256"], p)
    rows = {}
    x = make_input(tuple(data.input_shape), 1)
    for key, p in arts.items():
        be, name = open_runtime(Path(p["artifact"]), None, measurer.threads)
        acc = evaluate(be, data, "val", recipe.data.batch_size)["top1"]
        same = anchor["sha256"] == p["sha256"]  # hashed when it was scored
        t = {"vs_anchor": 1.0, "anchor_state": 1.0, "in_anchor_state": True} if same else \
            measurer.settled(be, x, anchor)
        ratio_search = p.get("latency_vs_anchor") or p["latency_ms"] / anchor["ms"]
        rows[key] = {"artifact": p["artifact"], "sha256": p.get("sha256"), "backend": name,
                     "accuracy_search": p["accuracy"], "accuracy_again": acc,
                     "accuracy_identical": acc == p["accuracy"],
                     "latency_search_ms": p["latency_ms"], "vs_anchor_search": round(ratio_search, 4),
                     "vs_anchor_again": round(t["vs_anchor"], 4),
                     "latency_again_ms": round(anchor["ms"] * t["vs_anchor"], 5),
                     "raw_median_again_ms": t.get("raw_median_ms"), "anchor_median_again_ms": t.get("anchor_median_ms"),
                     "anchor_state_search": p.get("latency_anchor_state"), "anchor_state_again": t.get("anchor_state"),
                     "in_anchor_state_again": t.get("in_anchor_state"), "attempts": t.get("attempts")}
        rows[key]["ratio_again_over_search"] = round(t["vs_anchor"] / ratio_search, 4)
        rows[key]["within_10pct"] = abs(rows[key]["ratio_again_over_search"] - 1) <= WITHIN
    pts = [r for k, r in rows.items() if k != "demo"]
    steady = [r for r in pts if r["in_anchor_state_again"]]
    return {"n_artifacts": len(pts), "anchor": anchor, "method": "each artifact interleaved with the anchor "
            "(Measurer.settled, as in the search: retried while the anchor runs > 8% off its own figure); "
            "figures compared as ratios to the anchor",
            "in_anchor_state_again": len(steady),
            "latency_within_10pct_in_anchor_state": f"{sum(r['within_10pct'] for r in steady)}/{len(steady)}",
            "accuracy_identical_all": all(r["accuracy_identical"] for r in rows.values()),
            "latency_within_10pct": sum(r["within_10pct"] for r in pts),
            "max_abs_latency_rel_diff": round(max((abs(r["ratio_again_over_search"] - 1) for r in pts), default=0), 4),
            "demo": rows["demo"], "rows": pts}


def main() -> None:
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=12)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--samplers", default="tpe", help="comma list of search samplers compared with the grid")
    ap.add_argument("--grid-points", type=int, default=3, help="levels per numeric range of the grid")
    ap.add_argument("--no-bounds", dest="explore_bounds", action="store_false",
                    help="search without the bound trials (search.explore_bounds: false)")
    ap.add_argument("--smoke", action="store_true", help="1-epoch training, 2 trials, 1 seed (plumbing)")
    args = ap.parse_args()
    args.samplers = [s for s in args.samplers.split(",") if s]
    if args.smoke:
        args.trials, args.seeds = min(args.trials, 2), 1
    from edgeslim.recipe import load_recipe
    from edgeslim.search.measure import Measurer
    from edgeslim.search.space import LatencySpec

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        spath, dpath = recipes(args, Path(tmp))
        studies = run_studies(args, spath)
        srec = load_recipe(spath)
        sdir = srec.run_dir() / "search"
        lat = LatencySpec.model_validate((srec.search or {}).get("latency") or {})
        threads = (srec.search or {}).get("threads") or srec.run.threads
        measurer = Measurer(sdir / "cache", lat, None, threads)
        demo = demo_reference(dpath, sdir, measurer)
    verdict = judge(studies, demo)
    again = remeasure(studies, demo, measurer)
    again_ms = {r["sha256"]: r["latency_again_ms"] for r in again["rows"]}
    demo_again = again["demo"]["latency_again_ms"]
    for s in studies:
        s.pop("points")
        s["beats_demo_remeasured"] = [p["trial"] for p in s["front"] if p["accuracy"] >= demo["accuracy"]
                                      and FASTER * again_ms[p["sha256"]] <= demo_again]
    grid_mean = verdict["summary"]["grid"]["hypervolume_mean"]
    verdict["verdict"] = {
        m: {"hypervolume_at_least_grid_mean": v["hypervolume_mean"] >= grid_mean,
            "hypervolume_at_least_grid_seeds": sum(v["hypervolume_at_least_grid_per_seed"]),
            "seeds_with_1.2x_point_search_time": v["seeds_with_a_point_as_accurate_and_1.2x_faster"],
            "seeds_with_1.2x_point_remeasured": sum(bool(st["beats_demo_remeasured"]) for st in studies
                                                    if st["method"] == m), "of_seeds": args.seeds}
        for m, v in verdict["summary"].items() if m != "grid"}
    within = f"{again['latency_within_10pct']}/{again['n_artifacts']}"
    verdict["verdict"]["remeasure"] = {"accuracy_identical": again["accuracy_identical_all"],
                                       "latency_within_10pct": within}
    write_result("search_vs_grid" + ("_smoke" if args.smoke else ""), {
        "recipe": "recipes/search-demo.yaml" + (" (smoke: 1 epoch, 1 pruning step)" if args.smoke else ""),
        "settings": {"trials": args.trials, "seeds": args.seeds, "samplers": args.samplers,
                     "grid": f"{args.grid_points} levels per numeric range x every choice; GridSampler visits "
                             "N distinct points in a seeded random order", "latency": lat.model_dump(),
                     "threads": threads, "faster_factor": FASTER, "remeasure_tolerance": WITHIN,
                     "baseline_trial": True, "explore_bounds": args.explore_bounds},
        "demo_reference": demo, **verdict, "remeasure": again, "studies": studies,
        "wall_s": round(time.perf_counter() - t0, 1),
    })


if __name__ == "__main__":
    main()
