"""``--pick``: the chosen point's recipe, run to a bundle-ready run with its TEST accuracy.

``search/picked-recipe.yaml`` is the recipe with the point's settings written in and the
``search:`` block removed, run name ``<name>-picked``. Its stages up to the artifact have the
same cache keys as the trial's, so the trial's finished stage folders are copied (not linked:
the run must stand alone once the search folder is deleted) into ``runs/<name>-picked/`` and the
pipeline reuses them: the run ships the very artifact the front scored, then runs the stages
after it (bench, deploy...). ``picked.json`` in that run names the search, the pick and the
point, so a report can show the Pareto plot (``search/pareto.png``) beside the run.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from edgeslim.fsutil import atomic_write_json, atomic_write_text, sha256_file
from edgeslim.progress import Reporter
from edgeslim.search.pick import Pick, choose
from edgeslim.search.space import SearchPlan, apply_values

if TYPE_CHECKING:
    from edgeslim.recipe import Recipe


def picked_recipe(raw: dict[str, Any], plan: SearchPlan, recipe: Recipe, point: dict[str, Any], pick: Pick,
                  out: Path) -> Path:
    """Write the recipe of ``point`` (validated) to ``out``; returns the path."""
    from edgeslim.recipe import parse_recipe

    r = apply_values(raw, plan, point["settings"])
    r["run"] = {**(r.get("run") or {}), "name": f"{recipe.run.name}-picked"}
    parse_recipe(r, str(out))  # a recipe that does not validate is a bug here, said before it is written
    header = (f"# written by `edgeslim search --pick '{pick}'`: trial #{point['trial']}, validation accuracy "
              f"{point['accuracy']:.4f}, latency {point['latency_ms']:.4g} ms ({point.get('backend')})\n"
              f"# settings: {point['settings']}\n")
    return atomic_write_text(out, header + yaml.safe_dump(r, sort_keys=False))


def seed_from_trial(run_dir: Path, trial_dir: Path | None) -> list[str]:
    """Copy the trial's finished stage folders into ``run_dir`` (where absent); returns their names."""
    from edgeslim.pipeline import is_stage_folder
    from edgeslim.runlock import locked_run

    if trial_dir is None or not trial_dir.is_dir():
        return []
    run_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    with locked_run(run_dir):
        for src in sorted(trial_dir.iterdir()):
            dest = run_dir / src.name
            if not src.is_dir() or dest.exists() or not is_stage_folder(src):
                continue
            tmp = run_dir / f".{src.name}.copying"
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.copytree(src.resolve(), tmp, symlinks=False)
            tmp.rename(dest)
            copied.append(src.name)
    return copied


def run_pick(raw: dict[str, Any], plan: SearchPlan, recipe: Recipe, search_dir: Path, summary: dict[str, Any],
             pick: Pick, reporter: Reporter) -> dict[str, Any]:
    """Choose the point, write its recipe, run it; returns what was picked and the run's test accuracy."""
    import json

    from edgeslim.pipeline import run_pipeline
    from edgeslim.recipe import load_recipe

    front = json.loads((search_dir / "pareto.json").read_text())
    point = choose(front, pick)
    path = picked_recipe(raw, plan, recipe, point, pick, search_dir / "picked-recipe.yaml")
    picked = load_recipe(path)
    run_dir = picked.run_dir()
    copied = seed_from_trial(run_dir, Path(point["run_dir"]) if point.get("run_dir") else None)
    reporter.log(f"pick '{pick}': trial #{point['trial']} (val accuracy {point['accuracy']:.4f}, "
                 f"{point['latency_ms']:.4g} ms); running {path} -> {run_dir}"
                 + (f" (reusing the trial's {len(copied)} stage folder(s))" if copied else ""))
    origin = {"search_dir": str(search_dir.resolve()), "study": summary["study"], "pick": str(pick),
              "point": point, "recipe": str(path.resolve()), "pareto_png": str((search_dir / "pareto.png").resolve()),
              "pareto_json": str((search_dir / "pareto.json").resolve())}
    atomic_write_json(run_dir / "picked.json", origin)
    res = run_pipeline(picked, reporter)
    final = res.record.get("final") or {}
    art = next((s for s in reversed(res.stages) if s.onnx_file), None)
    sha = sha256_file(art.dir / str(art.onnx_file)) if art is not None else None
    out = {**origin, "run_dir": str(res.run_dir), "test_accuracy": final.get("test_accuracy"),
           "test_evaluated_on": final.get("evaluated_on"),
           "artifact": str(art.dir / str(art.onnx_file)) if art else None,
           "same_artifact_as_point": sha == point.get("sha256")}
    atomic_write_json(run_dir / "picked.json", out)
    atomic_write_json(search_dir / "picked.json", out)
    return out
