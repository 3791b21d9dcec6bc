"""Reliability campaign: kill -9 resumes, bad inputs, concurrent runs of one recipe -> JSON.

Three parts, each driving the real `edgeslim` command in subprocesses:

(a) kill -9 at random moments of a small recipe run, then `--resume`; every resumed run must end
    with the params, MACs, size_bytes and test_accuracy of one uninterrupted reference run, per
    stage, with no temp folders left behind.
(b) bad inputs from the data-driven catalog in reliability_catalog.py (recipes with typos, wrong
    types, alias bombs, huge files, bad run names, image folders with FIFOs/corrupt/oversized
    images, bad checkpoints, garbage ONNX, `deploy --out` onto precious folders, tampered bundles,
    bad check baselines, ...): each must exit 2 (3 for a tampered bundle) with a single `error:`
    line on stderr, no traceback, and lose nothing (every file in the case folder before the
    command is still there, unchanged; no runs/<name> for a bad recipe).
(c) two concurrent runs of one recipe: the second is refused (exit 2, the lock message), the
    first completes with the reference metrics.

    python benchmarks/reliability_campaign.py                      # everything (~15-20 min on 2 cores)
    python benchmarks/reliability_campaign.py --kills 3 --only recipe,deploy   # a quick subset
    python benchmarks/reliability_campaign.py --list               # print the bad-input catalog

Writes benchmarks/results/reliability_campaign.json (counts, and every case with its outcome).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import hashlib
import json
import os
import platform
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the catalog modules beside this file

from reliability_campaign_parts import (  # noqa: E402
    KILL_RECIPE,
    STABLE,
    concurrent_trial,
    kill_trial,
    killed_in_training,
    run_edgeslim,
    stage_metrics,
)
from reliability_cases import Case, Env  # noqa: E402
from reliability_catalog import catalog  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TRACEBACK = "Traceback (most recent call last)"


# ----------------------------------------------------------------------------- (b) bad inputs

def snapshot(root: Path) -> dict[str, str]:
    """relative path -> content digest (or 'fifo', 'dir', 'link:<target>') of everything under root."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            try:
                st = p.lstat()
            except OSError:
                continue
            if stat.S_ISLNK(st.st_mode):
                out[rel] = "link:" + os.readlink(p)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = "dir"
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.sha256()
                with open(p, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        h.update(block)
                out[rel] = h.hexdigest()
            else:
                out[rel] = "special"
    return out


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-")[:60]


def _fill(arg: str, case_dir: Path) -> str:
    return arg.replace("{case}", str(case_dir))


def _execute(case: Case, d: Path, python: str) -> tuple[int | None, str, float]:
    """Run the case's command; (exit code or None on a hang, stderr, seconds)."""
    argv = [_fill(a, d) for a in case.argv]
    cmd = [python, "runner.py", *argv] if case.runner else [python, "-m", "edgeslim", *argv]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TORCH_HOME": str(d / ".torch-home"), **case.env}
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=d / case.cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        if case.pipe_head:  # like `| head -1`: read one line, then close our end of the pipe
            proc.stdout.readline()
            proc.stdout.close()
        _, err = proc.communicate(timeout=case.timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, err = proc.communicate()
        code = None
    return code, err.decode(errors="replace"), time.monotonic() - t0


def judge(case: Case, code: int | None, err: str, lost: list[str], forbidden: list[str]) -> dict[str, Any]:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    error_lines = [ln for ln in lines if ln.startswith("error:")]
    if code == 0 and 0 in case.expect:  # a run that recovers may log; it must not crash
        one_line = TRACEBACK not in err
    elif case.pipe_head or code == 0:  # nothing to report: at most one line, and never a traceback
        one_line = len(lines) <= 1 and TRACEBACK not in err
    else:
        one_line = len(lines) == 1 and lines[0].startswith("error:")
    missing = [m for m in case.mention if not any(m.lower() in ln.lower() for ln in error_lines)]
    r = {
        "exit_code": code, "expected": list(case.expect), "hang": code is None,
        "exit_ok": code in case.expect, "one_line": one_line, "traceback": TRACEBACK in err,
        "error_lines": len(error_lines), "missing_mentions": missing, "lost": lost, "forbidden_created": forbidden,
    }
    r["clear_error"] = bool(r["exit_ok"] and one_line and not r["traceback"])
    reasons = []
    if r["hang"]:
        reasons.append(f"no exit within {case.timeout:.0f} s")
    elif not r["exit_ok"]:
        reasons.append(f"exit {code}, expected {'/'.join(map(str, case.expect))}")
    if not one_line:
        reasons.append(f"stderr has {len(lines)} lines" + (" (traceback)" if r["traceback"] else ""))
    if missing:
        reasons.append(f"error does not name {missing}")
    if lost:
        reasons.append(f"lost {lost[:5]}")
    if forbidden:
        reasons.append(f"created {forbidden}")
    r["passed"] = not reasons
    r["why"] = "; ".join(reasons)
    return r


def run_case(idx: int, case: Case, env: Env, work: Path, python: str, keep: bool) -> dict[str, Any]:
    d = work / "cases" / f"{idx:03d}-{_slug(case.name)}"
    d.mkdir(parents=True)
    (d / "precious.txt").write_text("a file the user cares about\n")
    rec: dict[str, Any] = {"name": case.name, "group": case.group, "argv": case.argv}
    missing = [n for n in case.needs if getattr(env, n) is None]
    if missing:
        shutil.rmtree(d, ignore_errors=True)
        return {**rec, "status": "skipped", "why": f"no {', '.join(missing)} (an earlier part failed)"}
    try:
        if case.setup is not None:
            case.setup(d, env)
    except Exception as e:  # a broken setup is the campaign's bug, reported as such
        return {**rec, "status": "setup_error", "why": f"{type(e).__name__}: {e}"}
    before = snapshot(d)
    code, err, secs = _execute(case, d, python)
    after = snapshot(d)
    mutable = tuple(case.mutable)
    lost = sorted(p for p, h in before.items()
                  if not p.startswith(mutable or ("\0",)) and after.get(p) != h)
    forbidden = [f for f in case.forbid if os.path.lexists(d / f)]
    rec.update(judge(case, code, err, lost, forbidden), seconds=round(secs, 2), stderr=err.strip()[-600:])
    rec["status"] = "passed" if rec["passed"] else "failed"
    if not keep:
        shutil.rmtree(d, ignore_errors=True)
    return rec


def bad_inputs(cases: list[Case], env: Env, work: Path, jobs: int, keep: bool) -> dict[str, Any]:
    results: list[dict[str, Any] | None] = [None] * len(cases)
    with cf.ThreadPoolExecutor(max_workers=jobs) as pool:
        futs = {pool.submit(run_case, i, c, env, work, sys.executable, keep): i for i, c in enumerate(cases)}
        for n, fut in enumerate(cf.as_completed(futs), 1):
            i = futs[fut]
            results[i] = r = fut.result()
            mark = {"passed": "ok  ", "failed": "FAIL", "skipped": "skip"}.get(r["status"], "ERR ")
            print(f"  [{n:3d}/{len(cases)}] {mark} {r['name']}" + (f"  -- {r['why']}" if r.get("why") else ""),
                  flush=True)
    return summarize([r for r in results if r is not None])


def summarize(done: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts over the case records (also usable on a stored result's ``cases``)."""
    tried = [r for r in done if r["status"] in ("passed", "failed")]
    by_group: dict[str, dict[str, int]] = {}
    for r in tried:
        g = by_group.setdefault(r["group"], {"tried": 0, "passed": 0})
        g["tried"] += 1
        g["passed"] += r["status"] == "passed"
    return {
        "summary": {
            "cases": len(done), "tried": len(tried), "passed": sum(r["status"] == "passed" for r in tried),
            "clear_errors": sum(r["clear_error"] for r in tried), "tracebacks": sum(r["traceback"] for r in tried),
            "wrong_exit_code": sum(not r["exit_ok"] and not r["hang"] for r in tried),
            "multi_line_stderr": sum(not r["one_line"] for r in tried), "hangs": sum(r["hang"] for r in tried),
            "lost_files": sum(bool(r["lost"]) for r in tried),
            "created_forbidden": sum(bool(r["forbidden_created"]) for r in tried),
            "skipped": sum(r["status"] == "skipped" for r in done),
            "setup_errors": sum(r["status"] == "setup_error" for r in done),
        },
        "by_group": by_group,
        "failures": [{k: r.get(k) for k in ("name", "why", "stderr")} for r in done if r["status"] != "passed"
                     and r["status"] != "skipped"],
        "cases": done,
    }


# ----------------------------------------------------------------------------- (a) and (c)

def reference(work: Path) -> tuple[Path, dict[str, Any], float]:
    """The uninterrupted run every killed/concurrent run is compared with."""
    recipe = work / "kill-recipe.json"  # JSON is YAML: edgeslim reads it as a recipe
    recipe.write_text(json.dumps({**KILL_RECIPE, "run": {**KILL_RECIPE["run"], "output_dir": str(work / "ref")}}))
    t0 = time.monotonic()
    code, err = run_edgeslim(["run", str(recipe), "-q", "--output-dir", str(work / "ref")], timeout=1200)
    wall = time.monotonic() - t0
    if code != 0:
        raise SystemExit(f"the reference run failed (exit {code}): {err.strip()[-800:]}")
    run_dir = work / "ref" / KILL_RECIPE["run"]["name"]
    return recipe, stage_metrics(run_dir / "run.json"), wall


def kills(n: int, recipe: Path, ref: dict[str, Any], t_ref: float, work: Path, env: Env,
          rng: random.Random) -> dict[str, Any]:
    trials = []
    attempts = 0
    while sum(t["killed"] for t in trials) < n and attempts < 3 * n:
        attempts += 1
        t = kill_trial(attempts, recipe, ref, t_ref, work, rng)
        if env.killed_run is None and t.get("snapshot"):
            env.killed_run = Path(t["snapshot"])
        trials.append(t)
        print(f"  kill {attempts:2d}: {'killed' if t['killed'] else 'finished first'} at {t['delay_s']:.1f} s "
              f"({t.get('killed_during') or '-'}) -> resume exit {t['resume_exit']}, "
              f"{'identical' if t['identical'] else 'DIFFERENT: ' + str(t['differences'])[:200]}", flush=True)
    if env.killed_run is None:
        env.killed_run = killed_in_training(recipe, work)
    killed = [t for t in trials if t["killed"]]
    return {
        "summary": {"attempts": len(trials), "killed": len(killed),
                    "resumed_ok": sum(t["resume_exit"] == 0 for t in killed),
                    "identical": sum(t["identical"] for t in killed),
                    "leftover_temp": sum(bool(t["leftover"]) for t in killed)},
        "trials": trials,
    }


def concurrency(recipe: Path, ref: dict[str, Any], work: Path) -> dict[str, Any]:
    trials = [concurrent_trial(i, extra, recipe, ref, work) for i, extra in enumerate(([], ["--fresh"], ["--resume"]))]
    for t in trials:
        print(f"  concurrent {t['second_argv']}: second exit {t['second_exit']} ({t['second_stderr'][:100]!r}); "
              f"first exit {t['first_exit']}, {'identical' if t['first_identical'] else 'DIFFERENT'}", flush=True)
    ok = [t for t in trials if t["passed"]]
    return {"summary": {"trials": len(trials), "passed": len(ok)}, "trials": trials}


# ----------------------------------------------------------------------------- main

def _host() -> dict[str, Any]:
    cpu = platform.processor()
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    vers = {}
    for pkg in ("edgeslim", "torch", "onnxruntime", "onnx", "numpy"):
        try:
            vers[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            vers[pkg] = None
    git = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "versions": vers,
            "commit": git.stdout.strip() or None, "dirty_tree": bool(dirty.stdout.strip())}


def build_shared(env: Env, work: Path, ref_dir: Path) -> None:
    """The finished run, its ONNX and a bundle the bad-input cases copy."""
    env.ref_run = ref_dir
    onnx = sorted(ref_dir.glob("*-export/model.onnx"))
    env.onnx = onnx[-1] if onnx else None
    code, err = run_edgeslim(["deploy", str(ref_dir), "--target", "x86-cpu", "--out", str(work / "bundle"),
                              "--no-tar"], timeout=600)
    env.bundle = work / "bundle" if code == 0 else None
    if code != 0:
        print(f"  (no bundle: deploy exited {code}: {err.strip()[-300:]})", flush=True)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, default=str)
        fh.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kills", type=int, default=20, help="kill -9 + resume trials that really killed (default 20)")
    ap.add_argument("--jobs", type=int, default=2, help="bad-input cases run at once (default 2)")
    ap.add_argument("--only", default="", help="comma-separated bad-input groups (default: all)")
    ap.add_argument("--skip-concurrent", action="store_true")
    ap.add_argument("--seed", type=int, default=0, help="seeds the kill moments")
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a new temp folder, removed after)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder and every case folder")
    ap.add_argument("--list", action="store_true", help="print the bad-input catalog and exit")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "reliability_campaign.json"))
    a = ap.parse_args(argv)
    cases = catalog()
    if a.only:
        groups = set(a.only.split(","))
        cases = [c for c in cases if c.group in groups]
    if a.list:
        for c in cases:
            print(f"{c.group:10s} {c.name}")
        print(f"{len(cases)} cases")
        return 0
    work = Path(a.workdir or tempfile.mkdtemp(prefix="edgeslim-campaign-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    env = Env(kill_recipe=KILL_RECIPE)
    print(f"reference run in {work} ...", flush=True)
    recipe, ref, t_ref = reference(work)
    print(f"  {t_ref:.1f} s; stages {[s['dir'] for s in ref['stages']]}", flush=True)
    res: dict[str, Any] = {"schema": "edgeslim.reliability/1", "host": _host(), "recipe": KILL_RECIPE,
                           "stable_metrics": list(STABLE), "reference": {"wall_s": round(t_ref, 2), **ref}}
    print(f"(a) kill -9 + --resume, {a.kills} kills ...", flush=True)
    res["kill_resume"] = kills(a.kills, recipe, ref, t_ref, work, env, random.Random(a.seed))
    if not a.skip_concurrent:
        print("(c) two concurrent runs of one recipe ...", flush=True)
        res["concurrent"] = concurrency(recipe, ref, work)
    print("shared artifacts (bundle) ...", flush=True)
    build_shared(env, work, work / "ref" / KILL_RECIPE["run"]["name"])
    print(f"(b) {len(cases)} bad inputs, {a.jobs} at a time ...", flush=True)
    res["bad_inputs"] = bad_inputs(cases, env, work, a.jobs, a.keep)
    res["wall_s"] = round(time.monotonic() - t0, 1)
    res["summary"] = {"kill_resume": res["kill_resume"]["summary"], "bad_inputs": res["bad_inputs"]["summary"],
                      "concurrent": res.get("concurrent", {}).get("summary")}
    write_json(Path(a.out), res)
    print(json.dumps(res["summary"], indent=1))
    print(f"wrote {a.out} ({res['wall_s']:.0f} s)")
    if not a.keep and a.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
