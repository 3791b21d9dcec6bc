"""``edgeslim tune``: an Optuna study over a recipe's ``search:`` space.

Each trial runs the recipe up to the tuned stage in ``<run>/tune/trials/<study>/trial-NNNN`` (stages
before it are run once in ``<run>/tune/base`` and linked in, so they are not retrained).
Per-epoch validation metrics feed the pruner. The study lives in an RDB storage (SQLite in
the run folder by default), so rerunning the command continues it.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from edgeslim.errors import EdgeslimError, InputError, require
from edgeslim.progress import NULL, Reporter
from edgeslim.safe_yaml import load_yaml_file
from edgeslim.tune.space import ParamSpec, SearchSpec, apply_params, parse_search


class _Pruned(Exception):
    """Raised from the epoch hook; the pipeline wraps it, the objective makes it TrialPruned."""


def default_storage(tune_dir: Path) -> str:
    return f"sqlite:///{tune_dir.resolve() / 'study.db'}"


def make_sampler(optuna: Any, spec: SearchSpec, seed: int, n_done: int) -> Any:
    # The seed moves on with the number of trials already in the study, so a resumed random
    # search does not replay the first trials' parameters.
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(grid_space(spec), seed=seed)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed + n_done)
    startup = (
        spec.startup_trials
        if spec.startup_trials is not None
        else min(10, max(3, spec.trials // 3))
    )
    return optuna.samplers.TPESampler(
        seed=seed + n_done, n_startup_trials=startup, multivariate=True
    )


def make_pruner(optuna: Any, spec: SearchSpec, max_epochs: int) -> Any:
    if spec.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
    if spec.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=max(max_epochs, 2), reduction_factor=3
        )
    return optuna.pruners.NopPruner()


def grid_space(spec: SearchSpec) -> dict[str, list[Any]]:
    import numpy as np

    out: dict[str, list[Any]] = {}
    for name, p in spec.params.items():
        if p.grid:
            out[name] = list(p.grid)
        elif p.type == "categorical":
            out[name] = list(p.choices or [])
        else:
            pts = (np.geomspace if p.log else np.linspace)(p.low, p.high, spec.grid_points)
            out[name] = (
                sorted({int(round(v)) for v in pts}) if p.type == "int" else [float(v) for v in pts]
            )
    return out


def _grid_size(spec: SearchSpec) -> int:
    import math

    return math.prod(len(v) for v in grid_space(spec).values())


def suggest(trial: Any, name: str, p: ParamSpec) -> Any:
    if p.type == "categorical":
        return trial.suggest_categorical(name, p.choices)
    if p.type == "int":
        return trial.suggest_int(name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log)
    return trial.suggest_float(name, float(p.low), float(p.high), step=p.step, log=p.log)


def open_storage(storage_url: str) -> Any:
    """An RDB storage with heartbeats (shared by ``edgeslim tune`` and ``edgeslim search``)."""
    import warnings

    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    try:
        # Heartbeats let a restarted search mark a trial whose process was killed as failed
        # (and retry it once) instead of leaving it "running" forever. The API is marked
        # experimental in optuna; its warnings are noise for our users.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return RDBStorage(
                storage_url,
                heartbeat_interval=10,
                grace_period=30,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
    except Exception as exc:  # noqa: BLE001 - any driver/URL failure is a user input problem
        raise InputError(
            f"cannot open Optuna storage '{storage_url}' ({str(exc).splitlines()[0][:160]}); "
            "give an RDB URL such as sqlite:///path/study.db or "
            "postgresql://user:pass@host/db (needs psycopg2)"
        ) from exc


def open_study(
    optuna: Any, spec: SearchSpec, name: str, storage_url: str, seed: int, max_epochs: int
) -> Any:
    storage = open_storage(storage_url)
    probe = optuna.create_study(
        study_name=name, storage=storage, direction=spec.direction, load_if_exists=True
    )
    done = len(probe.get_trials(deepcopy=False))
    return optuna.load_study(
        study_name=name,
        storage=storage,
        sampler=make_sampler(optuna, spec, seed, done),
        pruner=make_pruner(optuna, spec, max_epochs),
    )


def finished(study: Any) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))


class _Runner:
    """Runs one trial of the recipe prefix and returns the tuned stage's metric."""

    def __init__(
        self, raw: dict[str, Any], idx: int, spec: SearchSpec, tune_dir: Path, reporter: Reporter
    ):
        self.raw, self.idx, self.spec, self.tune_dir, self.reporter = (
            raw,
            idx,
            spec,
            tune_dir,
            reporter,
        )
        metric = spec.metric
        self.epoch_metric = metric[5:] if metric.startswith("best_val_") else "val_top1"
        self.base_dirs: list[Path] = []

    def _recipe(self, values: dict[str, Any], out: Path, name: str, n_stages: int) -> Any:
        from edgeslim.recipe import parse_recipe

        r = apply_params(self.raw, self.idx, values, self.spec)
        r["stages"] = r["stages"][:n_stages]
        r["run"] = {
            **(r.get("run") or {}),
            "output_dir": str(out),
            "name": name,
            "latency_iters": 5,
        }  # trials are compared on accuracy; latency is the final run's job
        return parse_recipe(r, f"trial {name}")

    def run_base(self) -> None:
        """Stages before the tuned one, once (cached across trials and restarts)."""
        from edgeslim.pipeline import run_pipeline

        if self.idx == 0:
            return
        self.reporter.log(f"tune: running the {self.idx} stage(s) before the tuned one (once)")
        # Workers of one study share tune/base: a second one waits for the first to finish
        # it (then reuses its stages) instead of failing on the folder's lock.
        res = run_pipeline(self._recipe({}, self.tune_dir, "base", self.idx), self.reporter, lock_wait=True)
        self.base_dirs = [s.dir.resolve() for s in res.stages]

    def __call__(self, trial: Any) -> float:
        import optuna

        from edgeslim.pipeline import run_pipeline
        from edgeslim.train import engine

        values = {n: suggest(trial, n, p) for n, p in self.spec.params.items()}
        # One folder per study: several studies may share a run folder (sampler comparisons).
        recipe = self._recipe(
            values,
            self.tune_dir / "trials" / trial.study.study_name,
            f"trial-{trial.number:04d}",
            self.idx + 1,
        )
        run_dir = recipe.run_dir()
        run_dir.mkdir(parents=True, exist_ok=True)
        if not any(
            self.spec.params[n].path and self.spec.params[n].path.startswith(("data.", "model."))
            for n in values
        ):
            for d in self.base_dirs:
                link = run_dir / d.name
                if not link.exists():
                    os.symlink(d, link, target_is_directory=True)
        state = {"pruned": False}

        def hook(rec: dict[str, Any]) -> None:
            if rec.get(self.epoch_metric) is None:
                return
            trial.report(float(rec[self.epoch_metric]), int(rec["epoch"]))
            if trial.should_prune():
                state["pruned"] = True
                raise _Pruned(f"pruned at epoch {rec['epoch']}")

        engine.EPOCH_HOOKS.append(hook)
        try:
            res = run_pipeline(recipe, Reporter(quiet=True))
        except EdgeslimError:
            if state["pruned"]:
                raise optuna.TrialPruned() from None
            raise
        finally:
            engine.EPOCH_HOOKS.remove(hook)
        metrics = res.stages[-1].metrics
        if self.spec.metric not in metrics or metrics[self.spec.metric] is None:
            valid = sorted(k for k, v in metrics.items() if isinstance(v, (int, float)))
            raise InputError(
                f"search.metric '{self.spec.metric}' is not a metric of stage "
                f"'{res.stages[-1].name}'; valid: {', '.join(valid)}"
            )
        trial.set_user_attr("run_dir", str(run_dir))
        if "test_accuracy" in metrics:
            trial.set_user_attr("test_accuracy", metrics["test_accuracy"])
        return float(metrics[self.spec.metric])


