"""The CI flow of docs/github-actions-example.yml, played step by step without `act` or a network.

It creates a toy model repository in a temp folder (git init; commit 1 on main: a small conv
net `net.py`, its recipe and a latency budget; a branch with commit 2: two more conv layers,
about twice the work; commit 3: the fix, back to the original net) and replays the workflow's
jobs in order, reading the steps from the YAML itself: every `run:` script runs as written
(bash -eo pipefail, the workflow's env, $GITHUB_OUTPUT, $GITHUB_STEP_SUMMARY), and each `uses:`
action is played by a local stand-in (checkout: a fresh clone at the commit; upload/download
artifact: a folder per artifact name; sticky PR comment: a file; JUnit publisher: parse the
XML). The install step is skipped (no network: this environment's edgeslim runs).

  1. push to main (commit 1)          baseline job: build, bench --save-baseline, upload
  2. pull request (commit 2, slower)  gate job: fetch baseline, check --baseline-json -> exit 1
  3. pull request (commit 3, fixed)   gate job -> exit 0, PR comment says pass
  4. commit 2 again on a runner with another CPU (the stored host key renamed): the gate falls
     back to main's model side by side -> exit 1

    .venv/bin/python benchmarks/ci_flow.py [--max-slowdown 5] [--keep]
Writes benchmarks/results/ci_flow.json; exits 1 when a job's outcome is not the expected one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / "docs" / "github-actions-example.yml"
RESULTS = ROOT / "benchmarks" / "results"

NET = '''"""A toy classifier: a conv stem, BODY 3x3 convs of 32 channels, a linear head."""
import torch
from torch import nn

BODY = {body}


class Net(nn.Module):
    def __init__(self, num_classes: int = 5, in_chans: int = 3):
        super().__init__()
        layers = [nn.Conv2d(in_chans, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()]
        for _ in range(BODY):
            layers += [nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()]
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
'''
RECIPE = """run: {name: model, output_dir: runs, seed: 0, threads: 2}
model: {source: net.py:Net}
data: {source: digits, image_size: 16, channels: 3, classes: ["0", "1", "2", "3", "4"]}
stages:
  - stage: pretrain
    train: {epochs: 5, batch_size: 32, optimizer: {name: adamw, lr: 0.005}}
  - stage: export
