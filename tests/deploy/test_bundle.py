"""edgeslim deploy: bundle layout, manifest hashes, profile refusals, the runner on a bundle."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from edgeslim.deploy.profiles import PROFILES, check_model, get_profile, resolve_precision
from edgeslim.errors import InputError

sys.path.insert(0, str(Path(__file__).parent))
from bench_helpers import device_python  # noqa: E402

HAS_OPENVINO = importlib.util.find_spec("openvino") is not None

# The bundle runner must work without torch and edgeslim: block both before running it.
NO_TORCH = (
    "import sys, runpy; sys.modules['torch'] = None; sys.modules['edgeslim'] = None; "
    "sys.argv = ['runner.py'] + sys.argv[1:]; runpy.run_path('runner.py', run_name='__main__')"
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    from edgeslim.pipeline import run_pipeline
    from edgeslim.progress import NULL
    from edgeslim.recipe import parse_recipe

    out = tmp_path_factory.mktemp("runs")
    recipe = parse_recipe(
        {
            "run": {"name": "b", "output_dir": str(out), "threads": 1, "latency_iters": 5},
            "model": {"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}},
            # A trained model (digits 0-3, 0.94 test top-1): the runner's accuracy on the PNG
            # test images must equal the pipeline's exactly, which near-tied logits of a
            # near-chance model would leave to float rounding in the two preprocessing paths.
            "data": {
                "source": "digits",
                "image_size": 16,
                "classes": ["0", "1", "2", "3"],
                "val_fraction": 0.2,
                "test_fraction": 0.25,
            },
            "stages": [
                {"stage": "finetune", "train": {"epochs": 3, "batch_size": 16, "optimizer": {"lr": 0.01}}},
                {"stage": "export"},
                {"stage": "deploy", "target": "x86-cpu", "include_images": False},
            ],
        }
    )
    return run_pipeline(recipe, NULL).run_dir


@pytest.fixture(scope="module")
def bundle(run_dir, tmp_path_factory) -> Path:
    from edgeslim.deploy.bundle.build import build_bundle

    out = tmp_path_factory.mktemp("b") / "bundle"
    build_bundle(run_dir, out, "x86-cpu")
    return out


def _runner(bundle: Path, *args: str, python: str = sys.executable, env: dict | None = None):
    return subprocess.run(
        [str(python), "-c", NO_TORCH, *args],
        cwd=bundle,
        capture_output=True,
        text=True,
        timeout=600,  # a hang cap for a loaded machine, not a speed assumption
        env={**os.environ, **(env or {})},
    )


def test_bundle_layout_manifest_and_tarball(bundle, run_dir):
    from edgeslim.fsutil import sha256_file

    man = json.loads((bundle / "manifest.json").read_text())
    assert {"model.onnx", "runner.py", "build_engine.sh", "README.md"} <= set(man["files"])
    assert sum(k.startswith("images/") for k in man["files"]) == man["expected"]["test_images"] > 0
    for rel, digest in man["files"].items():
        assert sha256_file(bundle / rel) == digest, rel
    export = json.loads((run_dir / "run.json").read_text())["stages"][1]["metrics"]
    assert man["expected"]["test_accuracy"] == export["test_accuracy"]
    assert man["preprocessing"]["size"] == [16, 16] and man["preprocessing"]["channels"] == 3
    assert len(man["preprocessing"]["mean"]) == 3 and man["labels"] and man["precision"] == "fp32"
    assert man["model"]["inputs"][0]["shape"][1:] == [3, 16, 16] and man["model"]["dynamic_batch"]
    assert man["edgeslim_version"] and man["target"]["name"] == "x86-cpu"
    with tarfile.open(bundle.with_name("bundle.tar.gz")) as tf:
        names = tf.getnames()
    assert "bundle/manifest.json" in names and "bundle/model.onnx" in names


def test_runner_eval_reproduces_manifest_accuracy_without_torch(bundle):
    r = _runner(bundle, "eval", "--images", "images")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    man = json.loads((bundle / "manifest.json").read_text())
    assert (
        res["accuracy"] == man["expected"]["test_accuracy"]
        and res["n"] == man["expected"]["test_images"]
    )


def test_runner_bench_and_classify(bundle):
    r = _runner(
        bundle, "bench", "--iters", "5", "--warmup", "1", "--min-time", "0", "--threads", "1"
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.strip().splitlines()[-1])
    for k in (
        "median_ms",
        "mean_ms",
        "p90_ms",
        "p95_ms",
        "p99_ms",
        "std_ms",
        "min_ms",
        "throughput",
        "samples_ms",
        "batch",
        "threads",
        "backend",
    ):
        assert k in res, k
    # x86-cpu bundles run OpenVINO where it is installed (it is in the dev environment)
    want = "openvino" if HAS_OPENVINO else "onnxruntime"
    assert res["backend"] == want and len(res["samples_ms"]) == 5 and res["threads"] == 1
    assert {"cpu", "cores", "machine", "cpu_flags", "onnxruntime"} <= set(res["host"])
    assert res["host"][want] and res["host"]["onnxruntime"]
    img = sorted((bundle / "images").rglob("*.png"))[0]
    r = _runner(bundle, "classify", str(img))
    out = json.loads(r.stdout)
    labels = json.loads((bundle / "manifest.json").read_text())["labels"]
    assert r.returncode == 0 and out["label"] in labels and 0 < out["score"] <= 1


def test_tampered_or_missing_file_is_refused(bundle, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    model = copy / "model.onnx"
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0xFF
    model.write_bytes(bytes(data))
    for cmd in (["verify"], ["eval", "--images", "images"], ["bench"]):
        r = _runner(copy, *cmd)
        assert (
            r.returncode == 3 and "'model.onnx' changed" in r.stderr and "refusing" in r.stderr
        ), cmd
    (copy / "model.onnx").write_bytes(bytes(bundle.joinpath("model.onnx").read_bytes()))
    assert _runner(copy, "verify").returncode == 0
    next((copy / "images").rglob("*.png")).unlink()
    r = _runner(copy, "verify")
    assert r.returncode == 3 and "is missing" in r.stderr and "images/" in r.stderr


def test_no_inference_library_exits_2(bundle):
    code = NO_TORCH.replace(
        "sys.modules['edgeslim'] = None;",
        "sys.modules['edgeslim'] = None; sys.modules['onnxruntime'] = None; "
        "sys.modules['tensorrt'] = None; sys.modules['openvino'] = None;",
    )
    r = subprocess.run(
        [sys.executable, "-c", code, "bench"], cwd=bundle, capture_output=True, text=True
    )
    assert r.returncode == 2 and "no runtime of this bundle (openvino, onnxruntime) is importable" in r.stderr
    assert "openvino is not installed" in r.stderr and "onnxruntime is not installed" in r.stderr


def test_tensorrt_target_writes_trtexec_profile(run_dir, bundle, tmp_path, cli):
    code, out, err = cli(
        "deploy",
        run_dir,
        "--target",
        "jetson-orin-nano",
        "--out",
        tmp_path / "j",
        "--no-images",
        "--no-tar",
    )
    assert code == 0, err
    script = (tmp_path / "j" / "build_engine.sh").read_text()
    for flag in (
        "--onnx=model.onnx",
        "--fp16",
        "--minShapes=input:1x3x16x16",
        "--optShapes=input:1x3x16x16",
        "--maxShapes=input:8x3x16x16",
        "--timingCacheFile=timing.cache",
        "runner.py verify",
    ):
        assert flag in script, flag
    man = json.loads((tmp_path / "j" / "manifest.json").read_text())
    assert (
        man["precision"] == "fp16"
        and man["model_precision"] == "fp32"
        and not (tmp_path / "j.tar.gz").exists()
    )
    assert "images/" not in " ".join(man["files"])
    assert man["runtime"]["order"] == ["tensorrt", "onnxruntime"]
    assert man["runtime"]["backends"]["tensorrt"]["precision"] == "fp16"  # the engine is built in fp16
    assert man["runtime"]["backends"]["onnxruntime"]["precision"] == "fp32"  # the fallback runs the file
    # no engine built yet (and no tensorrt here): the same ONNX runs in onnxruntime, with a note
    r = _runner(tmp_path / "j", "eval", "--images", str(bundle / "images"))
    assert r.returncode == 0 and "running model.onnx in onnxruntime" in r.stderr, r.stderr
    assert "tensorrt" in r.stderr and json.loads(r.stdout)["backend"] == "onnxruntime"
    r = _runner(tmp_path / "j", "bench", "--backend", "tensorrt")
    assert r.returncode == 2 and ("tensorrt" in r.stderr or "model.engine" in r.stderr)


def test_refusals_name_the_reason(run_dir, tmp_path, cli):
    code, _, err = cli(
        "deploy",
        run_dir,
        "--target",
        "raspberry-pi-5",
        "--precision",
        "fp16",
        "--out",
        tmp_path / "r",
    )
    assert code == 2 and "cannot run fp16" in err and not (tmp_path / "r").exists()
    code, _, err = cli(
        "deploy", run_dir, "--target", "nvidia-gpu", "--precision", "int8", "--out", tmp_path / "g"
    )
    assert code == 2 and "calibration cache" in err
    code, _, err = cli("deploy", run_dir, "--target", "jetson-nano", "--out", tmp_path / "n")
    assert code == 2 and "did you mean 'jetson-orin-nano'" in err
    code, _, err = cli("deploy", tmp_path, "--target", "x86-cpu", "--out", tmp_path / "n")
    assert code == 2 and "no run.json" in err


def test_profile_rules():
    pi, nano = get_profile("raspberry-pi-5"), get_profile("jetson-orin-nano")
    assert set(PROFILES) == {
        "jetson-orin-nano",
        "jetson-agx-orin",
        "raspberry-pi-5",
        "x86-cpu",
        "nvidia-gpu",
    }
    assert resolve_precision(pi, "int8", None, False) == "int8"
    with pytest.raises(InputError, match="cannot run a fp16 model"):
        resolve_precision(pi, "fp16", None, False)
    with pytest.raises(InputError, match="add a quantize stage"):
        resolve_precision(get_profile("x86-cpu"), "fp32", "int8", True)
    assert resolve_precision(nano, "fp32", "int8", True) == "int8"
    with pytest.raises(InputError, match="already int8"):
        resolve_precision(nano, "int8", "fp16", False)
    with pytest.raises(InputError, match="opset 13..20.*set export.opset: 20"):
        check_model(nano, 21, True)
    with pytest.raises(InputError, match="fixed batch of 1"):
        check_model(get_profile("nvidia-gpu"), 18, False)


def test_cli_export_from_run_folder(run_dir, tmp_path, cli):
    from edgeslim.onnxio.info import read_metadata

    code, out, err = cli(
        "export", run_dir, "--out", tmp_path / "r.onnx", "--exporter", "torchscript"
    )
    assert code == 0, err
    info = json.loads(out)
    assert info["exporter"] == "torchscript" and info["input_shape"] == [3, 16, 16]
    meta = read_metadata(tmp_path / "r.onnx")
    record = json.loads((run_dir / "run.json").read_text())
    assert meta["edgeslim.class_names"] == record["stages"][0]["class_names"]
    assert meta["edgeslim.source"].endswith("00-finetune")


def test_deploy_stage_writes_a_bundle_in_its_folder(run_dir):
    stage = run_dir / "02-deploy"
    man = json.loads((stage / "bundle" / "manifest.json").read_text())
    assert (stage / "bundle.tar.gz").is_file() and man["source_stage"] == "01-export"
    assert json.loads((stage / "meta.json").read_text())["metrics"]["target"] == "x86-cpu"


def test_minimal_manifest_without_inputs_benches(bundle, tmp_path):
    """The bench engineer's --remote sends a minimal bundle (runner + model + hashes only)."""
    from edgeslim.fsutil import sha256_file

    names = ("runner.py", "edgeslim_portable.py", "edgeslim_backends.py", "model.onnx")
    for n in names:
        (tmp_path / n).write_bytes((bundle / n).read_bytes())
    files = {n: sha256_file(tmp_path / n) for n in names}
    man = {
        "model": {"file": "model.onnx", "inputs": []},
        "files": files,
        "target": {"runner_backend": "onnxruntime"},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    r = _runner(tmp_path, "bench", "--iters", "3", "--warmup", "0", "--min-time", "0")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)  # no runtime section (an older bundle): onnxruntime, as its target says
    assert res["iters"] == 3 and res["backend"] == "onnxruntime"
    r = _runner(tmp_path, "classify", "x.png")  # no edgeslim_images.py shipped: bench only
    assert r.returncode == 2 and "a minimal bench bundle" in r.stderr
    # a hand-made bundle without the runtime classes: one line saying what to do, nothing run
    (tmp_path / "edgeslim_backends.py").unlink()
    del files["edgeslim_backends.py"]
    (tmp_path / "manifest.json").write_text(json.dumps(man))
    r = _runner(tmp_path, "bench", "--iters", "3", "--warmup", "0", "--min-time", "0")
    assert r.returncode == 3 and "no edgeslim_backends.py" in r.stderr and "rebuild" in r.stderr
    assert "Traceback" not in r.stderr


