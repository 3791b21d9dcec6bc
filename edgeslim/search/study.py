"""``edgeslim search``: the two-objective Optuna study and its trial runner.

Each trial writes the sampled settings into the recipe, runs it up to the last stage that writes
an ONNX (``trials/t-<hash>/``, named by the hash of the trial's recipe, so identical settings,
from this study or another, reuse the finished stages) and scores that artifact: validation
top-1 in the runtime that runs it, and latency on the target (``measure.py``, cached by the
artifact's sha256). Stages before the first searched one run once in ``search/base`` and are
linked into every trial folder (their cache keys match, so the pipeline reuses them). The study
lives in an RDB storage with heartbeats (SQLite in ``search/`` by default): rerunning continues
it, and several workers can share it (``edgeslim.tune.workers``).
"""

from __future__ import annotations

import copy
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeslim.errors import EdgeslimError, InputError, require
from edgeslim.fsutil import atomic_write_json, sha256_json
from edgeslim.progress import NULL, Reporter
from edgeslim.safe_yaml import load_yaml_file
from edgeslim.search.space import CompressSearch, SearchPlan, apply_values, parse_search
from edgeslim.tune.study import _check_study_name, grid_space, open_storage, suggest

if TYPE_CHECKING:
    from edgeslim.deploy.gate.ssh import SshTarget
    from edgeslim.recipe import Recipe
    from edgeslim.search.measure import Measurer

DIRECTIONS = ["maximize", "minimize"]  # val accuracy of the artifact, its latency_ms
LOCAL_BACKENDS = ("onnxruntime", "openvino")