"""
# The floor is far from both sides: this net reaches ~0.95 test accuracy on digits 0-4 after
# these 5 epochs (chance: 0.20), so only a broken model falls below 0.60. The ceiling for this
# runner (50 ms) is ~100x the net's latency; the Raspberry Pi one applies with --remote.
BUDGET = """profile: ci-runner
latency_ms: {ci-runner: 50, raspberry-pi-5: 5}
max_size_mb: 1
min_accuracy: 0.60
"""


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "ci", "GIT_AUTHOR_EMAIL": "ci@example.com",
           "GIT_COMMITTER_NAME": "ci", "GIT_COMMITTER_EMAIL": "ci@example.com"}
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True,
                          text=True).stdout.strip()


def toy_repo(root: Path) -> dict[str, str]:
    """The repository and its three commits: {name: sha}."""
    repo = root / "origin"
    (repo / "recipes").mkdir(parents=True)
    (repo / "ci").mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "recipes" / "model.yaml").write_text(RECIPE)
    (repo / "ci" / "latency-budget.yaml").write_text(BUDGET)
    (repo / ".gitignore").write_text("runs/\n.edgeslim/\nlatency.*\n")
    shas = {}
    for name, body, branch in (("main", 2, None), ("slower", 4, "wider-features"), ("fixed", 2, None)):
        if branch:
            git(repo, "checkout", "-q", "-b", branch)
        (repo / "net.py").write_text(NET.format(body=body))
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", f"{name}: BODY={body}")
        shas[name] = git(repo, "rev-parse", "HEAD")
    return shas


def _expr(text: str, outputs: dict[str, dict[str, str]]) -> str:
    """``${{ steps.ID.outputs.NAME }}`` (the only expression the example's step env uses)."""
    return re.sub(r"\$\{\{\s*steps\.(\w+)\.outputs\.(\w+)\s*\}\}",
                  lambda m: outputs.get(m.group(1), {}).get(m.group(2), ""), str(text))


class Runner:
    """One job on a fresh checkout: runs the workflow's steps with GitHub's semantics for
    failures (later steps are skipped unless ``if: always()``)."""

    def __init__(self, workflow: dict[str, Any], origin: Path, store: Path, env: dict[str, str],
                 overrides: dict[str, str]):
        self.wf, self.origin, self.store, self.env = workflow, origin, store, env
        self.overrides = overrides  # workflow env values replaced for this replay

    def job(self, name: str, event: str, sha: str, ws: Path) -> dict[str, Any]:
        job = self.wf["jobs"][name]
        want = re.fullmatch(r"github\.event_name == '(\w+)'", job.get("if", ""))
        assert want and want.group(1) == event, f"job {name} does not run on {event}"
        if not ws.exists():
            git(ws.parent, "clone", "-q", str(self.origin), ws.name)
        git(ws, "checkout", "-q", sha)
        out_file, summary = ws / ".github-output", ws / ".github-step-summary"
        env = {**self.env, "GITHUB_EVENT_NAME": event, "GITHUB_SHA": sha, "GITHUB_OUTPUT": str(out_file),
               "GITHUB_STEP_SUMMARY": str(summary), **{k: str(v) for k, v in self.wf.get("env", {}).items()}}
        env.update(self.overrides)
        outputs: dict[str, dict[str, str]] = {}
        log, failed = [], False
        for step in job["steps"]:
            title = step.get("name") or step.get("uses") or step.get("run", "").splitlines()[0]
            if failed and step.get("if") != "always()":
                log.append({"step": title, "result": "skipped (an earlier step failed)"})
                continue
            out_file.write_text("")
            t0 = time.perf_counter()
            step_env = {k: _expr(v, outputs) for k, v in step.get("env", {}).items()}
            code, note = self.step(step, ws, {**env, **step_env})
            lines = out_file.read_text().splitlines()
            outputs[step.get("id", "")] = dict(ln.split("=", 1) for ln in lines if "=" in ln)
            log.append({"step": title, "exit": code, "seconds": round(time.perf_counter() - t0, 1), "note": note})
            print(f"  [{name}] {title}: exit {code} {note}", flush=True)
            failed = failed or code != 0
        return {"job": name, "event": event, "sha": sha[:8], "success": not failed, "steps": log,
                "outputs": outputs, "summary": summary.read_text() if summary.is_file() else ""}

    def step(self, step: dict[str, Any], ws: Path, env: dict[str, str]) -> tuple[int, str]:
        if "uses" in step:
            return self.uses(step["uses"].split("@")[0], step.get("with", {}), ws)
        if step.get("id") == "install":
            return 0, "skipped: no network here; this environment's edgeslim is on PATH"
        p = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]], cwd=ws,
                           env=env, capture_output=True, text=True)
        tail = (p.stdout + p.stderr).strip().splitlines()[-3:]
        return p.returncode, " | ".join(tail)[:400]

    def uses(self, action: str, args: dict[str, Any], ws: Path) -> tuple[int, str]:
        if action in ("actions/checkout", "actions/setup-python"):
            return 0, "local stand-in: fresh clone / this Python"
        if action == "actions/upload-artifact":
            dest = self.store / args["name"]
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(ws / args["path"], dest)
            return 0, f"artifact {args['name']}: {sorted(str(p.relative_to(dest)) for p in dest.rglob('*.*'))}"
        if action == "dawidd6/action-download-artifact":
            src = self.store / args["name"]
            if not src.is_dir():
                return 0, f"no artifact {args['name']} ({args.get('if_no_artifact_found')})"
            shutil.copytree(src, ws / args["path"], dirs_exist_ok=True)
            return 0, f"artifact {args['name']} fetched"
        if action == "marocchino/sticky-pull-request-comment":
            comment = self.store.parent / "pr-comments" / f"{args['header']}.md"
            comment.parent.mkdir(exist_ok=True)
            shutil.copyfile(ws / args["path"], comment)  # sticky: the same comment, replaced
            return 0, f"PR comment {comment.name} updated"
        if action == "mikepenz/action-junit-report":
            suite = ET.parse(ws / args["report_paths"]).getroot().find("testsuite")
            counts = {k: suite.get(k) for k in ("tests", "failures", "errors")}
            return 0, f"JUnit: {counts}"
        raise SystemExit(f"the replay has no stand-in for action {action}; add one to benchmarks/ci_flow.py")