def test_bundle_ships_the_portable_timing_core_and_a_runtime_section(bundle):
    from edgeslim.fsutil import sha256_file
    from edgeslim.runtime import portable
    from edgeslim.runtime.providers import runner_config

    man = json.loads((bundle / "manifest.json").read_text())
    assert man["files"]["edgeslim_portable.py"] == sha256_file(Path(portable.__file__))  # verbatim
    rt = man["runtime"]
    assert rt["order"] == ["openvino", "onnxruntime"]  # x86-cpu: Profile.runtimes
    assert rt["backends"]["openvino"] == runner_config("openvino", "cpu", "fp32")  # the one table decides
    assert rt["backends"]["onnxruntime"]["providers"] == ["CPUExecutionProvider"]
    assert "openvino" in (bundle / "README.md").read_text()


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed (pip install 'edgeslim[openvino]')")
def test_runner_runs_openvino_and_agrees_with_onnxruntime(bundle):
    ov = _runner(bundle, "eval", "--images", "images")
    ort = _runner(bundle, "eval", "--images", "images", "--backend", "onnxruntime")
    assert ov.returncode == 0 and ort.returncode == 0, ov.stderr + ort.stderr
    a, b = json.loads(ov.stdout), json.loads(ort.stdout)
    assert a["backend"] == "openvino" and a["precision"] == "f32" and b["backend"] == "onnxruntime"
    assert ov.stderr == ""  # the first choice ran: nothing to say
    man = json.loads((bundle / "manifest.json").read_text())
    assert b["accuracy"] == man["expected"]["test_accuracy"]  # the runtime the build host measured
    # OpenVINO f32 vs onnxruntime differ by ~1e-6 relative on a trained model: only an exact
    # near-tie of two logits could flip, so at most one image of the test split may differ.
    assert abs(a["correct"] - b["correct"]) <= 1 and a["n"] == b["n"] > 0


