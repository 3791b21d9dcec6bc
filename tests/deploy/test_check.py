"""edgeslim check: decision rule, interleaving, budgets, reports, stored baselines, bad input."""

from __future__ import annotations

import importlib.util
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bench_helpers import conv_net, export  # noqa: E402

pytestmark = pytest.mark.serial  # verdicts depend on measured latency: make test runs these alone

FAST = (
    "--min-time",
    "0.4",
    "--min-rounds",
    "8",
    "--round-ms",
    "5",
    "--threads",
    "1",
    "--warmup",
    "2",
)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("check")
    # 1 vs 10 body layers: the candidate does several times the work of the baseline
    return {
        "base": export(conv_net(1), d / "base.onnx"),
        "slow": export(conv_net(10), d / "slow.onnx"),
    }


def _rounds(rng, shift: float, n: int = 30, k: int = 8):
    drift = rng.uniform(1.0, 1.6, n)  # load that changes between rounds hits both sides alike
    a = [rng.lognormal(0, 0.05, k) * d for d in drift]
    b = [rng.lognormal(np.log(shift), 0.05, k) * d for d in drift]
    return a, b


def test_decision_rule_on_synthetic_rounds():
    from edgeslim.deploy.gate.stats import compare_rounds

    rng = np.random.default_rng(1)
    assert compare_rounds(*_rounds(rng, 1.15)).verdict == "regression"
    same = compare_rounds(*_rounds(rng, 1.0))
    assert same.verdict == "pass" and same.detail == "no significant change"
    small = compare_rounds(*_rounds(rng, 1.02, n=120))  # enough rounds to pin +2% down
    assert small.ci_low > 1.0 and small.verdict == "pass" and small.detail == "slower-within-tolerance"
    big = compare_rounds(*_rounds(rng, 1.15), max_slowdown=0.30)
    assert big.verdict == "pass" and big.ratio == pytest.approx(1.15, rel=0.03)
    fast = compare_rounds(*_rounds(rng, 0.8))
    assert fast.verdict == "pass" and fast.detail == "faster" and fast.ci_high < 1


def test_mann_whitney_matches_scipy():
    from scipy.stats import mannwhitneyu

    from edgeslim.deploy.gate.stats import mann_whitney_u

    rng = np.random.default_rng(0)
    a, b = rng.normal(1, 0.1, 60).round(2), rng.normal(1.05, 0.1, 50).round(2)  # with ties
    u, p = mann_whitney_u(a, b)
    ref = mannwhitneyu(b, a, alternative="two-sided", method="asymptotic")
    assert u == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue, rel=1e-6)


def test_self_check_passes_with_reports(cli, models, tmp_path):
    md, junit, js = tmp_path / "c.md", tmp_path / "c.xml", tmp_path / "c.json"
    # a generous tolerance: the gate's false-alarm rate is measured by benchmarks/latency_gate.py,
    # this test checks the pass path and the reports
    code, out, err = cli(
        "check",
        models["base"],
        models["base"],
        *FAST,
        "--markdown",
        md,
        "--junit",
        junit,
        "--json",
        js,
        "--max-slowdown",
        "25",
    )
    assert code == 0, out + err
    rep = json.loads(js.read_text())
    assert rep["passed"] and rep["comparison"]["rounds"] >= 8 and rep["calls_per_round"] >= 1
    assert rep["verdict"] == "pass" == rep["comparison"]["verdict"] and rep["exit_code"] == 0
    assert "| median (ms) |" in md.read_text() and "CI" in md.read_text()
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (
        suite.get("failures") == "0" and suite.find("testcase").get("name") == "latency regression"
    )


def test_slower_candidate_fails_and_tolerance_lets_it_pass(cli, models, tmp_path):
    junit = tmp_path / "c.xml"
    code, out, _ = cli("check", models["base"], models["slow"], *FAST, "--junit", junit)
    assert code == 1 and out.startswith("REGRESSION:") and "slower than the +5% tolerance" in out
    assert ET.parse(junit).getroot().find("testsuite").get("failures") == "1"
    code, out, _ = cli("check", models["base"], models["slow"], *FAST, "--max-slowdown", "5000")
    assert code == 0 and out.startswith("PASS") and "slower-within-tolerance" in out


def _budget(tmp_path, text: str) -> Path:
    p = tmp_path / "budget.yaml"
    p.write_text(text)
    return p