def scenario(r: Runner, label: str, expect_code: str, **kw: Any) -> dict[str, Any]:
    print(f"{label}:", flush=True)
    res = r.job(**kw)
    res["label"] = label
    res["gate_code"] = res["outputs"].get("gate", {}).get("code")
    res["expected_gate_code"] = expect_code
    comment = r.store.parent / "pr-comments" / "edgeslim-latency.md"
    res["pr_comment_head"] = comment.read_text().splitlines()[0] if kw["name"] == "gate" else None
    report = kw["ws"] / "latency.json"
    res["check"] = ({k: v for k, v in json.loads(report.read_text()).items() if k in ("verdict", "mode", "summary")}
                    if kw["name"] == "gate" and report.is_file() else None)
    res["ok"] = res["success"] == (expect_code == "0") and (kw["name"] == "baseline" or res["gate_code"] == expect_code)
    return res


def play(work: Path, overrides: dict[str, str]) -> list[dict[str, Any]]:
    from edgeslim.safe_yaml import load_yaml_file

    wf = load_yaml_file(WORKFLOW, "workflow")
    shas = toy_repo(work)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    r = Runner(wf, work / "origin", work / "artifacts", env, overrides)
    # every job starts from a fresh clone, as on a hosted runner
    res = [scenario(r, "1. push to main: baseline", "0", name="baseline", event="push", sha=shas["main"],
                    ws=work / "ws-main")]
    res.append(scenario(r, "2. pull request, slower commit", "1", name="gate", event="pull_request",
                        sha=shas["slower"], ws=work / "ws-pr-slower"))
    res.append(scenario(r, "3. pull request, fixed commit", "0", name="gate", event="pull_request",
                        sha=shas["fixed"], ws=work / "ws-pr-fixed"))
    for d in (work / "artifacts" / "latency-baseline-main").iterdir():  # a runner with another CPU
        if d.name != "models":
            d.rename(d.with_name("some-other-host-2c-00000000"))
    # a re-run of job 2's workspace (its runs/ folder plays the part of a CI cache: the stages
    # are reused), with the baseline fetched again
    rerun = work / "ws-pr-slower"
    shutil.rmtree(rerun / ".edgeslim", ignore_errors=True)
    res.append(scenario(r, "4. slower commit on another host: side by side with main's model", "1",
                        name="gate", event="pull_request", sha=shas["slower"], ws=rerun))
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-slowdown", default=None, help="override the workflow's MAX_SLOWDOWN (percent)")
    ap.add_argument("--keep", action="store_true", help="keep the temp repository and workspaces")
    ap.add_argument("--out", default=str(RESULTS / "ci_flow.json"), help="where to write the result")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="edgeslim-ci-flow-"))
    overrides = {"MAX_SLOWDOWN": str(args.max_slowdown)} if args.max_slowdown else {}
    t0 = time.perf_counter()
    try:
        res = play(work, overrides)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    from edgeslim.fsutil import atomic_write_json

    out = {"workflow": str(WORKFLOW.relative_to(ROOT)), "overrides": overrides,
           "work": str(work) if args.keep else None, "seconds": round(time.perf_counter() - t0, 1),
           "all_ok": all(x["ok"] for x in res), "scenarios": res}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, out)
    for x in res:
        print(f"{'ok  ' if x['ok'] else 'FAIL'} {x['label']}: job {'success' if x['success'] else 'failed'}, "
              f"gate exit {x['gate_code']} (expected {x['expected_gate_code']}); {x['pr_comment_head'] or ''}")
    return 0 if out["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
