"""The shared-study rules of ``edgeslim tune`` workers, on a real Optuna storage (SQLite file)."""

from __future__ import annotations

import pytest

optuna = pytest.importorskip("optuna")


def _study(tmp_path, **kw):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", study_name="s", **kw)


def test_a_trial_past_the_total_is_surplus(tmp_path):
    from edgeslim.tune.workers import SurplusTrial, check_surplus

    study = _study(tmp_path)
    for _ in range(3):
        study.tell(study.ask(), 1.0)
    mine, theirs = study.ask(), study.ask()  # two workers asking in the same instant for the 4th
    check_surplus(mine, 4)  # the lower number runs
    with pytest.raises(SurplusTrial):
        check_surplus(theirs, 4)
    assert theirs.user_attrs.get("surplus") is True and not mine.user_attrs


def test_optimize_shared_stops_at_the_total_and_reseeds_per_trial(tmp_path):
    from edgeslim.tune.workers import counts, optimize_shared

    study = _study(tmp_path)
    study.tell(study.ask({"lr": optuna.distributions.FloatDistribution(1e-3, 1e-1)}), 0.5)  # done earlier

    def objective(trial):
        return trial.suggest_float("lr", 1e-3, 1e-1)

    seeds = []

    def reseed(number):
        seeds.append(number)
        return optuna.samplers.RandomSampler(seed=number)

    started = optimize_shared(study, objective, total=4, budget=10, catch=(), callbacks=[], reseed=reseed)
    assert started == 3 and counts(study)["COMPLETE"] == 4
    assert seeds == [1, 2, 3]  # one sampler per trial, seeded by its (study-wide unique) number
    # the same draws as a fresh sampler with that seed: one worker alone is reproducible
    again = optuna.samplers.RandomSampler(seed=2).sample_independent(
        study, study.trials[2], "lr", optuna.distributions.FloatDistribution(1e-3, 1e-1))
    assert study.trials[2].params["lr"] == pytest.approx(again)


def test_optimize_shared_budget_ends_a_study_whose_trials_fail(tmp_path):
    from edgeslim.tune.workers import counts, optimize_shared

    study = _study(tmp_path)

    def broken(trial):
        raise ValueError("every trial fails")

    assert optimize_shared(study, broken, total=3, budget=4, catch=(ValueError,), callbacks=[]) == 4
    assert counts(study)["FAIL"] == 4


def test_a_trial_killed_before_its_first_heartbeat_is_failed_and_requeued(tmp_path):
    # Optuna's own check skips a RUNNING trial without a heartbeat (its worker died between ask()
    # and the first beat); left alone it would stay RUNNING forever and the study never finish.
    import time
    import warnings

    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    from edgeslim.tune.workers import fail_stale

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        storage = RDBStorage(f"sqlite:///{tmp_path / 'h.db'}", heartbeat_interval=1, grace_period=1,
                             heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1))
    study = optuna.create_study(storage=storage, study_name="h")
    with warnings.catch_warnings():  # optuna warns that heartbeats are meant for optimize(): on purpose here
        warnings.simplefilter("ignore")
        orphan = study.ask({"lr": optuna.distributions.FloatDistribution(1e-3, 1e-1)})
        live = study.ask()
    live.set_user_attr("worker", "elsewhere:1")  # a trial whose objective started: not an orphan
    fail_stale(study)
    assert study.trials[orphan.number].state == TrialState.RUNNING  # not older than the grace yet
    time.sleep(1.5)  # the grace period (1 s) is the protocol's, not a guess at a speed
    fail_stale(study)
    states = {t.number: t.state for t in study.trials}
    assert states[orphan.number] == TrialState.FAIL and states[live.number] == TrialState.RUNNING
    retry = [t for t in study.trials if t.system_attrs.get("failed_trial") == orphan.number]
    assert len(retry) == 1 and retry[0].state == TrialState.WAITING
    assert retry[0].params == study.trials[orphan.number].params
