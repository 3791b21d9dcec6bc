"""Backend registry: names, did-you-mean, unavailable backends with reasons, lazy imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeslim.errors import InputError, MissingDependencyError
from edgeslim.runtime import registry as R
from edgeslim.runtime.base import RuntimeOptions
from edgeslim.runtime.providers import BACKENDS, BackendSpec


@pytest.fixture
def clean_registry():
    """Undo test registrations (the registry is process-global)."""
    yield
    for name in [n for n, cls in R._REGISTRY.items() if cls.__module__ == __name__]:
        del R._REGISTRY[name]


def test_unknown_backend_is_one_line_with_did_you_mean():
    with pytest.raises(InputError) as e:
        R.get_backend("openvno")
    msg = str(e.value)
    assert "\n" not in msg and "unknown backend 'openvno'" in msg
    assert "did you mean 'openvino'" in msg and "onnxruntime" in msg  # the valid names are listed


# ids prefixed: the conftest skips tests whose keywords include a bare "tensorrt" marker name
@pytest.mark.parametrize("name", sorted(BACKENDS), ids=lambda n: f"backend-{n}")
def test_every_table_entry_registers_its_name(name):
    cls = R.get_backend(name, check=False)
    assert cls.name == name and R.capabilities(name).devices == BACKENDS[name].devices


def test_unavailable_backend_gives_the_reason(clean_registry):
    @R.register_backend("fake-npu")
    class FakeNpu:
        @classmethod
        def unavailable(cls):
            return "no NPU driver (/dev/fake0 missing)"

    assert R.available_backends()["fake-npu"] == "no NPU driver (/dev/fake0 missing)"
    with pytest.raises(MissingDependencyError, match=r"backend 'fake-npu' is unavailable here: no NPU driver"):
        R.get_backend("fake-npu")
    assert R.get_backend("fake-npu", check=False) is FakeNpu


def test_tensorrt_unavailable_here_says_why():
    why = R.available_backends()["tensorrt"]
    if why is None:
        pytest.skip("TensorRT and a GPU are present on this machine")
    assert "tensorrt is not installed" in why or "CUDA" in why
    with pytest.raises(MissingDependencyError, match="tensorrt"):
        R.open_backend("model.engine")


def test_duplicate_registration_is_an_error(clean_registry):
    R.register_backend("dup")(type("A", (), {}))
    with pytest.raises(ValueError, match="already registered"):
        R.register_backend("dup")(type("B", (), {}))


def test_a_broken_backend_module_is_an_error_naming_it(monkeypatch):
    spec = BackendSpec("ghost", "edgeslim.runtime._no_such_module", None, "", ("cpu",), {"cpu": ("fp32",)}, (".gh",))
    monkeypatch.setitem(BACKENDS, "ghost", spec)
    with pytest.raises(ImportError, match=r"backend 'ghost': module edgeslim.runtime._no_such_module failed"):
        R.get_backend("ghost")
    assert "failed to import" in R.available_backends()["ghost"]  # listed with the reason, not hidden


def test_backend_chosen_by_file_type_and_bad_suffix(tmp_path):
    assert R.backend_for_artifact("m.onnx") == "onnxruntime"
    assert R.backend_for_artifact("m.plan") == "tensorrt"
    assert R.backend_for_artifact(object()) == "torch"
    with pytest.raises(InputError, match=r"cannot run 'm.tflite': expected one of"):
        R.backend_for_artifact("m.tflite")


def test_open_backend_rejects_unknown_options_and_keeps_callers_options(exported):
    with pytest.raises(TypeError, match="unknown runtime option"):
        R.open_backend(exported.fp32, "onnxruntime", thread=2)
    mine = RuntimeOptions(threads=1)
    be = R.open_backend(exported.fp32, "onnxruntime", mine, precise=True)
    assert be.opts.precise and not mine.precise  # the caller's object is not modified


def test_importing_the_runtime_layer_imports_no_inference_library():
    code = ("import sys, edgeslim.runtime\n"
            "from edgeslim.runtime import timing, providers, compare, portable\nimport edgeslim.onnxio.info\n"
            "edgeslim.runtime.available_backends()\n"
            "print(' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    heavy = {"onnxruntime", "openvino", "tensorrt", "torch", "onnx"} & set(out)
    assert not heavy, f"import edgeslim.runtime pulled in {heavy}"
    assert "edgeslim.runtime.ort" in out  # available_backends() did load the backend modules
