"""Every sampler of edgeslim search drives a two-objective study (a cheap objective stands in for
the trial: the sampler plumbing is what is under test; the real trials are in test_search_run)."""

from __future__ import annotations

import pytest

from edgeslim.search.space import CompressSearch


@pytest.mark.parametrize("sampler", ["nsga2", "tpe", "random", "grid"])
def test_each_sampler_runs_a_two_objective_study(sampler):
    import optuna

    from edgeslim.search.study import DIRECTIONS, make_sampler
    from edgeslim.tune.study import suggest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = CompressSearch.model_validate({"trials": 8, "sampler": sampler, "params": {
        "target_macs": {"low": 0.1, "high": 0.7}, "precision": {"choices": ["int8", "fp32"]}}})
    study = optuna.create_study(directions=DIRECTIONS, sampler=make_sampler(optuna, spec, 0, 0))

    def objective(trial):
        v = {n: suggest(trial, n, p) for n, p in spec.params.items()}
        fast = 0.5 if v["precision"] == "int8" else 1.0
        return 1 - (0.7 - v["target_macs"]) ** 2, fast * v["target_macs"]  # accuracy up, latency down

    study.optimize(objective, n_trials=6)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 6 and len(study.best_trials) >= 1
    if sampler == "grid":  # 3 levels x 2 choices: 6 distinct points, each visited once
        assert len({(t.params["target_macs"], t.params["precision"]) for t in done}) == 6
    if sampler == "nsga2":
        assert make_sampler(optuna, spec, 0, 0)._population_size == 4  # trials/3, at least 4
