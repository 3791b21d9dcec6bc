"""The gate's decision rule and its reports, on given numbers (no timing: nothing here depends
on this machine's speed)."""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from edgeslim.deploy.gate.stats import compare_rounds, compare_samples, verdict


@pytest.mark.parametrize(
    "ratio, lo, hi, slowdown, expected",
    [
        (1.16, 1.15, 1.17, 0.05, "regression"),  # whole CI (even doubled) above 1.05
        (1.00, 0.98, 1.02, 0.05, "pass"),  # whole CI (even doubled) at or below 1.05
        (0.75, 0.6, 0.9, 0.25, "pass"),  # doubled (log scale): [0.49, 1.10], below T = 1.25
        (0.75, 0.5, 1.0, 0.25, "inconclusive"),  # doubled: [0.35, 1.41]; a 2x-wide CI reaches past T
        (1.60, 1.3, 2.0, 0.25, "inconclusive"),  # doubled: [1.05, 2.48]; lower end not above T
        (1.75, 1.5, 2.0, 0.25, "regression"),  # doubled: [1.30, 2.31], above T
        (1.05, 1.03, 1.07, 0.05, "inconclusive"),  # straddles
        (1.06, 1.02, 1.10, 0.05, "inconclusive"),  # ratio above the threshold, CI not: no failure
        (0.83, 0.54, 1.01, 0.05, "inconclusive"),  # below, but so wide that doubled it reaches 1.38
        (1.10, 1.06, 1.14, 0.05, "inconclusive"),  # above, but doubled [1.02, 1.18] is not
        (4.95, 3.275, 7.454, 0.05, "regression"),  # wide, but far above: doubled still > 2.1
        (3.72, 3.04, 7.30, 0.05, "regression"),  # seen in CI: additive doubling made it [0.91, 9.43]
        (0.0, 0.0, 1.0, 0.05, "inconclusive"),  # a CI reaching 0 has no log scale: decides nothing
        (1.00, 0.0, math.inf, 0.05, "inconclusive"),  # no interval at all
        (1.00, float("nan"), 1.0, 0.05, "inconclusive"),
    ],
)
def test_verdict_is_where_the_doubled_ci_lies_against_the_threshold(ratio, lo, hi, slowdown, expected):
    assert verdict(ratio, lo, hi, slowdown) == expected


def test_a_ci_that_clears_the_threshold_only_at_face_value_decides_nothing():
    from edgeslim.deploy.gate.stats import describe

    assert verdict(1.10, 1.06, 1.14, 0.05) == "inconclusive"
    assert "too wide to be sure" in describe(1.10, 1.06, 1.14, 0.05)
    assert verdict(1.10, 1.06, 1.14, 0.01) == "regression"  # far enough from a 1% tolerance
    c = compare_samples([1.0] * 50, [2.0] * 50)  # no spread at all: a zero-width CI decides
    assert (c.ci_low, c.ci_high, c.verdict) == (2.0, 2.0, "regression")


def _rounds(seed: int, shift: float, n: int = 40, k: int = 8):
    rng = np.random.default_rng(seed)
    drift = rng.uniform(1.0, 1.6, n)  # load that changes between rounds hits both sides alike
    a = [rng.lognormal(0, 0.05, k) * d for d in drift]
    b = [rng.lognormal(np.log(shift), 0.05, k) * d for d in drift]
    return a, b


def test_candidate_exactly_at_the_threshold_is_inconclusive():
    # the true ratio is 1.05: a CI that covers the truth straddles the threshold
    for seed in range(5):
        c = compare_rounds(*_rounds(seed, 1.05), max_slowdown=0.05)
        assert c.ci_low <= 1.05 <= c.ci_high and c.verdict == "inconclusive", c
    assert compare_rounds(*_rounds(0, 1.20)).verdict == "regression"
    assert compare_rounds(*_rounds(0, 1.00)).verdict == "pass"


def test_too_few_rounds_or_samples_decide_nothing():
    a, b = _rounds(0, 1.5)
    one = compare_rounds(a[:1], b[:1])
    assert one.verdict == "inconclusive" and "only 1 round" in one.detail and one.ci_high == math.inf
    assert json.dumps(one.to_json())  # JSON has no inf: the open end is null
    assert one.to_json()["ci_high"] is None
    few = compare_rounds(a[:10], b[:10], min_rounds=20)
    assert few.verdict == "inconclusive" and "20 are needed" in few.detail
    assert compare_rounds(a[:20], b[:20], min_rounds=20).verdict == "regression"
    small = compare_samples([1.0] * 5, [2.0] * 50)
    assert small.verdict == "inconclusive" and "10 are needed" in small.detail


def test_bimodal_stored_baseline_is_inconclusive():
    # half the stored samples 1000x the others: the median (and so the ratio) cannot be pinned
    stored = [0.001, 1000.0] * 30
    fresh = list(np.random.default_rng(0).lognormal(0, 0.05, 200))
    c = compare_samples(stored, fresh)
    assert c.verdict == "inconclusive" and c.ci_high / c.ci_low > 1000