def make_sampler(optuna: Any, spec: CompressSearch, seed: int, n_done: int) -> Any:
    """The sampler for the next trial; random/TPE/NSGA-II are seeded from ``seed + n_done``."""
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(grid_space(spec), seed=seed)  # type: ignore[arg-type]
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed + n_done)
    if spec.sampler == "nsga2":
        # Optuna's default population (50) would make a budget of a few dozen trials one random
        # generation; a third of the budget gives NSGA-II a few generations to select from.
        pop = spec.population or max(4, min(50, spec.trials // 3))
        return optuna.samplers.NSGAIISampler(population_size=pop, seed=seed + n_done)
    startup = spec.startup_trials if spec.startup_trials is not None else min(10, max(3, spec.trials // 3))
    return optuna.samplers.TPESampler(seed=seed + n_done, n_startup_trials=startup, multivariate=True)


def open_study(optuna: Any, spec: CompressSearch, name: str, url: str, seed: int) -> Any:
    storage = open_storage(url)
    try:
        probe = optuna.create_study(study_name=name, storage=storage, directions=DIRECTIONS, load_if_exists=True)
    except ValueError as exc:  # optuna's own message names the mismatch
        raise InputError(f"study '{name}' in {url} cannot be continued by edgeslim search ({exc}); "
                         "give another --study name") from exc
    if [d.name.lower() for d in probe.directions] != DIRECTIONS:
        raise InputError(f"study '{name}' in {url} is not an edgeslim search study (its objectives: "
                         f"{', '.join(d.name.lower() for d in probe.directions)}); give another --study name")
    done = len(probe.get_trials(deepcopy=False))
    return optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(optuna, spec, seed, done))


class Runner:
    """Runs one trial (the recipe up to its artifact) and scores the artifact."""

    def __init__(self, raw: dict[str, Any], plan: SearchPlan, recipe: Recipe, search_dir: Path,
                 measurer: Measurer, reporter: Reporter):
        self.raw, self.plan, self.recipe, self.search_dir = raw, plan, recipe, search_dir
        self.measurer, self.reporter = measurer, reporter
        self.base_dirs: list[Path] = []
        self.data_key = data_key(recipe)

    def sub_recipe(self, values: dict[str, Any], out: Path, name: str | None, n_stages: int) -> Recipe:
        """The recipe with ``values`` applied, cut to ``n_stages``, run in ``out/name`` (default:
        ``t-`` + the hash of everything but the run block: equal settings share a folder)."""
        from edgeslim.recipe import parse_recipe

        r = apply_values(self.raw, self.plan, values)
        r["stages"] = r["stages"][:n_stages]
        # Stage latency_ms is a quick per-stage figure; the objective is measured separately.
        r["run"] = {**(r.get("run") or {}), "output_dir": str(out), "name": name or "trial", "latency_iters": 5}
        rec = parse_recipe(r, f"trial {name or ''}".strip())
        if name is None:
            rec.run.name = "t-" + sha256_json({k: v for k, v in rec.resolved().items() if k != "run"})[:12]
        return rec

    def run_base(self) -> None:
        """The stages before the first searched one, once (cached across trials and restarts)."""
        from edgeslim.pipeline import run_pipeline

        first = self.plan.first_index
        if first == 0:
            return
        names = ", ".join(self.plan.stage_names(self.raw)[:first])
        self.reporter.log(f"search: running the {first} shared stage(s) before the searched ones once: {names}")
        res = run_pipeline(self.sub_recipe({}, self.search_dir, "base", first), self.reporter, lock_wait=True)
        self.base_dirs = [s.dir.resolve() for s in res.stages]

    def _link_base(self, run_dir: Path) -> None:
        for d in self.base_dirs:
            link = run_dir / d.name
            if not link.exists() and not link.is_symlink():
                os.symlink(d, link, target_is_directory=True)

    def __call__(self, trial: Any) -> tuple[float, float]:
        from edgeslim.pipeline import run_pipeline

        t0 = time.perf_counter()
        values = {t.name: suggest(trial, t.name, t.spec) for t in self.plan.targets}
        recipe = self.sub_recipe(values, self.search_dir / "trials", None, self.plan.artifact_index + 1)
        run_dir = recipe.run_dir()
        run_dir.mkdir(parents=True, exist_ok=True)
        self._link_base(run_dir)
        trial.set_user_attr("run_dir", str(run_dir.resolve()))
        try:
            # lock_wait: another worker may be running the same settings; its stages are then reused
            res = run_pipeline(recipe, Reporter(silent=True), lock_wait=True)  # warnings: in its run.json
            art = next(s for s in reversed(res.stages) if s.onnx_file)
            path = (art.dir / str(art.onnx_file)).resolve()
            score = self.score(path, recipe)
        except EdgeslimError as exc:
            trial.set_user_attr("error", str(exc)[:400])
            raise
        trial.set_user_attr("artifact", str(path))
        trial.set_user_attr("score", score)
        trial.set_user_attr("wall_s", round(time.perf_counter() - t0, 2))
        return score["accuracy"], score["latency_ms"]

    def score(self, path: Path, recipe: Recipe) -> dict[str, Any]:
        return score_artifact(self.measurer, path, recipe, self.data_key)


def data_key(recipe: Recipe) -> str:
    """What the validation split depends on besides the artifact (part of the accuracy cache key)."""
    return sha256_json({"data": recipe.resolved()["data"], "seed": recipe.run.seed})


def score_artifact(measurer: Measurer, path: Path, recipe: Recipe, key: str | None = None) -> dict[str, Any]:
    """Validation top-1 and latency of the artifact at ``path`` (both cached by its hash)."""
    from edgeslim.data import build_data
    from edgeslim.stages.context import model_norm

    data = build_data(recipe.data, recipe.run.seed, model_norm(recipe.model))  # cached in-process
    acc = measurer.accuracy(path, data, key or data_key(recipe), recipe.data.batch_size)
    lat = measurer.latency_ms(path, tuple(data.input_shape))
    return {"accuracy": float(acc["accuracy"]), "latency_ms": float(lat["latency_ms"]),
            "latency_p90_ms": lat.get("p90_ms"), "latency_vs_anchor": lat.get("vs_anchor"),
            "latency_anchor_state": lat.get("anchor_state"),
            "backend": lat["backend"], "evaluated_on": acc["evaluated_on"],
            "sha256": acc["sha256"], "latency_cached": lat["cached"], "where": lat["where"]}


def check_backend(backend: str | None, remote: SshTarget | None) -> None:
    """A runtime the artifact can be timed in, checked before any trial runs."""
    if backend is None:
        return
    if remote is not None:
        from edgeslim.deploy.bundle.runner_backends import BACKENDS

        ok = [b for b in BACKENDS if b != "tensorrt"]
    else:
        ok = list(LOCAL_BACKENDS)
    if backend not in ok:
        from edgeslim.errors import unknown_name

        raise unknown_name("--backend", backend, ok, "the search times the ONNX artifact in one of these")
    if remote is None:
        from edgeslim.runtime.registry import unavailable_reason

        why = unavailable_reason(backend)
        if why:
            raise InputError(f"--backend {backend} cannot run here: {why}")


def search(recipe_path: str | Path, *, trials: int | None = None, sampler: str | None = None,
           storage: str | None = None, study_name: str | None = None, seed: int | None = None,
           backend: str | None = None, threads: int | None = None, remote: SshTarget | None = None,
           pick: str | None = None, reporter: Reporter = NULL) -> dict[str, Any]:
    """Run (or continue) the search of ``recipe_path`` until it has ``trials`` completed trials.

    Writes ``<run>/search/`` (pareto.json, trials.csv, pareto.png, summary.json) and returns the
    summary; with ``pick`` also the picked recipe and its run (``summary['picked']``).

    >>> s = search("recipes/search-demo.yaml", trials=12)           # doctest: +SKIP
    >>> s["hypervolume"]["normalized"]                              # doctest: +SKIP
    """
    from edgeslim.recipe import load_recipe
    from edgeslim.search.measure import Measurer
    from edgeslim.search.outputs import write_outputs
    from edgeslim.search.pick import parse_pick

    optuna = require("optuna", "tune")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    wanted = parse_pick(pick) if pick is not None else None  # bad syntax fails before any trial
    recipe = load_recipe(recipe_path)  # bounded read and full validation
    raw = load_yaml_file(recipe_path)
    plan = parse_search(raw, recipe, str(recipe_path))
    over = {"trials": trials, "sampler": sampler, "storage": storage, "study": study_name, "seed": seed,
            "backend": backend, "threads": threads}
    spec = _with(plan, **{k: v for k, v in over.items() if v is not None})
    seed_ = spec.seed if spec.seed is not None else recipe.run.seed
    spec = _with(plan, seed=seed_)  # recorded as used
    check_backend(spec.backend, remote)
    name = spec.study or recipe.run.name
    _check_study_name(name)
    search_dir = recipe.run_dir() / "search"
    search_dir.mkdir(parents=True, exist_ok=True)
    url = spec.storage or f"sqlite:///{search_dir.resolve() / 'study.db'}"
    study = open_study(optuna, spec, name, url, seed_)
    enqueue_first_trials(study, plan, raw, reporter)
    if pick is not None and trials is None:
        from edgeslim.tune.workers import counts

        # --pick alone chooses from the study as it is; it runs trials only when there are none
        spec = _with(plan, trials=counts(study)["COMPLETE"] or spec.trials)
    measurer = Measurer(search_dir / "cache", spec.latency, spec.backend, spec.threads or recipe.run.threads, remote)
    if remote is None and spec.latency.anchored:
        measurer.anchor()  # a study whose anchor file was removed stops here, in one line
    runner = Runner(copy.deepcopy(raw), plan, recipe, search_dir, measurer, reporter)
    _optimize(optuna, study, runner, spec, seed_, url, reporter)
    summary = write_outputs(study, plan, raw, search_dir, url, measurer, reporter)
    if wanted is not None:
        from edgeslim.search.picked import run_pick

        summary["picked"] = run_pick(raw, plan, recipe, search_dir, summary, wanted, reporter)
        atomic_write_json(search_dir / "summary.json", summary)
    return summary


def enqueue_first_trials(study: Any, plan: SearchPlan, raw: dict[str, Any], reporter: Reporter) -> None:
    """A new study's first trial is the recipe as written (``search.baseline``): the front then
    holds the point the recipe itself gives, and the sampler's trials are compared with it. Next
    come the ends of each numeric range (``search.explore_bounds``, :func:`bound_values`)."""
    from edgeslim.search.space import bound_values, recipe_values

    if plan.spec.sampler == "grid" or study.get_trials(deepcopy=False):
        return
    queued = []
    values = recipe_values(raw, plan) if plan.spec.baseline else {}
    if values:
        queued.append(("first trial = the recipe's own settings", values))
    if plan.spec.explore_bounds:
        queued += [("then the end of a range", v) for v in bound_values(raw, plan)]
    for what, v in queued:
        # skip_if_exists: two workers opening a new study at once queue it once
        study.enqueue_trial(v, skip_if_exists=True)
        reporter.log(f"search: {what}: " + " ".join(f"{k}={x}" for k, x in v.items()))


def _with(plan: SearchPlan, **over: Any) -> CompressSearch:
    """``plan.spec`` with ``over`` applied (validated again); stored back into the plan."""
    plan.spec = CompressSearch.model_validate({**plan.spec.model_dump(), **over})
    return plan.spec


def _optimize(optuna: Any, study: Any, runner: Runner, spec: CompressSearch, seed: int, url: str,
              reporter: Reporter) -> None:
    import math

    from edgeslim.tune.workers import counts, optimize_shared

    grid = spec.sampler == "grid"
    size = math.prod(len(v) for v in grid_space(spec).values())  # type: ignore[arg-type]
    total = min(spec.trials, size) if grid else spec.trials
    done = counts(study)["COMPLETE"]
    todo = max(total - done, 0)
    reporter.log(f"search study '{study.study_name}' in {url}: {done} completed trial(s); running {todo} more "
                 f"({spec.sampler}; objectives: val accuracy of the artifact, latency on {runner.measurer.where()})")
    if not todo:
        return
    runner.run_base()
    # Plain output (a CI log): the task's own line per advance is the trial's line. A terminal:
    # the bar, plus one printed line per trial so the history stays on screen.
    plain = bool(getattr(reporter, "plain", False))
    with reporter.task("trial", todo) as advance:

        def after(study: Any, trial: Any) -> None:
            if trial.user_attrs.get("surplus"):
                return
            info = trial_info(trial)
            if trial.state.name != "COMPLETE":  # not counted: the study runs another in its place
                reporter.log(f"trial {info}")
                return
            advance(1, info=info if plain else info[:60])
            if not plain:
                reporter.log(f"trial {info}")

        reseed = None if grid else (lambda number: make_sampler(optuna, spec, seed, number))
        optimize_shared(study, runner, total, 2 * todo, (EdgeslimError,), [after], reseed, reporter.log)


def trial_info(trial: Any) -> str:
    """A trial in one line (what a CI log shows): number, scores or error, settings, wall time."""
    settings = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items())
    if trial.state.name != "COMPLETE":
        why = trial.user_attrs.get("error", "see the trial's run folder")
        return f"#{trial.number} {trial.state.name.lower()}: {settings}: {why}"
    s = trial.user_attrs.get("score", {})
    cached = " (latency cached)" if s.get("latency_cached") else ""
    return (f"#{trial.number}: accuracy {trial.values[0]:.4f} latency {trial.values[1]:.4g} ms "
            f"({s.get('backend', '?')}){cached} {settings} [{trial.user_attrs.get('wall_s', '?')} s]")
