"""Every way `edgeslim check` can fail to compare: one line on stderr, the documented exit code,
and the Markdown/JUnit/JSON reports still written with an `error` (or `inconclusive`) verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gate_helpers import (  # noqa: E402
    FAST,
    conv_net,
    export,
    one_line_error,
    read_reports,
    reports,
    runtime_failure_onnx,
    unknown_op_onnx,
    wrong_channels_onnx,
)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("gate-errors")
    base = export(conv_net(1), d / "base.onnx")
    return {
        "base": base,
        "runfail": runtime_failure_onnx(d / "runfail.onnx"),
        "channels": wrong_channels_onnx(d / "channels.onnx"),
        "unknown_op": unknown_op_onnx(d / "unknown_op.onnx"),
        "garbage": _write(d / "garbage.onnx", "not a model"),
        "dir": d,
    }


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def stored(files):
    """A real stored baseline of base.onnx on this host (edgeslim bench --json)."""
    from edgeslim.cli import main

    out = files["dir"] / "stored.json"
    assert main(["bench", str(files["base"]), "--threads", "1", "--min-time", "0.2", "--json", str(out)]) == 0
    return json.loads(out.read_text())


def assert_error_reports(paths, code: int, needle: str) -> dict:
    md, suite, js = read_reports(paths)
    assert js["verdict"] == "error" and js["exit_code"] == code and not js["passed"] and needle in js["error"]
    assert md.startswith("### edgeslim check :boom: error:") and needle in md
    assert suite.get("errors") == "1" and suite.find("testcase/error").get("type") == "error"
    return js


def _corrupt(obj: dict, case: str) -> str:
    if case == "malformed":
        return json.dumps(obj)[:200]  # cut off mid-file
    if case == "not-a-mapping":
        return "[1, 2, 3]"
    o = json.loads(json.dumps(obj))
    edits = {
        "nan": lambda: o["samples_ms"].__setitem__(3, float("nan")),
        "inf": lambda: o["samples_ms"].__setitem__(0, float("inf")),
        "string": lambda: o["samples_ms"].__setitem__(5, "fast"),
        "null": lambda: o["samples_ms"].__setitem__(1, None),
        "negative": lambda: o["samples_ms"].__setitem__(2, -1.0),
        "empty": lambda: o.__setitem__("samples_ms", []),
        "too-few": lambda: o.__setitem__("samples_ms", o["samples_ms"][:3]),
        "samples-not-list": lambda: o.__setitem__("samples_ms", "1,2,3"),
        "no-samples": lambda: o.pop("samples_ms"),
        "no-artifact": lambda: o.pop("artifact"),
        "no-host": lambda: o.pop("host"),
        "bad-batch": lambda: o.__setitem__("batch", 0),
        "wrong-schema": lambda: o.__setitem__("schema", "something/9"),
    }
    edits[case]()
    return json.dumps(o)  # Python writes NaN/Infinity tokens, as a hand-edited file may hold


@pytest.mark.parametrize(
    "case, needle",
    [
        ("nan", "samples_ms[3]: nan is not finite"),
        ("inf", "samples_ms[0]: inf is not finite"),
        ("string", "samples_ms[5]: 'fast' is not a number"),
        ("null", "samples_ms[1]: None is not a number"),
        ("negative", "samples_ms[2]: -1.0 is not a positive time"),
        ("empty", "holds 0 samples; at least 10"),
        ("too-few", "holds 3 samples; at least 10"),
        ("samples-not-list", "samples_ms is a str, not a list"),
        ("no-samples", "not an edgeslim bench result"),
        ("no-artifact", "missing field(s) artifact"),
        ("no-host", "missing field(s) host"),
        ("bad-batch", "batch 0 is not a positive integer"),
        ("wrong-schema", "not an edgeslim bench result"),
        ("malformed", "is not valid JSON"),
        ("not-a-mapping", "not an edgeslim bench result"),
    ],
)
def test_bad_stored_baseline_exits_2_with_reports(cli, files, stored, tmp_path, case, needle):
    bad = _write(tmp_path / f"{case}.json", _corrupt(stored, case))
    args, paths = reports(tmp_path)
    code, out, err = cli("check", files["base"], "--baseline-json", bad, *args)
    assert code == 2 and one_line_error(err) and needle in err and out == "", err
    assert_error_reports(paths, 2, needle)


@pytest.mark.parametrize(
    "which, side, needle",
    [
        ("runfail", "candidate", "failed at run time"),  # loads, fails in onnxruntime when run
        ("channels", "candidate", "failed at run time"),  # a shape wrong for the input
        ("unknown_op", "candidate", "onnxruntime cannot load"),
        ("garbage", "candidate", "not a readable ONNX model"),
    ],
)
def test_crashing_candidate_exits_2_with_reports(cli, files, tmp_path, which, side, needle):
    args, paths = reports(tmp_path)
    code, out, err = cli("check", files["base"], files[which], *FAST, *args)
    assert code == 2 and one_line_error(err) and needle in err and side in err and out == "", err
    assert_error_reports(paths, 2, needle)


def test_crashing_baseline_is_named_as_the_baseline(cli, files, tmp_path):
    args, paths = reports(tmp_path)
    code, _, err = cli("check", files["runfail"], files["base"], *FAST, *args)
    assert code == 2 and one_line_error(err) and "error: baseline '" in err
    assert "runfail.onnx' failed at run time" in err
    assert_error_reports(paths, 2, "failed at run time")


def test_run_time_crash_is_one_line_in_a_real_process(files, tmp_path):
    # onnxruntime's own logger writes to the process's stderr, past pytest's capture: only a
    # separate process shows that the user sees one line
    p = subprocess.run([sys.executable, "-m", "edgeslim", "check", str(files["base"]), str(files["runfail"]),
                        *FAST], capture_output=True, text=True, timeout=600)
    assert p.returncode == 2 and one_line_error(p.stderr), p.stderr
    assert "cannot be reshaped to the requested shape" in p.stderr
    p = subprocess.run([sys.executable, "-m", "edgeslim", "bench", str(files["runfail"])],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 2 and one_line_error(p.stderr) and "failed at run time" in p.stderr, p.stderr


BILLION_LAUGHS = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
    f'{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n' for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)


@pytest.mark.parametrize(
    "budget, extra, needle",
    [
        ("latency_ms: {default: [1\n", (), "not valid YAML"),
        (BILLION_LAUGHS, (), "billion laughs"),
        ("max_sise_mb: 3\n", (), "did you mean 'max_size_mb'"),
        ("max_macs: .nan\n", (), "must be a non-negative number"),
        ("latency_ms: {default: 3}\n", ("--profile", "rpi5"), "unknown device profile 'rpi5'"),
        ("min_accuracy: 0.5\naccuracy_from: nowhere/run.json\n", (), "no run.json"),
        ("- 1\n- 2\n", (), "must be a mapping"),
    ],
)
def test_bad_budget_exits_2_before_measuring_with_reports(cli, files, tmp_path, budget, extra, needle):
    path = _write(tmp_path / "budget.yaml", budget)
    args, paths = reports(tmp_path)
    code, out, err = cli("check", files["base"], files["base"], *FAST, "--budget", path, *extra, *args)
    assert code == 2 and one_line_error(err) and needle in err and out == "", err
    js = assert_error_reports(paths, 2, needle)
    assert js["comparison"] is None  # refused before any measuring


@pytest.mark.parametrize(
    "args, needle",
    [
        (("--max-time", "1", "--min-time", "3"), "--max-time 1.0 must be > 0 and >= --min-time"),
        (("--max-slowdown", "-3"), "out of range"),
        (("--confidence", "1.5"), "out of range"),
    ],
)
def test_bad_options_exit_2_with_reports(cli, files, tmp_path, args, needle):
    rep_args, paths = reports(tmp_path)
    code, _, err = cli("check", files["base"], files["base"], *args, *rep_args)
    assert code == 2 and one_line_error(err) and needle in err
    assert_error_reports(paths, 2, needle)


def test_unreachable_round_count_is_inconclusive_exit_4(cli, files, tmp_path):
    # the cap (0.5 s) comes long before 100000 rounds: the CI never gets the rounds it needs,
    # whatever this machine's speed, so the verdict is forced
    args, paths = reports(tmp_path)
    code, out, err = cli("check", files["base"], files["base"], "--min-time", "0.2", "--max-time", "0.5",
                         "--min-rounds", "100000", "--round-ms", "5", "-q", *args)
    assert code == 4, out + err
    assert out.startswith("INCONCLUSIVE:") and "100000 are needed" in out and "(exit 4)" in out
    md, suite, js = read_reports(paths)
    assert js["verdict"] == "inconclusive" and js["exit_code"] == 4 and js["stop"] == "time cap"
    assert js["comparison"]["rounds"] < 100000 and not js["passed"]
    assert ":warning: inconclusive:" in md and "Inconclusive" in md
    assert suite.get("errors") == "1" and suite.find("testcase/error").get("type") == "inconclusive"


def test_stored_baseline_that_cannot_give_a_ci_is_inconclusive_exit_4(cli, files, stored, tmp_path):
    # a real stored baseline whose samples were made bimodal (half of them 1000x slower): its
    # median cannot be pinned down, so no amount of candidate samples decides
    o = dict(stored, samples_ms=[0.001, 1000.0] * 30)
    bimodal = _write(tmp_path / "bimodal.json", json.dumps(o))
    args, paths = reports(tmp_path)
    code, out, _ = cli("check", files["base"], "--baseline-json", bimodal, "--min-time", "0.2",
                       "--max-time", "1", "-q", *args)
    assert code == 4 and out.startswith("INCONCLUSIVE:"), out
    md, _, js = read_reports(paths)
    assert js["verdict"] == "inconclusive" and js["mode"] == "stored-baseline" and "Inconclusive" in md