def _check_study_name(name: str) -> None:
    """The study name is a folder (``tune/trials/<study>/``): the run-name rules apply."""
    from edgeslim.recipe import run_name_problem

    why = run_name_problem(name)
    if why:
        raise InputError(f"study name {name[:80]!r} {why}; use letters, digits, '.', '_' and '-' "
                         "starting with a letter or digit (--study or search.study)")


def tune(
    recipe_path: str | Path,
    *,
    trials: int | None = None,
    sampler: str | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    pruner: str | None = None,
    reporter: Reporter = NULL,
) -> dict[str, Any]:
    """Run (or continue) the study of ``recipe_path`` until it has ``trials`` finished trials.

    Returns a summary dict (also written to ``<run>/tune/summary.json``).
    """
    from edgeslim.recipe import load_recipe
    from edgeslim.tune.report import write_outputs

    optuna = require("optuna", "tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    recipe = load_recipe(recipe_path)  # bounded read (size, aliases) and full validation
    raw = load_yaml_file(recipe_path)
    spec, idx = parse_search(raw, str(recipe_path))
    over = {
        k: v
        for k, v in {
            "trials": trials,
            "sampler": sampler,
            "storage": storage,
            "study": study_name,
            "pruner": pruner,
        }.items()
        if v is not None
    }
    spec = SearchSpec.model_validate({**spec.model_dump(), **over})
    name = spec.study or recipe.run.name
    _check_study_name(name)
    tune_dir = recipe.run_dir() / "tune"
    tune_dir.mkdir(parents=True, exist_ok=True)
    url = spec.storage or default_storage(tune_dir)
    max_epochs = int(getattr(getattr(recipe.stages[idx], "train", None), "epochs", 1) or 1)
    seed = spec.seed if spec.seed is not None else recipe.run.seed
    study = open_study(optuna, spec, name, url, seed, max_epochs)
    done = finished(study)
    todo = max(spec.trials - done, 0)
    reporter.log(f"study '{name}' in {url}: {done} finished trial(s); running {todo} more")
    runner = _Runner(copy.deepcopy(raw), idx, spec, tune_dir, reporter)
    if todo:
        runner.run_base()
        with reporter.task("trials", todo) as advance:

            def after(study: Any, trial: Any) -> None:
                advance(1, info=f"#{trial.number} {trial.state.name.lower()} {trial.value}")

            # several workers may share the study: stop together at its total (workers.py)
            from edgeslim.tune.workers import optimize_shared

            grid = spec.sampler == "grid"
            total = min(spec.trials, _grid_size(spec)) if grid else spec.trials
            reseed = None if grid else (lambda number: make_sampler(optuna, spec, seed, number))
            optimize_shared(study, runner, total, 2 * todo, (EdgeslimError,), [after], reseed, reporter.log)
    return write_outputs(study, raw, idx, spec, tune_dir, url, reporter)
