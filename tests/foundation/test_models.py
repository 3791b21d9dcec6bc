"""Model registry, sources and safe checkpoint loading, on files the tests create."""

import os
import pickle

import pytest
import torch
from safetensors.torch import save_file

from edgeslim.errors import CheckpointError, InputError
from edgeslim.models import create_model, list_models, register_model
from edgeslim.models.checkpoint import load_state_dict_file, load_weights_into
from edgeslim.models.serialize import load_model, save_model
from edgeslim.models.surgery import num_classes_of, replace_head


@pytest.mark.parametrize("name", [n for n in list_models() if not n.startswith("doc_")])
def test_every_builtin_builds_and_runs(name):
    kw = {"image_size": 16} if name in ("tinyvit", "test_mlp") else {}
    m = create_model(name, num_classes=3, **kw).eval()
    assert m(torch.zeros(2, 3, 16, 16)).shape == (2, 3)


def test_registry_rejects_duplicates_and_suggests():
    with pytest.raises(ValueError, match="already registered"):
        register_model("tinycnn")(lambda **k: None)
    with pytest.raises(InputError, match="did you mean 'tinycnn'"):
        create_model("tinycnm")
    with pytest.raises(InputError, match="unknown model source 'torchvison'"):
        create_model("torchvison:resnet18")
    assert list_models("tiny*") == sorted(n for n in list_models() if n.startswith("tiny"))


def test_torchvision_unknown_and_uncached_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(InputError, match="did you mean 'resnet18'"):
        create_model("torchvision:resnet1")
    with pytest.raises(InputError) as ei:
        create_model("torchvision:resnet18", weights="IMAGENET1K_V1")
    msg = str(ei.value)
    assert "never downloads" in msg and str(tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth") in msg


def test_torchvision_weights_from_local_cache(tmp_path, monkeypatch):
    """The real loading path: a weights file placed in torch hub's cache is loaded, head swapped."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    import torchvision

    ref = torchvision.models.resnet18()
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    torch.save(ref.state_dict(), cache / "resnet18-f37072fd.pth")
    m = create_model("torchvision:resnet18", num_classes=7, weights="DEFAULT")
    assert num_classes_of(m) == 7
    assert torch.equal(m.conv1.weight, ref.conv1.weight)


def test_timm_weights_file(tmp_path):
    pytest.importorskip("timm")
    src = create_model("timm:resnet10t", num_classes=4)
    save_file(src.state_dict(), str(tmp_path / "w.safetensors"))
    m = create_model("timm:resnet10t", num_classes=4, weights_file=str(tmp_path / "w.safetensors"))
    assert torch.equal(m.fc.weight, src.fc.weight)


def test_local_checkpoint_pt_and_head_resize(tmp_path):
    src = create_model("tinycnn", num_classes=10, width=8)
    torch.save({"state_dict": src.state_dict()}, tmp_path / "c.pt")
    m = create_model("tinycnn", width=8)
    load_weights_into(m, tmp_path / "c.pt", num_classes=3)
    assert num_classes_of(m) == 3
    assert torch.equal(m.features[0][0].weight, src.features[0][0].weight)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {_Evil.marker}",))


def test_arbitrary_pickle_is_refused_never_run(tmp_path):
    _Evil.marker = tmp_path / "pwned"
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"state_dict": _Evil()}, fh)
    torch.save({"weights": _Evil()}, tmp_path / "evil2.pt")
    for f in ("evil.pt", "evil2.pt"):
        with pytest.raises(CheckpointError, match="was refused"):
            load_state_dict_file(tmp_path / f)
    assert not _Evil.marker.exists()


def test_corrupt_and_missing_checkpoint(tmp_path):
    (tmp_path / "bad.pt").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        load_state_dict_file(tmp_path / "bad.pt")
    (tmp_path / "bad.safetensors").write_bytes(b"nope")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_state_dict_file(tmp_path / "bad.safetensors")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_state_dict_file(tmp_path / "none.pt")


def test_shape_mismatch_names_keys(tmp_path):
    torch.save(create_model("tinycnn", width=16).state_dict(), tmp_path / "w16.pt")
    expected = r"features\.0\.0\.weight: checkpoint \(16, 3, 3, 3\) vs model \(8, 3, 3, 3\)"
    with pytest.raises(CheckpointError, match=expected):
        load_weights_into(create_model("tinycnn", width=8), tmp_path / "w16.pt")


def test_save_load_roundtrip_replays_edits(tmp_path):
    from edgeslim.models.factory import model_from_spec
    from edgeslim.recipe import ModelSpec

    m = model_from_spec(ModelSpec(source="tinyresnet", kwargs={"widths": [8, 16]}), 3, 10)
    from edgeslim.models.edits import record_edit

    m = record_edit(m, {"op": "replace_head", "num_classes": 4, "init": "xavier"})
    save_model(m, tmp_path / "model.pt")
    back = load_model(tmp_path / "model.pt")
    x = torch.randn(2, 3, 16, 16)
    assert torch.allclose(back(x), m.eval()(x))
    assert num_classes_of(back) == 4


def test_replace_head_init_choices():
    m = create_model("tinycnn", width=8)
    replace_head(m, 5, "kaiming")
    with pytest.raises(InputError, match="default, xavier or kaiming"):
        replace_head(m, 5, "zeros")


def test_info_cli(cli, tmp_path):
    code, out, _ = cli("info", "tinyresnet", "--image-size", "32")
    assert code == 0 and "params:" in out and "MACs:" in out and "layers" in out
    torch.save(create_model("tinycnn", num_classes=10).state_dict(), tmp_path / "c.pt")
    code, out, _ = cli("info", "tinycnn", "--checkpoint", tmp_path / "c.pt", "--num-classes", "2")
    assert code == 0 and "c.pt" in out
    code, _, err = cli("info", "tinycnn", "--checkpoint", tmp_path / "missing.pt")
    assert code == 2 and "does not exist" in err
    code, _, err = cli("info", "resnet_huge")
    assert code == 2 and "unknown model" in err
