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

import os
import platform
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from typing import Any

POLL_S = 2.0
WORKER = f"{platform.node()}:{os.getpid()}"


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
    """Mark trials of dead workers FAIL (heartbeat older than the grace period); re-queue them.

    Optuna skips a RUNNING trial that never recorded a heartbeat: its worker died between
    ``ask()`` and the heartbeat thread's first beat (a ``kill -9`` right after a trial ended).
    Such a trial never got the ``worker`` attribute either (set as the objective starts); once
    it is older than the grace period it is failed and re-queued here the same way.
    """
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the API is marked experimental
        optuna.storages.fail_stale_trials(study)
    storage = getattr(study, "_storage", None)  # optuna wraps an RDBStorage in a cache layer
    interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
    if not interval:
        return
    backend = getattr(storage, "_backend", storage)
    grace = getattr(backend, "grace_period", None) or 2 * interval
    from optuna.trial import TrialState

    now = datetime.now()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if "worker" in t.user_attrs or t.datetime_start is None:
            continue
        if (now - t.datetime_start).total_seconds() > grace:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    failed = study.tell(t.number, state=TrialState.FAIL)
            except (ValueError, RuntimeError):  # another worker failed it first (or it just ended)
                continue
            callback = storage.get_heartbeat_stale_trial_callback()
            if callback is not None:
                callback(study, failed)


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
        trial.set_user_attr("worker", WORKER)  # also marks the trial as past its start (fail_stale)
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
