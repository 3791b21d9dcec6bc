"""Study outputs: trials table (CSV + terminal), best recipe written back, PNG plots."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import yaml

from edgeslim.fsutil import atomic_write_csv, atomic_write_json, atomic_write_text
from edgeslim.progress import Reporter
from edgeslim.tune.space import SearchSpec, apply_params


def trials_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        dur = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                "duration_s": round(dur, 2) if dur is not None else None,
                **{f"param_{k}": v for k, v in t.params.items()},
                "last_epoch": max(t.intermediate_values, default=None),
                "test_accuracy": t.user_attrs.get("test_accuracy"),
            }
        )
    return rows



def plots(study: Any, tune_dir: Path) -> tuple[list[str], list[str]]:
    """optimization_history.png and param_importances.png; returns (written, notes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    from edgeslim.mplstyle import default_style

    written, notes = [], []
    for name, fn in (
        ("optimization_history", ovm.plot_optimization_history),
        ("param_importances", ovm.plot_param_importances),
    ):
        try:
            # optuna's plots switch the process to its ggplot style: undone after each one
            with warnings.catch_warnings(), default_style():
                warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
                ax = fn(study)
            fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            fig.set_size_inches(7, 4.5)
            fig.tight_layout()
            path = tune_dir / f"{name}.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(str(path))
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            # Importances need >= 2 finished trials with differing parameters.
            notes.append(f"{name}: not drawn ({str(exc).splitlines()[0][:120]})")
    return written, notes


def write_outputs(
    study: Any,
    raw: dict[str, Any],
    idx: int,
    spec: SearchSpec,
    tune_dir: Path,
    url: str,
    reporter: Reporter,
) -> dict[str, Any]:
    from optuna.trial import TrialState

    rows = trials_rows(study)
    atomic_write_csv(tune_dir / "trials.csv", rows)
    states = [r["state"] for r in rows]
    summary: dict[str, Any] = {
        "study": study.study_name,
        "storage": url,
        "direction": spec.direction,
        "metric": spec.metric,
        "sampler": spec.sampler,
        "pruner": spec.pruner,
        "n_trials": len(rows),
        "n_complete": states.count("COMPLETE"),
        "n_pruned": states.count("PRUNED"),
        "n_failed": states.count("FAIL"),
        "trials_csv": str(tune_dir / "trials.csv"),
    }
    if study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        best = study.best_trial
        best_raw = apply_params(raw, idx, best.params, spec)
        header = (
            f"# written by `edgeslim tune`: study '{study.study_name}', best trial #{best.number}, "
            f"{spec.metric} = {best.value:.6g}\n# parameters: {best.params}\n"
        )
        path = atomic_write_text(
            tune_dir / "best-recipe.yaml", header + yaml.safe_dump(best_raw, sort_keys=False)
        )
        summary.update(
            {
                "best_trial": best.number,
                "best_value": best.value,
                "best_params": best.params,
                "best_recipe": str(path),
            }
        )
    summary["plots"], summary["plot_notes"] = plots(study, tune_dir) if rows else ([], [])
    atomic_write_json(tune_dir / "summary.json", summary)
    _print_table(rows, summary, reporter)
    return summary


def _print_table(rows: list[dict[str, Any]], summary: dict[str, Any], reporter: Reporter) -> None:
    if reporter.quiet:
        return
    from rich.table import Table

    cols = list(dict.fromkeys(k for r in rows for k in r))
    t = Table(
        title=f"study {summary['study']}: {summary['n_complete']} complete, "
        f"{summary['n_pruned']} pruned, {summary['n_failed']} failed"
    )
    for c in cols:
        t.add_column(c.removeprefix("param_"), justify="right")
    for r in rows:
        t.add_row(
            *[f"{r.get(c):.4g}" if isinstance(r.get(c), float) else str(r.get(c, "")) for c in cols]
        )
    reporter.console.print(t)