def test_big_inputs_stay_bounded_and_agree():
    # 400 rounds x 1000 calls: the bootstrap works on a quantile sketch of each round
    from edgeslim.deploy.gate.stats import bootstrap_ratio_ci

    rng = np.random.default_rng(3)
    a = [rng.lognormal(0, 0.05, 1000) for _ in range(400)]
    b = [rng.lognormal(np.log(1.1), 0.05, 1000) for _ in range(400)]
    ratio, lo, hi = bootstrap_ratio_ci(a, b)
    assert lo < ratio < hi and ratio == pytest.approx(1.1, rel=0.01) and hi - lo < 0.01


def _report(status: str):
    from edgeslim.deploy.gate.budget import BudgetResult
    from edgeslim.deploy.gate.check import CheckReport, error_report

    if status == "error":
        return error_report("candidate 'b.onnx' failed at run time (Fail: boom)", 2, "a.onnx", "b.onnx",
                            "interleaved")
    ratio, lo, hi = {"pass": (1.0, 0.99, 1.01), "regression": (1.2, 1.18, 1.22),
                     "inconclusive": (1.05, 1.03, 1.07), "budget-exceeded": (1.0, 0.99, 1.01)}[status]
    rng = np.random.default_rng(0)
    c = compare_rounds([rng.lognormal(0, 0.01, 4) for _ in range(30)],
                       [rng.lognormal(0, 0.01, 4) for _ in range(30)])
    c.ratio, c.ci_low, c.ci_high, c.verdict = ratio, lo, hi, verdict(ratio, lo, hi, 0.05)
    side = {"name": "a.onnx", "median_ms": 1.0, "p99_ms": 2.0, "throughput": 1000.0}
    rep = CheckReport(side, {**side, "name": "b.onnx", "median_ms": ratio}, c, calls_per_round=4,
                      wall_s=3.0, stop="time cap" if status == "inconclusive" else "decided")
    if status == "budget-exceeded":
        rep.budgets = [BudgetResult("max_macs", 10, 20, False)]
    return rep


@pytest.mark.parametrize(
    "status, code, junit_kind",
    [("pass", 0, None), ("regression", 1, "failure"), ("budget-exceeded", 1, "failure"),
     ("inconclusive", 4, "error"), ("error", 2, "error")],
)
def test_every_verdict_reads_the_same_in_every_report(status, code, junit_kind):
    from edgeslim.deploy.gate.report import format_junit, format_markdown, format_text

    rep = _report(status)
    assert rep.status == status and rep.exit_code == code
    js = json.loads(json.dumps(rep.to_json()))
    assert js["verdict"] == status and js["exit_code"] == code and js["passed"] == (code == 0)
    md = format_markdown(rep)
    assert md.startswith("### edgeslim check") and f" {status}:" in md.splitlines()[0]
    suite = ET.fromstring(format_junit(rep)).find("testsuite")
    kinds = [el.tag for case in suite for el in case if el.tag in ("failure", "error")]
    assert kinds == ([junit_kind] if junit_kind else [])
    if status == "inconclusive":
        assert "Inconclusive" in md and "--max-time" in md and "(exit 4)" in md
        assert suite.find("testcase/error").get("type") == "inconclusive"
    if status == "error":
        assert "failed at run time" in md and suite.get("errors") == "1" and js["error"]
    if status != "error":
        assert format_text(rep).startswith(status.upper() + ":")


def test_exit_codes_are_documented_in_help():
    from edgeslim.cli import build_parser
    from edgeslim.deploy.gate.check import EXIT_CODES

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = sub.choices["check"].format_help()
    for name, code in EXIT_CODES.items():
        assert f"{code} {name}" in text or (name == "budget-exceeded" and "budget-exceeded" in text)
    assert 3 not in EXIT_CODES.values() and "tampered" in text


def test_adaptive_rounds_stop_when_decided_or_at_the_cap():
    from edgeslim.deploy.gate.check import CheckOptions, adaptive

    n = {"rounds": 0}
    decided, undecided = _report("regression").comparison, _report("inconclusive").comparison

    def step() -> None:
        n["rounds"] += 1

    opts = CheckOptions(min_rounds=5, min_time_s=0.0, max_time_s=600.0, look_every_s=0.0, look_growth=0.0)
    cmp, stop, looks, _ = adaptive(step, lambda: n["rounds"], lambda: decided if n["rounds"] >= 12 else undecided,
                                   opts)
    assert (cmp.verdict, stop, n["rounds"]) == ("regression", "decided", 12) and looks == 8
    n["rounds"] = 0
    capped = CheckOptions(min_rounds=5, min_time_s=0.0, max_time_s=600.0, max_rounds=40, look_every_s=0.0,
                          look_growth=0.0)
    cmp, stop, _, _ = adaptive(step, lambda: n["rounds"], lambda: undecided, capped)
    assert (cmp.verdict, stop, n["rounds"]) == ("inconclusive", "round cap", 40)