def test_budgets_latency_size_macs_accuracy(cli, models, tmp_path):
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"stages": [], "final": {"test_accuracy": 0.8}}))
    ok = _budget(
        tmp_path,
        "latency_ms: {default: 10000, rpi4: 0.000001}\nmax_size_mb: 10\n"
        "max_macs: 1000000000\nmin_accuracy: 0.75\naccuracy_from: run.json\n",
    )
    # self-comparisons here test budgets; the generous tolerance keeps load spikes out of it
    code, out, err = cli(
        "check", models["base"], models["base"], *FAST, "--budget", ok, "--max-slowdown", "25"
    )
    assert code == 0, out + err
    assert "latency_ms[default]" in out and "min_accuracy: 0.8" in out
    code, out, _ = cli(
        "check",
        models["base"],
        models["base"],
        *FAST,
        "--budget",
        ok,
        "--profile",
        "rpi4",
        "--max-slowdown",
        "25",
    )
    assert code == 1 and "budget exceeded: latency_ms[rpi4]" in out
    tight = _budget(tmp_path, "max_macs: 10\nmin_accuracy: 0.9\n")
    code, out, _ = cli(
        "check", models["base"], models["base"], *FAST, "--budget", tight, "--accuracy-from", run
    )
    assert code == 1 and "max_macs" in out and "min_accuracy" in out and "EXCEEDED" in out


@pytest.mark.parametrize(
    "budget, extra, needle",
    [
        ("max_sise_mb: 3\n", (), "did you mean 'max_size_mb'"),
        ("latency_ms: {default: 3}\n", ("--profile", "rpi5"), "unknown device profile 'rpi5'"),
        ("max_macs: 6e7\n", (), "must be a non-negative number"),
        ("min_accuracy: 90\n", (), "fraction in 0..1"),
        ("min_accuracy: 0.5\n", (), "no accuracy source"),
    ],
)
def test_bad_budget_exits_2(cli, models, tmp_path, budget, extra, needle):
    code, _, err = cli(
        "check",
        models["base"],
        models["base"],
        *FAST,
        "--budget",
        _budget(tmp_path, budget),
        *extra,
    )
    assert code == 2 and needle in err


def test_stored_baseline_detects_slowdown_and_refuses_other_hosts(cli, models, tmp_path):
    base = tmp_path / "base.json"
    code, _, err = cli(
        "bench", models["base"], "--json", base, "--threads", "1", "--min-time", "0.3"
    )
    assert code == 0, err
    code, out, _ = cli("check", models["slow"], "--baseline-json", base, "--min-time", "0.3")
    assert code == 1 and "stored vs" in out and out.startswith("REGRESSION")
    other = json.loads(base.read_text())
    other["host"]["cpu"] = "Some Other CPU"
    moved = tmp_path / "other.json"
    moved.write_text(json.dumps(other))
    code, _, err = cli("check", models["base"], "--baseline-json", moved)
    assert code == 2 and "refusing to compare" in err and "Some Other CPU" in err
    (tmp_path / "junk.json").write_text("{}")
    code, _, err = cli("check", models["base"], "--baseline-json", tmp_path / "junk.json")
    assert code == 2 and "not an edgeslim bench result" in err


@pytest.mark.parametrize(
    "args, needle",
    [
        (("@base",), "takes 2 artifact(s)"),
        (("@base", "@base", "--max-slowdown", "-3"), "out of range"),
        (("@base", "nope.onnx"), "does not exist"),
    ],
)
def test_check_bad_arguments_exit_2(cli, models, args, needle):
    args = [str(models[a[1:]]) if a.startswith("@") else a for a in args]
    code, _, err = cli("check", *args)
    assert code == 2 and needle in err


def test_check_runs_both_sides_in_the_chosen_backend(cli, models, tmp_path):
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed (pip install 'edgeslim[openvino]')")
    js = tmp_path / "ov.json"
    code, out, err = cli("check", models["base"], models["base"], "--backend", "openvino",
                         "--max-slowdown", "1000", "--json", js, *FAST)
    rep = json.loads(js.read_text())
    assert code == 0, out + err  # a self-compare with a 1000% tolerance cannot fail
    assert rep["baseline"]["runtime"]["name"] == rep["candidate"]["runtime"]["name"] == "openvino"
    code, _, err = cli("check", models["base"], models["base"], "--backend", "tensorrt", *FAST)
    assert code == 2 and "--backend tensorrt cannot run 'base.onnx'" in err
