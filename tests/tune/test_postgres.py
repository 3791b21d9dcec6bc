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


# The trials' model waits in forward() until the test creates `release`: both workers are then
# inside a trial at the same time, whatever the machine's speed, and the kill lands mid-trial.
GATED = """
import time
from pathlib import Path

from torch import nn

RELEASE = Path(__file__).with_name("release")


class GatedMLP(nn.Module):
    def __init__(self, num_classes: int = 10, in_chans: int = 3, image_size: int = 16):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(in_chans * image_size * image_size, 16), nn.ReLU(),
                                 nn.Linear(16, num_classes))

    def forward(self, x):
        while not RELEASE.exists():
            time.sleep(0.05)
        return self.net(x)
"""


def _recipe(write_recipe: Any, folder: Path) -> Path:
    (folder / "gated.py").write_text(GATED)
    return write_recipe(
        stages=[{"stage": "finetune", "train": {"epochs": 2, "batch_size": 16, "tensorboard": False,
                                                 "eval_test": False}}],
        model={"source": f"{folder / 'gated.py'}:GatedMLP", "kwargs": {"image_size": 16}},
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


def _running_trials(url: str, trials_dir: Path) -> dict[int, int]:
    """pid -> number of its RUNNING trial (each trial's run folder lock names its holder)."""
    from optuna.trial import TrialState

    from edgeslim.runlock import read_holder

    out = {}
    for t in _trials(url):
        lock = trials_dir / f"trial-{t.number:04d}" / ".lock"
        if t.state == TrialState.RUNNING and lock.is_file():
            pid = read_holder(lock).get("pid")
            if pid is not None:
                out[int(pid)] = t.number
    return out


def test_two_workers_one_study_and_a_kill9(write_recipe, tmp_path, postgres_server, wait_for):
    from optuna.trial import TrialState

    url = postgres_server.url
    recipe = _recipe(write_recipe, tmp_path)
    cmd = [sys.executable, "-m", "edgeslim", "tune", str(recipe), "--storage", url, "--study", "pgstudy", "-q"]
    trials_dir = tmp_path / "runs" / "pg" / "tune" / "trials" / "pgstudy"
    a = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    b = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def in_both() -> dict[int, int] | None:
            running = _running_trials(url, trials_dir)
            return running if {a.pid, b.pid} <= set(running) else None

        killed = wait_for(in_both, "a trial running in each worker", a)[a.pid]
        os.killpg(a.pid, signal.SIGKILL)
        a.wait()
        (tmp_path / "release").touch()
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
