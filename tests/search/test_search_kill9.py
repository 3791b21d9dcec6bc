"""`edgeslim search` killed with SIGKILL mid-study keeps its finished trials; a rerun completes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_search_run import SEARCH, _recipe  # noqa: E402


@pytest.mark.slow
def test_search_kill9_keeps_finished_trials(tmp_path, python, wait_for, study_states):
    recipe = _recipe(tmp_path, "k9", {**SEARCH, "trials": 3})
    db = tmp_path / "runs" / "k9" / "search" / "study.db"
    cmd = [python, "-m", "edgeslim", "search", str(recipe), "-q"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        # killed as soon as one trial is stored (2 still to run): mid-study on any machine
        wait_for(lambda: db.exists() and "COMPLETE" in study_states(db).values(), "a finished trial in the study", proc)
        assert proc.poll() is None, "the study finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    before = {n for n, s in study_states(db).items() if s == "COMPLETE"}
    assert 1 <= len(before) < 3, "the kill did not land mid-study"
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=wait_for.cap_s)
    assert out.returncode == 0, out.stderr
    after = study_states(db)
    assert all(after[n] == "COMPLETE" for n in before), "a finished trial was lost"
    assert list(after.values()).count("COMPLETE") == 3 and "3 complete" in out.stdout
    front = json.loads((db.parent / "pareto.json").read_text())
    assert front and all(Path(p["artifact"]).is_file() for p in front)
