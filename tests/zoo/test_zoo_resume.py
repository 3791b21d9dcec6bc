"""Resume: kill -9 in the middle, rerun, and no finished model is computed again; a torn last
line of the results file is skipped; --retry-failed and --redo do what they say."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from zoo_helpers import by_model, rows, run_zoo, write_nets, write_zoo, zoo_cmd  # noqa: E402


def _workers_of(out: Path) -> list[int]:
    """pids of live zoo workers whose task lies under ``out`` (read from /proc, no process names)."""
    pids = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().split(b"\0")
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if b"edgeslim.zoo.worker" in cmd and any(str(out).encode() in c for c in cmd) and ") Z " not in stat:
                pids.append(int(d.name))
    return pids


@pytest.mark.slow
def test_kill9_mid_sweep_then_rerun_recomputes_nothing_finished(tmp_path, wait_for):
    write_nets(tmp_path)
    models = [{"source": "tinycnn"}, {"source": "nets.py:Small"}, {"source": "nets.py:Gated"},
              {"source": "tinyresnet"}]
    zoo = write_zoo(tmp_path / "zoo.yaml", models, precisions=["fp32"])
    out = tmp_path / "out"
    proc = subprocess.Popen(zoo_cmd(zoo, "--out", out, "-q"), cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # the moment: two rows recorded and the third model (it waits for `release`) in flight
        wait_for(lambda: len(rows(out)) == 2 and _workers_of(out), "two finished rows and a model in flight", proc)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    before = rows(out)
    assert len(before) == 2 and {r["model"] for r in before} == {"tinycnn", "nets.py:Small"}
    # the worker in flight dies with its parent (PR_SET_PDEATHSIG): no orphan computing a lost row
    wait_for(lambda: not _workers_of(out), "the orphaned worker to die")
    prefix = (out / "results.jsonl").read_bytes()
    (tmp_path / "release").touch()
    r = run_zoo(zoo, "--out", out, cwd=tmp_path, timeout=wait_for.cap_s)
    assert r.returncode == 0, r.stderr[-2000:]
    assert f"{len(before)} already in" in r.stderr
    after = (out / "results.jsonl").read_bytes()
    assert after.startswith(prefix), "finished rows must never be rewritten"
    final = rows(out)
    assert len(final) == 4 and len({x["key"] for x in final}) == 4, "a model was computed twice"
    done = {x["model"]: x["finished_at"] for x in before}
    assert all(by_model(out)[m]["finished_at"] == t for m, t in done.items())
    assert all(x["status"] == "ok" for x in final)


def test_torn_last_line_is_skipped_and_the_next_row_starts_fresh(tmp_path):
    from edgeslim.zoo.results import append_row, read_rows

    path = tmp_path / "results.jsonl"
    append_row(path, {"key": "a", "model": "m1", "status": "ok"})
    with open(path, "ab") as fh:  # what a kill -9 in the middle of a write would leave
        fh.write(b'{"key": "b", "model": "m2", "sta')
    assert [r["key"] for r in read_rows(path)] == ["a"]
    append_row(path, {"key": "c", "model": "m3", "status": "failed"})
    assert [r["key"] for r in read_rows(path)] == ["a", "c"]
    assert path.read_bytes().endswith(b'"failed"}\n')


@pytest.mark.slow
def test_retry_failed_and_redo(tmp_path, wait_for):
    write_nets(tmp_path)
    zoo = write_zoo(tmp_path / "zoo.yaml", [{"source": "nets.py:Raise"}, {"source": "tinycnn"}],
                    precisions=["fp32"])
    first = run_zoo(zoo, "--out", "out", "--workers", "2", cwd=tmp_path, timeout=wait_for.cap_s)
    assert first.returncode == 0 and "1 ok, 0 gate failed, 1 failed" in first.stdout
    again = run_zoo(zoo, "--out", "out", "--strict", cwd=tmp_path, timeout=wait_for.cap_s)
    assert again.returncode == 1 and "0 computed, 2 reused" in again.stdout  # --strict: not all ok
    retry = run_zoo(zoo, "--out", "out", "--retry-failed", cwd=tmp_path, timeout=wait_for.cap_s)
    assert "1 computed, 1 reused" in retry.stdout
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert [json.loads(x)["model"] for x in lines].count("nets.py:Raise") == 2
    redo = run_zoo(zoo, "--out", "out", "--redo", "--only", "tinycnn", cwd=tmp_path, timeout=wait_for.cap_s)
    # the matrix still lists the whole zoo after a partial (--only) rerun
    assert "1 computed, 0 reused" in redo.stdout and "2 models: 1 ok, 0 gate failed, 1 failed" in redo.stdout
