"""Several ``edgeslim tune`` processes on one study: stop together at the study's total, finish
the trials of killed workers, and never draw the same parameters twice.

Plain ``study.optimize(n_trials=N)`` in each of two workers runs 2N trials, leaves a killed
worker's trial RUNNING when the survivor stops before the heartbeat's grace period is over, and
two workers started together draw identical parameters from identically seeded samplers. Here:

* each worker runs one trial at a time while the study has fewer than ``total`` finished trials
  (complete or pruned), counting other workers' running trials as on their way; when those
  would reach the total it waits (polling) instead of stopping, so a trial of a killed worker
  is failed by the heartbeat check (``fail_stale_trials``), re-queued by the retry callback
  and run here;
* a trial asked for in the same instant as another worker's last one is *surplus*: it is
  refused before it runs (marked FAIL with the user attribute ``surplus``), so the study ends
  with exactly ``total`` finished trials;
* the sampler is re-seeded per trial from ``seed + trial.number`` (random, TPE): trial numbers
  are unique across workers, and one worker alone still draws the same sequence every time.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from typing import Any

POLL_S = 2.0


class SurplusTrial(Exception):
    """This trial would take the study past its total (another worker asked at the same time)."""


def counts(study: Any) -> dict[str, int]:
    from optuna.trial import TrialState

    out = {s.name: 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        out[t.state.name] += 1
    return out


def check_surplus(trial: Any, total: int) -> None:
    """Refuse ``trial`` when ``total`` trials before it are finished or under way."""
    from optuna.trial import TrialState

    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    before = [t for t in trial.study.get_trials(deepcopy=False, states=live) if t.number < trial.number]
    if len(before) >= total:
        trial.set_user_attr("surplus", True)
        raise SurplusTrial(f"trial {trial.number} is surplus: the study already has {total} trials")


def fail_stale(study: Any) -> None:
    """Mark trials of dead workers FAIL (heartbeat older than the grace period); re-queue them."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the API is marked experimental
        optuna.storages.fail_stale_trials(study)


def optimize_shared(study: Any, objective: Callable[[Any], float], total: int, budget: int,
                    catch: tuple[type[BaseException], ...], callbacks: list[Any],
                    reseed: Callable[[int], Any] | None = None, log: Callable[[str], None] | None = None) -> int:
    """Run trials of ``objective`` until ``study`` holds ``total`` finished trials.

    ``budget`` bounds the trials this process starts (a study whose trials keep failing ends);
    ``reseed(trial_number)`` returns a fresh sampler for that trial; ``log`` hears once that
    this worker waits for trials running elsewhere. Returns the trials started.
    """
    started, told = 0, False

    def wrapped(trial: Any) -> float:
        check_surplus(trial, total)
        if reseed is not None:
            trial.study.sampler = reseed(trial.number)  # consulted lazily, at each suggest_*
        return objective(trial)

    while started < budget:
        fail_stale(study)
        c = counts(study)
        finished = c["COMPLETE"] + c["PRUNED"]
        if finished >= total:
            break
        if c["WAITING"] or finished + c["RUNNING"] < total:
            study.optimize(wrapped, n_trials=1, catch=(*catch, SurplusTrial), callbacks=callbacks)
            started += 1
        else:  # the rest is running elsewhere: wait for it to finish, fail or go stale
            if log is not None and not told:
                log(f"waiting for {c['RUNNING']} trial(s) running in other workers (a killed worker's trial "
                    "is marked failed and retried here once its heartbeat is older than the grace period)")
                told = True
            time.sleep(POLL_S)
    return started
