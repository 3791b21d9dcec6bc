"""The run folder: safe names, a lock against a second writer, only our own folders removed,
truthful run.json (artifact paths, interrupted status) and one-line errors for a broken one."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgeslim.pipeline import run_pipeline
from edgeslim.progress import NULL, Reporter
from edgeslim.recipe import load_recipe

ONE_EPOCH = [{"stage": "finetune", "train": {"epochs": 1, "batch_size": 16, "tensorboard": False}}]


def _wait_for(cond, what: str, cap_s: float = 120.0) -> None:
    """Wait on a condition (never on an assumed speed), with a generous cap."""
    deadline = time.time() + cap_s
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {cap_s:.0f} s")


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../up", "..\\x", ".hidden", "a\x00b", "CON",
                                  "nul.txt", "x" * 200, "trailing."])
def test_unsafe_run_names_are_one_line_errors(write_recipe, cli, tmp_path, name):
    runs = tmp_path / "runs"
    runs.mkdir()
    precious = runs / "07-important"
    precious.mkdir()
    (precious / "thesis.txt").write_text("precious")
    code, out, err = cli("run", write_recipe(ONE_EPOCH), "--name", name, "-q")
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "run.name" in err and "valid" in err, err
    assert (precious / "thesis.txt").read_text() == "precious"
    assert sorted(p.name for p in runs.iterdir()) == ["07-important"]


def test_unsafe_name_in_recipe_fails_validate(write_recipe, cli):
    code, _, err = cli("validate", write_recipe(ONE_EPOCH, run={"name": ".."}))
    assert code == 2 and "run.name" in err and "'..'" in err


def test_stale_cleanup_never_removes_folders_edgeslim_did_not_make(write_recipe, tmp_path):
    run = tmp_path / "runs" / "t"
    run_pipeline(load_recipe(write_recipe(ONE_EPOCH + [{"stage": "export"}])), NULL)
    # A user's folder that merely looks like a stage folder, and a stage folder of ours.
    (run / "07-important").mkdir()
    (run / "07-important" / "thesis.txt").write_text("precious")
    (run / "08-notes.failed").mkdir()
    res = run_pipeline(load_recipe(write_recipe(ONE_EPOCH)), NULL)
    assert (run / "07-important" / "thesis.txt").read_text() == "precious"
    assert (run / "08-notes.failed").is_dir()
    assert not (run / "01-export").exists(), "our own superseded stage folder stays removable"
    assert [s.dir.name for s in res.stages] == ["00-finetune"]


def _hold_lock(run_dir: Path) -> subprocess.Popen:
    """Another process holding the run folder's lock (as a running `edgeslim run` would)."""
    code = ("import sys, time; from edgeslim.runlock import RunLock; "
            "l = RunLock(sys.argv[1]); l.acquire(); print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_writer_is_refused_and_told_who_holds_the_lock(write_recipe, cli, tmp_path):
    run = tmp_path / "runs" / "t"
    recipe = write_recipe(ONE_EPOCH)
    assert cli("run", recipe, "-q")[0] == 0
    model_pt = run / "00-finetune" / "model.pt"
    mtime = model_pt.stat().st_mtime_ns
    (run / ".00-finetune.tmp-inprogress").mkdir()  # the holder's stage in progress
    holder = _hold_lock(run)
    try:
        code, _, err = cli("run", recipe, "--fresh", "-q")
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1
        assert f"pid {holder.pid}" in err and socket.gethostname() in err and "in use" in err
        assert (run / ".00-finetune.tmp-inprogress").is_dir(), "the holder's temp folder was cleaned"
        assert model_pt.stat().st_mtime_ns == mtime
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the kernel releases the lock
        holder.wait()
    code, _, err = cli("run", recipe, "-q")
    assert code == 0, err
    assert not (run / ".00-finetune.tmp-inprogress").exists()


def test_lock_holder_in_this_process_is_seen_and_refuses_a_run(write_recipe, tmp_path):
    from edgeslim.errors import InputError
    from edgeslim.runlock import RunLock, lock_holder

    run = tmp_path / "runs" / "t"
    lock = RunLock(run)
    lock.acquire()
    try:
        info = lock_holder(run)
        assert info is not None and info["pid"] == os.getpid()
        with pytest.raises(InputError, match="in use by"):
            run_pipeline(load_recipe(write_recipe(ONE_EPOCH)), NULL)
    finally:
        lock.release()
    assert lock_holder(run) is None


class _Log(Reporter):
    """A quiet Reporter that keeps its messages (to wait on one)."""

    def __init__(self):
        super().__init__(quiet=True)
        self.lines: list[str] = []

    def log(self, msg: str) -> None:
        self.lines.append(msg)


def test_tune_waits_for_the_holder_of_its_shared_base(write_recipe, tmp_path):
    import threading

    from edgeslim.tune.study import tune

    stages = [{"stage": "pretrain", "train": {"epochs": 1, "batch_size": 16, "tensorboard": False}},
              {"stage": "finetune", "train": {"epochs": 1, "batch_size": 16, "tensorboard": False}}]
    recipe = write_recipe(stages, name="tw", search={"stage": "finetune", "trials": 1, "sampler": "random",
                                                     "pruner": "none", "params": {"lr": {"low": 1e-3, "high": 0.1}}})
    base = tmp_path / "runs" / "tw" / "tune" / "base"
    holder = _hold_lock(base)  # another worker of the study, building tune/base
    log, out = _Log(), {}
    worker = threading.Thread(target=lambda: out.update(summary=tune(recipe, reporter=log)), daemon=True)
    worker.start()
    try:
        _wait_for(lambda: any(f"waiting for pid {holder.pid}" in m for m in log.lines), "tune waiting on the lock")
        assert worker.is_alive() and not (base / "run.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    worker.join(timeout=300)
    assert out["summary"]["n_complete"] == 1
    assert json.loads((base / "run.json").read_text())["status"] == "completed"


def test_killed_run_is_reported_interrupted_not_running(write_recipe, tmp_path, python):
    from edgeslim.runrecord import read_record

    stages = [{"stage": "finetune", "train": {"epochs": 200, "batch_size": 8, "tensorboard": False}}]
    recipe = write_recipe(stages, name="k")
    run_json = tmp_path / "runs" / "k" / "run.json"
    proc = subprocess.Popen([python, "-m", "edgeslim", "run", str(recipe), "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(lambda: run_json.is_file() and '"running"' in run_json.read_text(), "run.json running")
        assert read_record(run_json.parent)["status"] == "running"  # its writer holds the lock
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert json.loads(run_json.read_text())["status"] == "running"  # what the killed run left
    rec = read_record(run_json.parent)
    assert rec["status"] == "interrupted" and rec["stages"][0]["status"] == "interrupted"


def test_reused_stages_keep_their_artifact_paths_and_budget_reads_the_right_stage(write_recipe, tmp_path):
    from edgeslim.deploy.gate.budget import read_accuracy

    stages = ONE_EPOCH + [{"stage": "export"}]
    recipe = load_recipe(write_recipe(stages))
    first = run_pipeline(recipe, NULL)
    second = run_pipeline(recipe, NULL)  # every stage reused from its folder
    run_json = first.run_dir / "run.json"
    for rec in (first.record, second.record, json.loads(run_json.read_text())):
        assert [s["artifact"] for s in rec["stages"]] == ["00-finetune/model.pt", "01-export/model.onnx"]
    meta = json.loads((first.run_dir / "00-finetune" / "meta.json").read_text())
    assert meta["artifact"] == "00-finetune/model.pt"
    for i, art in enumerate(("00-finetune/model.pt", "01-export/model.onnx")):
        expected = second.record["stages"][i]["metrics"]["test_accuracy"]
        assert read_accuracy(run_json, first.run_dir / art) == expected
    # A third run after a reused one still points at files that exist.
    third = run_pipeline(recipe, NULL)
    assert all((third.run_dir / s["artifact"]).is_file() for s in third.record["stages"])


@pytest.mark.parametrize("kind", ["directory", "garbage"])
def test_broken_run_json_is_a_one_line_error(write_recipe, cli, tmp_path, kind):
    run = tmp_path / "runs" / "t"
    run.mkdir(parents=True)
    if kind == "directory":
        (run / "run.json").mkdir()
        (run / "run.json" / "keep.txt").write_text("mine")
    else:
        (run / "run.json").write_text("{not json")
    code, _, err = cli("run", write_recipe(ONE_EPOCH), "-q")
    if kind == "directory":
        assert code == 2 and len(err.strip().splitlines()) == 1 and "run.json" in err, err
        assert (run / "run.json" / "keep.txt").read_text() == "mine"
    else:  # a garbled record is just replaced by the new run's
        assert code == 0, err
        assert json.loads((run / "run.json").read_text())["status"] == "completed"
        (run / "run.json").write_text("{not json")
    from edgeslim.errors import InputError
    from edgeslim.runrecord import read_record

    with pytest.raises(InputError, match="run.json"):
        read_record(run)


@pytest.mark.slow
def test_two_concurrent_runs_second_refuses_first_completes(write_recipe, tmp_path, python):
    stages = [{"stage": "finetune", "train": {"epochs": 3, "batch_size": 16, "tensorboard": False}},
              {"stage": "export"}]
    recipe = write_recipe(stages, name="c")
    run = tmp_path / "runs" / "c"
    first = subprocess.Popen([python, "-m", "edgeslim", "run", str(recipe), "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: list(run.glob(".00-finetune.tmp-*")), "the first run's stage folder")
        first.send_signal(signal.SIGSTOP)  # hold it mid-stage, whatever this machine's speed
        second = subprocess.run([python, "-m", "edgeslim", "run", str(recipe), "-q"],
                                capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr
        assert f"pid {first.pid}" in second.stderr and "Traceback" not in second.stderr
        assert list(run.glob(".00-finetune.tmp-*")), "the second run deleted the first's stage"
    finally:
        first.send_signal(signal.SIGCONT)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    rec = json.loads((run / "run.json").read_text())
    assert rec["status"] == "completed" and [s["status"] for s in rec["stages"]] == ["completed"] * 2
