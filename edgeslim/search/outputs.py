"""What a search writes in ``runs/<name>/search/``: pareto.json, trials.csv, pareto.png, summary.json.

pareto.json is a JSON list of the non-dominated points, fastest first; each point:
``trial``, ``accuracy`` (validation top-1 of the artifact, a fraction), ``latency_ms`` (median,
batch 1, on the target), ``latency_p90_ms``, ``latency_vs_anchor`` (its latency over the
anchor's, timed interleaved; see ``measure.py``), ``latency_anchor_state`` (the anchor's speed then
over its own figure: near 1, the machine was in the anchor's state), ``backend`` (the runtime that ran it), ``settings``
(the searched values), ``artifact`` (absolute path of the ONNX), ``sha256``, ``run_dir``.
Test accuracy is in none of them: it is measured for the picked point only (``--pick``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeslim.fsutil import atomic_write_csv, atomic_write_json
from edgeslim.progress import Reporter
from edgeslim.search.pareto import hypervolume_report, pareto_front

if TYPE_CHECKING:
    from edgeslim.search.measure import Measurer
    from edgeslim.search.space import SearchPlan

POINT_KEYS = ("trial", "accuracy", "latency_ms", "latency_p90_ms", "latency_vs_anchor", "latency_anchor_state",
              "backend", "settings", "artifact", "sha256", "run_dir")


def collect(study: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(rows for trials.csv, points of the completed trials) in trial order."""
    rows, points = [], []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):
            continue  # refused before it ran (several workers): not a trial of the search
        done = t.state.name == "COMPLETE"
        s = t.user_attrs.get("score", {}) if done else {}
        dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
            else None
        rows.append({"trial": t.number, "state": t.state.name, "accuracy": t.values[0] if done else None,
                     "latency_ms": t.values[1] if done else None, "latency_vs_anchor": s.get("latency_vs_anchor"),
                     "latency_anchor_state": s.get("latency_anchor_state"), "pareto": False,
                     **{f"param_{k}": v for k, v in t.params.items()}, "backend": s.get("backend"),
                     "latency_cached": s.get("latency_cached"), "duration_s": round(dur, 2) if dur else None,
                     "artifact": t.user_attrs.get("artifact"), "sha256": s.get("sha256"),
                     "worker": t.user_attrs.get("worker"), "error": t.user_attrs.get("error")})
        if done:
            points.append({"trial": t.number, "accuracy": float(t.values[0]), "latency_ms": float(t.values[1]),
                           "latency_p90_ms": s.get("latency_p90_ms"), "latency_vs_anchor": s.get("latency_vs_anchor"),
                           "latency_anchor_state": s.get("latency_anchor_state"), "backend": s.get("backend"),
                           "settings": dict(t.params), "artifact": t.user_attrs.get("artifact"),
                           "sha256": s.get("sha256"), "run_dir": t.user_attrs.get("run_dir")})
    return rows, points



def environment(measurer: Measurer) -> dict[str, Any]:
    """Host, the CPU flags that decide INT8/BF16 speed, and the versions of what measured."""
    import importlib.metadata as md

    from edgeslim.runrecord import host_info, versions
    from edgeslim.runtime.providers import cpu_precision_support

    feats = cpu_precision_support()["features"]
    flags = {k: bool(feats.get(k)) for k in ("avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "amx_int8")}
    flags["amx"] = flags["amx_tile"] or flags["amx_bf16"] or flags["amx_int8"]
    vers: dict[str, Any] = dict(versions())
    for pkg in ("optuna", "openvino"):
        try:
            vers[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            vers[pkg] = None
    return {"host": host_info(with_gpu=False), "cpu_flags": flags, "versions": vers,
            "latency_measured": {"where": measurer.where(), "backend": measurer.backend or "the artifact's runtime",
                                 "threads": measurer.threads, **measurer.latency.model_dump(), "batch": 1,
                                 "statistic": "median", "anchor": measurer.anchor()},
            "remote": str(measurer.remote) if measurer.remote is not None else None}


def write_outputs(study: Any, plan: SearchPlan, raw: dict[str, Any], search_dir: Path, url: str,
                  measurer: Measurer, reporter: Reporter) -> dict[str, Any]:
    """Write every output file and return the summary (also summary.json)."""
    from edgeslim.search.plot import write_pareto_png

    rows, points = collect(study)
    front = pareto_front(points)
    on_front = {p["trial"] for p in front}
    for r in rows:
        r["pareto"] = r["trial"] in on_front
    files = {"pareto_json": search_dir / "pareto.json", "trials_csv": search_dir / "trials.csv",
             "pareto_png": search_dir / "pareto.png"}
    atomic_write_json(files["pareto_json"], [{k: p.get(k) for k in POINT_KEYS} for p in front])
    atomic_write_csv(files["trials_csv"], rows)
    env = environment(measurer)
    if points:
        write_pareto_png(points, front, files["pareto_png"], env, study.study_name)
    states = [r["state"] for r in rows]
    summary: dict[str, Any] = {
        "schema": "edgeslim.search/1", "study": study.study_name, "storage": url, "sampler": plan.spec.sampler,
        "seed": plan.spec.seed, "objectives": {"accuracy": "maximize: top-1 of the final artifact on the "
                                               "validation split, in the runtime that runs it",
                                               "latency_ms": "minimize: median batch-1 latency on the target"},
        "n_trials": len(rows), "n_complete": states.count("COMPLETE"), "n_failed": states.count("FAIL"),
        "n_pareto": len(front), "hypervolume": hypervolume_report(points) if points else None,
        "space": {t.name: {"stage": None if t.index is None else plan.stage_names(raw)[t.index], "key": t.path,
                           **t.spec.model_dump(exclude_none=True, exclude_defaults=True)} for t in plan.targets},
        "shared_stages": plan.stage_names(raw)[:plan.first_index],
        "measured_stages": plan.stage_names(raw)[:plan.artifact_index + 1],
        **env, "files": {k: str(v) for k, v in files.items() if v.exists()},
    }
    atomic_write_json(search_dir / "summary.json", summary)
    _print_front(front, summary, reporter)
    return summary


def _print_front(front: list[dict[str, Any]], summary: dict[str, Any], reporter: Reporter) -> None:
    if reporter.quiet or not front:
        return
    from rich.table import Table

    hv = summary["hypervolume"]
    t = Table(title=f"Pareto front of '{summary['study']}': {len(front)} of {summary['n_complete']} completed trials "
              f"(hypervolume {hv['normalized']:.4f} normalised)")
    for c in ("trial", "val accuracy", "latency ms", "backend", "settings"):
        t.add_column(c, justify="left" if c == "settings" else "right")
    for p in front:
        t.add_row(str(p["trial"]), f"{p['accuracy']:.4f}", f"{p['latency_ms']:.4g}", str(p["backend"]),
                  " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in p["settings"].items()))
    reporter.console.print(t)
