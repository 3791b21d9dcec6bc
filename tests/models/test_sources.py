"""Model sources: every form model.source takes, a user's own file or module, frozen graphs, and
saved models that reopen from any working directory."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

from edgeslim.errors import CheckpointError, InputError
from edgeslim.models.factory import model_from_spec
from edgeslim.models.registry import create_model
from edgeslim.models.serialize import load_model, save_model
from edgeslim.models.source_registry import FROZEN_STAGES, check_source, frozen_refusal, source_info
from edgeslim.recipe import ModelSpec

sys.path.insert(0, str(Path(__file__).parent))
from twobranch_src import SOURCE, write_mynet  # noqa: E402


@pytest.fixture
def mynet(tmp_path: Path) -> Path:
    return write_mynet(tmp_path)


@pytest.fixture
def frozen_files(tmp_path: Path, mynet: Path) -> dict[str, Path]:
    """The same network as TorchScript (saved as .pt, told apart by content), .pt2 and ONNX."""
    model = create_model(f"{mynet}:TwoBranchNet", num_classes=4, width=8).eval()
    x = torch.randn(2, 3, 16, 16)
    out = {"torchscript": tmp_path / "net_ts.pt", "exported": tmp_path / "net.pt2", "onnx": tmp_path / "net.onnx"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notices
        torch.jit.save(torch.jit.trace(model, x), str(out["torchscript"]))
        torch.onnx.export(model, (x,), str(out["onnx"]), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "b"}, "logits": {0: "b"}})
    batch = torch.export.Dim("batch", min=1, max=256)
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=({0: batch},)), str(out["exported"]))
    return out


@pytest.mark.parametrize("source,kind,editable", [
    ("tinycnn", "builtin", True),
    ("torchvision:resnet18", "torchvision", True),
    ("timm:resnet18", "timm", True),
    ("nets/mynet.py:TwoBranchNet", "pyfile", True),
    ("mypkg.nets:build", "module", True),
    ("model.onnx", "onnx", False),
    ("model.pt2", "exported", False),
])
def test_source_forms_are_classified_by_prefix_and_shape(source, kind, editable):
    info = source_info(source)
    assert (info.kind, info.editable) == (kind, editable)
    assert (frozen_refusal(source, "prune") is None) == editable


def test_torch_files_are_told_apart_by_content_not_extension(frozen_files, tmp_path):
    assert source_info(str(frozen_files["torchscript"])).kind == "torchscript"  # a .pt holding TorchScript
    assert source_info(str(frozen_files["exported"])).kind == "exported"
    torch.save({"w": torch.zeros(1)}, tmp_path / "plain.pt")
    assert source_info(str(tmp_path / "plain.pt")).kind == "edgeslim"  # torch.save: an edgeslim model.pt


@pytest.mark.parametrize("source,expected", [
    ("torchvison:resnet18", "unknown model source 'torchvison' (did you mean 'torchvision'?)"),
    ("tim:resnet18", "(did you mean 'timm'?)"),
    ("nets/missing.py:Net", "file 'nets/missing.py' does not exist"),
])
def test_unknown_or_missing_sources_are_one_line_errors_with_the_fix(source, expected):
    with pytest.raises(InputError) as ei:
        check_source(source)
    msg = str(ei.value)
    assert expected in msg and "\n" not in msg
    if "source '" in expected:
        assert "path/to/file.py:ClassOrFactory" in msg and "package.module:ClassOrFactory" in msg


def test_user_class_and_factory_get_kwargs_and_only_the_arguments_they_take(mynet):
    net = create_model(f"{mynet}:TwoBranchNet", num_classes=5, width=8)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    assert net.fc.in_features == 16  # 2 * width: kwargs reached the class
    fac = create_model(f"{mynet}:make_twobranch", num_classes=3, width=4)
    assert fac(torch.zeros(1, 3, 16, 16)).shape == (1, 3)
    # NoClassesNet has no num_classes argument: it is not passed, and the head is resized as an edit.
    m = model_from_spec(ModelSpec(source=f"{mynet}:NoClassesNet"), 3, 4)
    assert m(torch.zeros(1, 3, 16, 16)).shape == (1, 4)
    assert m._edgeslim_spec["base_num_classes"] == 7
    assert [e["op"] for e in m._edgeslim_spec["edits"]] == ["replace_head"]


def test_user_file_errors_name_the_file_and_what_is_there(mynet):
    with pytest.raises(InputError, match=r"has no 'TwoBranchNt' \(did you mean 'TwoBranchNet'\?\).*make_twobranch"):
        create_model(f"{mynet}:TwoBranchNt")
    with pytest.raises(InputError, match="unexpected keyword argument 'depth'.*check model.kwargs"):
        create_model(f"{mynet}:TwoBranchNet", depth=3)
    bad = mynet.with_name("broken.py")
    bad.write_text("import torch\nraise RuntimeError('boom at import')\n")
    with pytest.raises(InputError, match="importing .*broken.py' failed: RuntimeError: boom at import"):
        create_model(f"{bad}:Net")


def test_module_source_imports_a_package(tmp_path, monkeypatch):
    pkg = tmp_path / "userpkg_models"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    m = create_model("userpkg_models.nets:make_twobranch", num_classes=2, width=4)
    assert m(torch.zeros(1, 3, 16, 16)).shape == (1, 2)
    spec = model_from_spec(ModelSpec(source="userpkg_models.nets:TwoBranchNet", kwargs={"width": 4}), 3, 2)
    assert spec._edgeslim_spec["origin"] == {"kind": "module", "module": "userpkg_models.nets", "name": "TwoBranchNet"}


def test_checkpoint_loads_weights_only_into_the_users_class(mynet, tmp_path):
    trained = create_model(f"{mynet}:TwoBranchNet", num_classes=4, width=8)
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    m = model_from_spec(ModelSpec(source=f"{mynet}:TwoBranchNet", checkpoint=str(tmp_path / "w.pt"),
                                  kwargs={"width": 8}), 3, 4)
    torch.testing.assert_close(m.state_dict(), trained.state_dict())
    with pytest.raises(CheckpointError, match=r"shape mismatch .*conv_branch\.0\.weight"):
        model_from_spec(ModelSpec(source=f"{mynet}:TwoBranchNet", checkpoint=str(tmp_path / "w.pt"),
                                  kwargs={"width": 16}), 3, 4)
    # A pickle of a whole module is refused, never unpickled.
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 2)), tmp_path / "whole.pt")
    with pytest.raises(CheckpointError, match="refused"):
        model_from_spec(ModelSpec(source=f"{mynet}:TwoBranchNet", checkpoint=str(tmp_path / "whole.pt")), 3, 4)


def test_saved_model_reopens_from_any_cwd_warns_on_change_and_names_a_missing_file(mynet, tmp_path, monkeypatch):
    monkeypatch.chdir(mynet.parent)
    m = model_from_spec(ModelSpec(source="mynet.py:TwoBranchNet", kwargs={"width": 8}), 3, 4)
    origin = m._edgeslim_spec["origin"]
    assert origin["path"] == str(mynet.resolve()) and len(origin["sha256"]) == 64
    save_model(m, tmp_path / "run" / "00-prune" / "model.pt")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    x = torch.randn(2, 3, 16, 16)
    torch.testing.assert_close(load_model(tmp_path / "run" / "00-prune" / "model.pt")(x), m.eval()(x))
    mynet.write_text(mynet.read_text() + "\n# edited after the run\n")
    with pytest.warns(UserWarning, match="changed since this model was saved"):
        load_model(tmp_path / "run" / "00-prune" / "model.pt")
    mynet.unlink()
    with pytest.raises(InputError) as ei:
        load_model(tmp_path / "run" / "00-prune" / "model.pt")
    assert f"'{mynet.resolve()}:TwoBranchNet', which no longer exists" in str(ei.value)


def test_frozen_sources_open_and_refuse_editing_stages(frozen_files):
    from edgeslim.models.inspect import open_model

    for kind, path in frozen_files.items():
        opened = open_model(str(path), image_size=16)
        assert opened.kind == kind and not opened.editable and opened.frozen.num_classes == 4
        reason = frozen_refusal(str(path), "prune")
        assert "stages that can run on it: " + ", ".join(FROZEN_STAGES) in reason and "\n" not in reason
        assert frozen_refusal(str(path), "quantize") is None
        with pytest.raises(InputError, match="frozen"):
            model_from_spec(ModelSpec(source=str(path)), 3, 4)


def test_info_cli_on_a_users_file_and_frozen_graphs(cli, mynet, frozen_files):
    code, out, err = cli("info", f"{mynet}:TwoBranchNet", "--num-classes", "4", "--kwargs", '{"width": 8}')
    assert code == 0, err
    assert "TwoBranchNet (pyfile)" in out and "dw_branch" in out and "MACs:" in out
    for kind, path in frozen_files.items():
        code, out, err = cli("info", path, "--image-size", "16")
        assert code == 0, err
        assert f"({kind}, frozen)" in out and "classes: 4" in out and "no prune" in out
    code, _, err = cli("info", "tim:resnet18")
    assert code == 2 and "did you mean 'timm'" in err
