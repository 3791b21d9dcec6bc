"""Progress where no terminal is: one plain line per stage and per epoch (``edgeslim run R > log``),
a line when bench finishes (check leads with its verdict), nothing but the result with ``-q``."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from edgeslim.progress import COUNT_RE, LINE_RE, Reporter

sys.path.insert(0, str(Path(__file__).parent))
from report_helpers import FINETUNE_EPOCHS, run_cli, tiny_recipe  # noqa: E402

STAGES = ("00-finetune", "01-quantize", "02-export")
WAIT_CAP_S = float(os.environ.get("EDGESLIM_TEST_WAIT_CAP_S", "600"))  # the suite's cap (tests/conftest.py)


def _events(stdout: str) -> list[tuple[str | None, str]]:
    out = []
    for line in stdout.splitlines():
        m = LINE_RE.match(line)
        if m:
            out.append((m["scope"], m["event"]))
    return out


def test_a_run_into_a_file_prints_a_line_per_stage_and_per_epoch(tiny_run):
    events = _events(tiny_run["stdout"])
    for st in STAGES:
        assert sum(1 for s, e in events if s == st and e.startswith("start: ")) == 1, st
        done = [e for s, e in events if s == st and e.startswith("done in ")]
        assert len(done) == 1 and "test_acc " in done[0] and "latency_ms " in done[0], (st, done)
    epochs = [(s, COUNT_RE.match(e)) for s, e in events if e.startswith("epoch ")]
    # the recipe trains only in its fine-tune stage, for FINETUNE_EPOCHS epochs
    assert [(s, int(m["i"]), int(m["n"])) for s, m in epochs] == [
        ("00-finetune", i, FINETUNE_EPOCHS) for i in range(1, FINETUNE_EPOCHS + 1)]
    for _, m in epochs:
        assert {"loss", "val_loss", "val_acc", "time"} <= set(m["info"].split()[::2]), m["info"]
    # elapsed seconds never go back
    elapsed = [float(LINE_RE.match(ln)["elapsed"]) for ln in tiny_run["stdout"].splitlines() if LINE_RE.match(ln)]
    assert elapsed == sorted(elapsed) and len(elapsed) >= 2 * len(STAGES) + FINETUNE_EPOCHS
    # latency says which runtime measured it, eager and deployed alike
    assert "(torch eager)" in tiny_run["stdout"] and "(onnxruntime)" in tiny_run["stdout"]
    assert "run record:" in tiny_run["stdout"] and "report:" in tiny_run["stdout"]


def test_quiet_prints_only_the_result(tiny_run, tmp_path):
    recipe = tiny_recipe(tmp_path, "q", [{"stage": "finetune", "train": {"epochs": 1, "batch_size": 32}},
                                         {"stage": "export"}])
    p = run_cli(["run", str(recipe), "-q"], tmp_path, WAIT_CAP_S)
    assert p.returncode == 0, p.stderr[-2000:]
    assert not _events(p.stdout), p.stdout
    assert "run record:" in p.stdout and "00-finetune" in p.stdout  # the final table and paths
    # stderr: nothing, or warnings the user must see (e.g. a model at chance level)
    assert all(ln.startswith("warning:") for ln in p.stderr.splitlines() if ln.strip()), p.stderr


def test_bench_says_when_it_finishes_and_check_leads_with_its_verdict(tiny_run, cli):
    onnx = tiny_run["run_dir"] / "02-export" / "model.onnx"
    quick = ["--min-time", "0.1", "--warmup", "1", "--min-iters", "5", "--threads", "1"]
    code, out, err = cli("bench", onnx, *quick)
    assert code == 0, err
    ev = _events(out)
    assert any(s is None and e.startswith("bench 1/1: batch 1: ") for s, e in ev), out
    assert any(s == "bench" and e.startswith("done in ") and "median" in e for s, e in ev), out
    code, out, err = cli("bench", onnx, *quick, "-q")
    assert code == 0 and float(out.strip()) > 0, out  # -q: the median alone
    code, out, err = cli("check", onnx, onnx, "--min-time", "0.1", "--max-time", "0.3", "--min-rounds", "2",
                         "--threads", "1", "--warmup", "1")
    assert code in (0, 1, 4), err  # any verdict: this is about the line, not the gate
    # check's verdict is its finish line and comes first (CI scripts read it); it says the time
    assert not _events(out) and out.startswith(("PASS", "REGRESSION", "INCONCLUSIVE")), out
    assert re.search(r" in \d+\.\d s, ", out), out  # the time it took is in the report


def test_plain_lines_and_quiet_reporter(capsys, monkeypatch):
    monkeypatch.delenv("EDGESLIM_PROGRESS", raising=False)  # captured stdout is no terminal: plain
    r = Reporter()
    r.stage_start("03-prune", "prune")
    with r.task("epoch", 3) as adv:
        adv(0)  # a resumed fit's catch-up of zero epochs prints nothing
        adv(1, info="loss 0.5000 val_acc 0.9000")
    r.log("[bold]markup[/bold] is dropped")
    r.stage_end("03-prune", "test_acc 0.9")
    r.warn("look here")
    out, err = capsys.readouterr()
    events = _events(out)
    assert events[:3] == [("03-prune", "start: prune"), ("03-prune", "epoch 1/3: loss 0.5000 val_acc 0.9000"),
                          ("03-prune", "markup is dropped")]
    assert len(events) == 4 and events[3][0] == "03-prune" and events[3][1].startswith("done in ")
    assert events[3][1].endswith("s: test_acc 0.9") and err == "warning: look here\n"
    q = Reporter(quiet=True)
    q.stage_start("x", "y")
    with q.task("epoch", 2) as adv:
        adv(1, info="z")
    q.log("hidden")
    q.warn("still shown")
    out, err = capsys.readouterr()
    assert out == "" and err == "warning: still shown\n"


@pytest.mark.parametrize("mode, plain", [("plain", True), ("rich", False)])
def test_progress_mode_can_be_forced(monkeypatch, mode, plain):
    from edgeslim.progress import plain_mode

    monkeypatch.setenv("EDGESLIM_PROGRESS", mode)
    assert plain_mode() is plain
