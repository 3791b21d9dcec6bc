"""`edgeslim export --out FILE.onnx` publishes FILE.onnx only after its parity gate passed
(issue 9, item 7), keeps a failed model as FILE.failed.onnx, and answers bad input in one line.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from deploy_fixtures import finished_run, one_line_error  # noqa: E402


class Drift(nn.Module):
    """Branches on the input's values: the traced ONNX bakes in one branch, so the gate fails."""

    def __init__(self, num_classes: int = 4, in_chans: int = 3, **_):
        super().__init__()
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(in_chans, num_classes)

    def forward(self, x):
        z = self.fc(self.pool(x).flatten(1))
        if x.abs().sum() > 0:  # dynamo refuses this; the TorchScript fallback specialises it
            return z
        return -z


@pytest.fixture(scope="module")
def drift_name() -> str:
    from edgeslim.models.registry import _BUILDERS, register_model

    if "integrity_drift_net" not in _BUILDERS:
        register_model("integrity_drift_net")(Drift)
    return "integrity_drift_net"


def _export(cli, model: str, out: Path, *extra: str):
    return cli("export", model, "--input-size", "16", "--out", out, "--samples", "8", *extra)


def test_final_name_does_not_exist_while_the_gate_runs(cli, tmp_path, monkeypatch):
    """Observe the real gate: wrap fp32_parity (calling through) to look at the folder the
    moment the gate runs. A kill -9 at that moment must find no FILE.onnx."""
    import edgeslim.deploy.export.parity as parity

    out, seen = tmp_path / "t.onnx", []
    real = parity.fp32_parity

    def watching(*a, **k):
        seen.append(out.exists())
        return real(*a, **k)

    monkeypatch.setattr(parity, "fp32_parity", watching)
    code, stdout, err = _export(cli, "tinycnn", out)
    assert code == 0, err
    assert seen == [False] and out.is_file() and json.loads(stdout)["onnx"] == str(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.onnx", "t.onnx.parity.json"]


@pytest.mark.filterwarnings("ignore:dynamo exporter failed")
def test_failed_gate_keeps_the_old_file_and_the_failed_model_aside(cli, tmp_path, drift_name):
    out = tmp_path / "d.onnx"
    code, _, err = _export(cli, "tinycnn", out)
    assert code == 0, err
    good = out.read_bytes()
    code, _, err = _export(cli, drift_name, out)
    assert code == 1 and one_line_error(err) and "parity gate failed" in err, err
    assert "d.failed.onnx" in err and "d.onnx left unchanged" in err
    assert out.read_bytes() == good  # the earlier, gated model is still there
    failed = tmp_path / "d.failed.onnx"
    assert failed.is_file() and failed.read_bytes() != good
    assert json.loads((tmp_path / "d.failed.onnx.parity.json").read_text())["passed"] is False
    assert json.loads((tmp_path / "d.onnx.parity.json").read_text())["passed"] is True
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left


def test_stale_staging_of_a_killed_export_is_removed(cli, tmp_path):
    stale = tmp_path / ".t.onnx.tmp-abcd1234"
    stale.mkdir()
    (stale / "t.onnx").write_bytes(b"unchecked")
    (tmp_path / ".t.onnx.lock").write_text("99999")
    (tmp_path / ".t.onnx.abcd1234.tmp").write_bytes(b"half")
    code, _, err = _export(cli, "tinycnn", tmp_path / "t.onnx", "--no-parity")
    assert code == 0, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.onnx"]


@pytest.mark.parametrize(
    "case",
    ["out-dir", "out-fifo", "out-unwritable", "junk-pt", "junk-checkpoint", "bad-kwargs", "samples-0",
     "input-size-0", "input-size-huge", "classes-0", "run-json-garbage", "missing-run-model"],
)
def test_bad_input_is_a_one_line_error(cli, tmp_path, tmp_path_factory, case):
    junk = tmp_path / "junk.pt"
    junk.write_text("junk\n")
    out, model, extra = tmp_path / "x.onnx", "tinycnn", []
    if case == "out-dir":
        out.mkdir()
    elif case == "out-fifo":
        os.mkfifo(out)
    elif case == "out-unwritable":
        out = Path("/proc/edgeslim-x.onnx")
    elif case == "junk-pt":
        model = str(junk)
    elif case == "junk-checkpoint":
        extra = ["--checkpoint", str(junk)]
    elif case == "bad-kwargs":
        extra = ["--kwargs", '{"no_such_arg": 1}']
    elif case in ("samples-0", "input-size-0", "input-size-huge", "classes-0"):
        flag, val = {"samples-0": ("--samples", "0"), "input-size-0": ("--input-size", "0"),
                     "input-size-huge": ("--input-size", "100000"),
                     "classes-0": ("--num-classes", "0")}[case]
        extra = [flag, val]
    elif case in ("run-json-garbage", "missing-run-model"):
        import shutil

        run = tmp_path / "run"
        shutil.copytree(finished_run(tmp_path_factory), run)
        if case == "run-json-garbage":
            (run / "run.json").write_text("{oops")
        else:
            (run / "00-finetune" / "model.pt").write_text("junk\n")
        model = str(run)
    code, stdout, err = cli("export", model, "--out", out, *extra)
    assert code == 2 and one_line_error(err) and stdout == "", err
    if case == "out-dir":
        assert out.is_dir() and not any(out.iterdir())
    if case == "out-fifo":
        assert stat.S_ISFIFO(os.lstat(out).st_mode)


@pytest.mark.parametrize("cmd", ["bench", "check"])
@pytest.mark.parametrize("where", ["dir", "unwritable"])
def test_bench_and_check_refuse_an_unwritable_result_file_before_measuring(
    cli, tmp_path, tmp_path_factory, cmd, where
):
    model = finished_run(tmp_path_factory) / "01-export" / "model.onnx"
    dest = tmp_path / "out.json"
    if where == "dir":
        dest.mkdir()
    else:
        dest = Path("/proc/edgeslim-out.json")
    args = [model] if cmd == "bench" else [model, model]
    code, stdout, err = cli(cmd, *args, "--json", dest, "--min-time", "0.05")
    assert code == 2 and one_line_error(err) and stdout == "", err
