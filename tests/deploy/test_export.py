"""ONNX export: dynamo, recorded TorchScript fallback, one file, metadata, external data."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from edgeslim.models.registry import create_model
from edgeslim.onnxio import export as E
from edgeslim.onnxio.info import read_metadata


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_model("tinycnn", num_classes=4, width=8, depth=2).eval()


def _ort(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_dynamo_single_file_dynamic_batch_metadata(tiny, tmp_path):
    res = E.export_onnx(
        tiny,
        (3, 16, 16),
        tmp_path / "m.onnx",
        18,
        True,
        {"edgeslim.class_names": ["a", "b", "c", "d"], "edgeslim.mean": [0.5] * 3},
    )
    assert res.exporter == "dynamo" and res.opset == 18 and res.simplified and not res.external_data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no sidecar, no temp left
    sess = _ort(res.path)
    assert sess.get_inputs()[0].name == "input" and isinstance(sess.get_inputs()[0].shape[0], str)
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        ref = tiny(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(sess.run(None, {"input": x})[0], ref, rtol=1e-4, atol=1e-5)
    meta = read_metadata(res.path)
    assert (
        meta["edgeslim.class_names"] == ["a", "b", "c", "d"]
        and meta["edgeslim.exporter"] == "dynamo"
    )
    assert meta["edgeslim.input_shape"] == [3, 16, 16] and meta["edgeslim.layout"] == "NCHW"
    assert meta["edgeslim.input_name"] == "input" and meta["edgeslim.version"]


def test_fallback_to_torchscript_is_recorded_not_warned(tiny, tmp_path, monkeypatch, recwarn):
    def broken(*a, **k):
        raise RuntimeError("simulated dynamo failure")

    monkeypatch.setattr(E, "_export_dynamo", broken)
    res = E.export_onnx(tiny, (3, 16, 16), tmp_path / "m.onnx", 17)
    # callers say it in their own voice (a stage's log, `edgeslim export`'s note: line), so
    # `edgeslim run -q` prints nothing (tests/integrity/test_campaign_regressions.py)
    assert not [w for w in recwarn if "fell back" in str(w.message)]
    assert res.exporter == "torchscript" and "simulated dynamo failure" in res.warnings[0]
    assert read_metadata(res.path)["edgeslim.exporter"] == "torchscript"
    with pytest.raises(E.StageError, match="dynamo ONNX export failed.*torchscript"):
        E.export_onnx(tiny, (3, 16, 16), tmp_path / "n.onnx", exporter="dynamo")


def test_static_batch_and_bad_exporter(tiny, tmp_path):
    res = E.export_onnx(tiny, (3, 16, 16), tmp_path / "s.onnx", 17, False, exporter="torchscript")
    assert _ort(res.path).get_inputs()[0].shape == [1, 3, 16, 16]
    with pytest.raises(E.InputError, match="exporter 'onnx' is not one of"):
        E.export_onnx(tiny, (3, 16, 16), tmp_path / "x.onnx", exporter="onnx")


def test_external_data_beyond_the_limit(tiny, tmp_path, monkeypatch):
    # the real limit is 2 GB; lowering it exercises the same save path with a tiny model
    monkeypatch.setattr(E, "_SINGLE_FILE_MAX", 1000)
    res = E.export_onnx(tiny, (3, 16, 16), tmp_path / "big.onnx", 18, exporter="torchscript")
    assert res.external_data and (tmp_path / "big.onnx.data").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.onnx", "big.onnx.data"]
    x = np.ones((2, 3, 16, 16), np.float32)
    with torch.no_grad():
        ref = tiny(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_ort(res.path).run(None, {"input": x})[0], ref, rtol=1e-4, atol=1e-5)


def test_finalize_replaces_metadata_and_rejects_garbage(tiny, tmp_path):
    res = E.export_onnx(
        tiny,
        (3, 16, 16),
        tmp_path / "m.onnx",
        17,
        exporter="torchscript",
        metadata={"edgeslim.precision": "fp32"},
    )
    E.finalize_onnx(res.path, res.path, {"edgeslim.precision": "int8"}, simplify=False)
    meta = read_metadata(res.path)
    assert meta["edgeslim.precision"] == "int8" and meta["edgeslim.exporter"] == "torchscript"
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(E.InputError, match="not a readable ONNX model"):
        E.finalize_onnx(tmp_path / "junk.onnx", tmp_path / "out.onnx")


def test_cli_export_registry_name(cli, tmp_path):
    out = tmp_path / "t.onnx"
    code, stdout, err = cli(
        "export",
        "tinycnn",
        "--input-size",
        "16",
        "--num-classes",
        "3",
        "--out",
        out,
        "--samples",
        "8",
    )
    assert code == 0, err
    info = json.loads(stdout)
    assert info["exporter"] == "dynamo" and info["input_shape"] == [3, 16, 16]
    assert "top-1 agreement 1.0000" in info["parity"] and out.is_file()
    assert json.loads((tmp_path / "t.onnx.parity.json").read_text())["passed"] is True


def test_cli_export_bad_input(cli, tmp_path):
    code, _, err = cli("export", "tinycnn", "--out", tmp_path / "t.pt")
    assert code == 2 and "must end in .onnx" in err
    code, _, err = cli("export", "tinycnnn", "--out", tmp_path / "t.onnx")
    assert code == 2 and "did you mean 'tinycnn'" in err
    code, _, err = cli(
        "export", "tinycnn", "--checkpoint", tmp_path / "none.pth", "--out", tmp_path / "t.onnx"
    )
    assert code == 2 and "none.pth" in err


def test_cli_export_bare_checkpoint_keeps_its_weights(cli, tmp_path):
    torch.manual_seed(3)
    model = create_model("tinycnn", num_classes=3, width=8, depth=2).eval()
    torch.save(model.state_dict(), tmp_path / "w.pth")
    out = tmp_path / "c.onnx"
    code, _, err = cli(
        "export",
        "tinycnn",
        "--checkpoint",
        tmp_path / "w.pth",
        "--num-classes",
        "3",
        "--kwargs",
        '{"width": 8, "depth": 2}',
        "--input-size",
        "16",
        "--out",
        out,
        "--exporter",
        "torchscript",
        "--no-parity",
    )
    assert code == 0, err
    x = np.random.default_rng(1).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(_ort(out).run(None, {"input": x})[0], ref, rtol=1e-4, atol=1e-5)


def test_requested_opset_is_what_the_file_has(tiny, tmp_path):
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        res = E.export_onnx(tiny, (3, 16, 16), tmp_path / "m.onnx", 17)
    assert res.opset == 17 and E.opset_of(onnx.load(str(res.path))) == 17
    if res.exporter == "torchscript":  # this torch's dynamo exporter builds opset 18 only
        assert "instead of 17" in res.warnings[0]