def test_runner_falls_back_to_onnxruntime_without_openvino(bundle, tmp_path):
    """A real device interpreter with numpy + onnxruntime only: `import openvino` fails there."""
    py = device_python(tmp_path / "dev")
    r = _runner(bundle, "eval", "--images", "images", python=py)
    assert r.returncode == 0, r.stderr
    note = r.stderr.strip().splitlines()
    assert len(note) == 1 and note[0].startswith("note: openvino is not installed")
    assert "running model.onnx in onnxruntime" in note[0]
    res, man = json.loads(r.stdout), json.loads((bundle / "manifest.json").read_text())
    assert res["backend"] == "onnxruntime" and res["accuracy"] == man["expected"]["test_accuracy"]
    r = _runner(bundle, "bench", "--backend", "openvino", "--iters", "1", python=py)
    assert r.returncode == 2 and "--backend openvino: openvino is not installed" in r.stderr
    # a name the shipped backend table does not know: one line listing the ones it does
    r = _runner(bundle, "bench", "--backend", "tflite", "--iters", "1", python=py)
    err = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(err) == 1 and "--backend tflite" in err[0]
    assert "onnxruntime, openvino, tensorrt" in err[0]


def test_disable_knob_and_backends_report(bundle):
    env = {"EDGESLIM_RUNNER_DISABLE": "openvino"}
    r = _runner(bundle, "classify", next((bundle / "images").rglob("*.png")).as_posix(), env=env)
    assert r.returncode == 0 and "openvino is disabled by EDGESLIM_RUNNER_DISABLE" in r.stderr
    r = _runner(bundle, "backends", env=env)
    rep = json.loads(r.stdout)
    assert r.returncode == 0 and rep["order"] == ["openvino", "onnxruntime"]
    assert rep["backends"]["onnxruntime"]["available"] and not rep["backends"]["openvino"]["available"]
    assert "tensorrt" in rep["backends"]["tensorrt"]["reason"]  # not installed here, or no engine yet
    # the runs above loaded edgeslim_portable.py from the bundle: no bytecode was left there
    assert not list(bundle.rglob("__pycache__")) and _runner(bundle, "verify").returncode == 0


@pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed (pip install 'edgeslim[openvino]')")
def test_runner_bf16_only_on_native_bf16_cpus(bundle):
    from edgeslim.runtime.portable import bf16_support, cpu_features

    native, why = bf16_support(cpu_features())
    r = _runner(bundle, "bench", "--precision", "bf16", "--iters", "3", "--warmup", "0", "--min-time", "0")
    if native:
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["runtime_precision"] == "bf16"
    else:  # emulated BF16 is slower than FP32: refused with the reason
        assert r.returncode == 2 and why in r.stderr
    r = _runner(bundle, "bench", "--precision", "bf16", "--backend", "onnxruntime")
    assert r.returncode == 2 and "runs on openvino only" in r.stderr


def test_a_changed_portable_core_never_runs(bundle, tmp_path):
    """edgeslim_portable.py is bundle code: it is loaded by path only after its sha256 matched."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    marker = tmp_path / "ran"
    with open(copy / "edgeslim_portable.py", "a") as fh:
        fh.write(f"\nopen({str(marker)!r}, 'w').write('ran')\n")
    r = _runner(copy, "bench", "--iters", "1")
    assert r.returncode == 3 and "'edgeslim_portable.py' changed" in r.stderr and not marker.exists()
    man = json.loads((bundle / "manifest.json").read_text())
    del man["files"]["edgeslim_portable.py"]
    shutil.copy(bundle / "edgeslim_portable.py", copy / "edgeslim_portable.py")
    (copy / "manifest.json").write_text(json.dumps(man))
    r = _runner(copy, "bench", "--iters", "1")
    assert r.returncode == 3 and "must list runner.py, edgeslim_portable.py" in r.stderr
    assert not list(copy.rglob("__pycache__"))  # loading it wrote no bytecode into the bundle
