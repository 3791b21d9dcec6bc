"""Stored baselines per host and branch, and run folders read through the run-record reader."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gate_helpers import FAST, conv_net, export, one_line_error  # noqa: E402

pytestmark = pytest.mark.serial  # verdicts depend on measured latency: make test runs these alone


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export(conv_net(1), tmp_path_factory.mktemp("baselines") / "base.onnx")


def test_host_key_names_the_host_and_changes_with_what_check_compares():
    from edgeslim.deploy.gate.baseline import host_key
    from edgeslim.deploy.gate.bench import host_fingerprint

    fp = host_fingerprint()
    key = host_key(fp)
    assert key == host_key(json.loads(json.dumps(fp))) and f"-{fp['cores']}c-" in key
    assert "/" not in key and key == key.lower()
    assert host_key({**fp, "hostname": "another-runner"}) == key  # same hardware, same baselines
    for change in ({"cpu": "Other CPU 9000"}, {"cores": 64}, {"gpu": "Some GPU"},
                   {"runtimes": {**fp["runtimes"], "onnxruntime": "0.0.1"}}):
        assert host_key({**fp, **change}) != key, change


@pytest.mark.parametrize(
    "branch, expected",
    [("main", "main.json"), ("feature/faster-stem", "feature-faster-stem.json"),
     ("../../etc/passwd", "etc-passwd.json"), ("release 1.2", "release-1.2.json")],
)
def test_branch_names_become_one_safe_file_name(branch, expected):
    from edgeslim.deploy.gate.baseline import baseline_path, branch_file

    assert branch_file(branch) == expected
    assert baseline_path(branch, "root", key="k") == Path("root") / "k" / expected


def test_branch_without_a_usable_name_is_refused():
    from edgeslim.deploy.gate.baseline import branch_file
    from edgeslim.errors import InputError

    with pytest.raises(InputError, match="gives no file name"):
        branch_file("/..")


def test_save_baseline_then_check_against_it(cli, model, tmp_path):
    from edgeslim.deploy.gate.baseline import host_key
    from edgeslim.deploy.gate.check import gate_threads

    code, out, _ = cli("bench", "--host-key")
    assert code == 0 and out.strip() == host_key()
    root = tmp_path / "baselines"
    code, out, err = cli("bench", model, "--save-baseline", "feature/x", "--baseline-dir", root,
                         "--min-time", "0.2")
    path = root / host_key() / "feature-x.json"
    assert code == 0 and f"baseline: {path}" in out, err
    saved = json.loads(path.read_text())
    assert saved["settings"]["threads_requested"]["intra"] == gate_threads()  # measured as check would
    # the same file against its own baseline with a tolerance no noise reaches: a pass
    code, out, err = cli("check", model, "--baseline-json", path, "--max-slowdown", "1000", "-q", *FAST)
    assert code == 0 and out.startswith("PASS:") and "stored vs" in out, out + err
    code, _, err = cli("check", model, "--baseline-json", path, "--threads", str(gate_threads() + 1), *FAST)
    assert code == 2 and one_line_error(err) and "measured with --threads" in err


def test_bench_without_artifact_says_what_it_needs(cli):
    code, _, err = cli("bench")
    assert code == 2 and one_line_error(err) and "--host-key" in err


def _run_folder(tmp: Path, status: str, stages: list[dict]) -> Path:
    run = tmp / "runs" / "r"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"status": status, "recipe": {"data": {"image_size": 16}},
                                              "stages": stages, "final": {}}))
    return run


def test_killed_run_reads_interrupted_in_bench_check_and_deploy(cli, tmp_path):
    # "running" with nobody holding the run's lock: the process was killed (runrecord.read_record)
    run = _run_folder(tmp_path, "running", [{"name": "export", "status": "running", "dir": "01-export"}])
    code, _, err = cli("bench", run)
    assert code == 2 and one_line_error(err) and "(interrupted)" in err and "--resume" in err
    code, _, err = cli("deploy", run, "--target", "x86-cpu", "--out", tmp_path / "bundle")
    assert code == 2 and one_line_error(err) and "is interrupted" in err and not (tmp_path / "bundle").exists()
    budget = tmp_path / "budget.yaml"
    budget.write_text("min_accuracy: 0.5\n")
    code, _, err = cli("check", "a.onnx", "b.onnx", "--budget", budget, "--accuracy-from", run / "run.json")
    assert code == 2 and one_line_error(err) and "(the run is interrupted)" in err


def test_run_folder_benches_its_newest_completed_model(cli, model, tmp_path):
    run = _run_folder(tmp_path, "running", [
        {"name": "export", "status": "completed", "dir": "01-export", "onnx_file": "model.onnx",
         "metrics": {"test_accuracy": 0.91}},
        {"name": "quantize", "status": "running", "dir": "02-quantize"},
    ])
    (run / "01-export").mkdir()
    (run / "01-export" / "model.onnx").write_bytes(model.read_bytes())
    js = tmp_path / "b.json"
    code, _, err = cli("bench", run, "--min-time", "0.1", "--json", js)
    assert code == 0, err
    assert json.loads(js.read_text())["artifact"]["name"].endswith("01-export/model.onnx")
    budget = tmp_path / "budget.yaml"
    budget.write_text("min_accuracy: 0.9\n")
    code, out, err = cli("check", run, run, "--budget", budget, "--max-slowdown", "1000", *FAST)
    assert code == 0 and "min_accuracy: 0.91" in out, out + err  # the completed stage's own accuracy
