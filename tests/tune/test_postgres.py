"""``edgeslim tune`` with two worker processes on one study in a REAL PostgreSQL server.

The server is started on 127.0.0.1 by the ``postgres_server`` fixture and stopped at the end.
Two ``edgeslim tune`` processes share the study; one is killed with ``kill -9`` in the middle
of a trial. The other must finish the study with exactly the requested number of complete
trials, none lost and none run twice, and the killed trial must end ``FAIL`` (Optuna's
heartbeat), be retried once with the same parameters, and never stay ``RUNNING``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
TRIALS = 4


def _recipe(write_recipe: Any) -> Path:
    return write_recipe(
        stages=[{"stage": "finetune", "train": {"epochs": 4, "batch_size": 8, "tensorboard": False,
                                                 "eval_test": False}}],
        model={"source": "test_mlp", "kwargs": {"image_size": 16, "hidden": 16}},
        name="pg",
        search={"trials": TRIALS, "sampler": "random", "pruner": "none",
                "params": {"lr": {"low": 1e-3, "high": 0.1, "log": True}}},
    )


def _study(url: str) -> Any:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.load_study(study_name="pgstudy", storage=url)


def _trials(url: str) -> list[Any]:
    try:
        return _study(url).get_trials(deepcopy=False)
    except Exception:  # noqa: BLE001 - the study does not exist yet (workers still starting)
        return []


def _running_trial_of(pid: int, url: str, trials_dir: Path) -> int | None:
    """A RUNNING trial whose run folder is locked by process ``pid`` (the lock file names it)."""
    from optuna.trial import TrialState

    from edgeslim.runlock import read_holder

    for t in _trials(url):
        lock = trials_dir / f"trial-{t.number:04d}" / ".lock"
        if t.state == TrialState.RUNNING and lock.is_file() and read_holder(lock).get("pid") == pid:
            return t.number
    return None


def test_two_workers_one_study_and_a_kill9(write_recipe, tmp_path, postgres_server, wait_for):
    from optuna.trial import TrialState

    url = postgres_server.url
    recipe = _recipe(write_recipe)
    cmd = [sys.executable, "-m", "edgeslim", "tune", str(recipe), "--storage", url, "--study", "pgstudy", "-q"]
    trials_dir = tmp_path / "runs" / "pg" / "tune" / "trials" / "pgstudy"
    a = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        killed = wait_for(lambda: _running_trial_of(a.pid, url, trials_dir), "a trial running in worker A", a)
        os.killpg(a.pid, signal.SIGKILL)
        a.wait()
        out, err = b.communicate(timeout=wait_for.cap_s)
    finally:
        for p in (a, b):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert b.returncode == 0, err[-3000:]
    trials = _trials(url)
    by_number = {t.number: t for t in trials}
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    # the requested number of finished trials: exactly, although two workers asked for TRIALS each
    assert len(complete) == TRIALS, [(t.number, t.state.name) for t in trials]
    assert f"{TRIALS} complete" in out
    # the killed trial ends FAIL (heartbeat), never RUNNING forever; nothing is left waiting
    assert by_number[killed].state == TrialState.FAIL
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    # ... and it was retried once, with its parameters, to completion (not lost)
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == killed]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert retries[0].params == by_number[killed].params
    # no configuration computed twice: distinct parameters and one run folder per complete trial
    assert len({t.params["lr"] for t in complete}) == TRIALS
    assert len({t.user_attrs["run_dir"] for t in complete}) == TRIALS
    other_fails = [t for t in trials if t.state == TrialState.FAIL and t.number != killed]
    assert all(t.user_attrs.get("surplus") for t in other_fails), "only surplus trials may fail unrun"
    for t in other_fails:  # a surplus trial is refused before it runs: it has no run folder
        assert not (trials_dir / f"trial-{t.number:04d}" / "run.json").exists()
