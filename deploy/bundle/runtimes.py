"""What a bundle tells its runner about runtimes: the manifest's ``runtime`` section and its code.

The device runner (``runner.py``) has a backend table (name -> opener) but no provider or
precision table. Which backends to try, in which order, and each one's resolved session config
(threads, providers, spinning, OpenVINO's inference precision, ...) are decided here when the
bundle is built, from the one table in ``edgeslim.runtime.providers`` (``runner_config``), and
written into manifest.json::

    "runtime": {"order": ["openvino", "onnxruntime"],
                "backends": {"openvino": {...}, "onnxruntime": {...}},
                "skipped": {"tensorrt": "why it cannot run this model"}}

The runner opens the first backend in ``order`` whose library is installed on the device and
says so on stderr when it had to fall back. Its timing core and the session-option translation
are ``edgeslim.runtime.portable``, shipped verbatim as ``edgeslim_portable.py``, and its image
reading is ``images.py`` as ``edgeslim_images.py`` (both hashed in the manifest like every file;
the runner loads them by path after verification).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edgeslim.errors import InputError

PORTABLE_NAME = "edgeslim_portable.py"
IMAGES_NAME = "edgeslim_images.py"
RUNNER_NAME = "runner.py"


def runner_sources() -> dict[str, Path]:
    """Bundle file name -> source file of the runner and the two modules it loads by path."""
    from edgeslim.runtime import portable

    here = Path(__file__).parent
    return {RUNNER_NAME: here / RUNNER_NAME, PORTABLE_NAME: Path(portable.__file__),
            IMAGES_NAME: here / "images.py"}


def copy_runner(dest: Path) -> list[str]:
    """Copy runner.py, edgeslim_portable.py and edgeslim_images.py into the bundle folder ``dest``;
    return their names."""
    for name, src in runner_sources().items():
        shutil.copy2(src, dest / name)
    return list(runner_sources())


def default_order(backend: str, runtimes: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The backends a profile's runner tries: its ``runtimes`` when it lists them, else its own
    backend with onnxruntime as the fallback (a TensorRT bundle runs model.onnx before the engine
    is built)."""
    if runtimes:
        return tuple(runtimes)
    return (backend, "onnxruntime") if backend != "onnxruntime" else ("onnxruntime",)


def runtime_section(
    order: tuple[str, ...],
    model_precision: str,
    run_precision: str | None = None,
    threads: int | None = None,
    ort_device: str = "cpu",
) -> dict[str, Any]:
    """The manifest's ``runtime`` section: each backend of ``order`` resolved by the provider table.

    ``model_precision`` is what the graph holds (``onnxio.info.detect_precision``: int8_dynamic is
    not int8). The first backend runs ``run_precision`` when it differs (a TensorRT engine may be
    built in fp16 from an FP32 file); the fallbacks run the file as it is. A backend the table
    says cannot run it is left out of ``order`` and listed under ``skipped`` with the reason.
    """
    from edgeslim.onnxio.info import precision_family
    from edgeslim.runtime.providers import backend_spec, runner_config

    backends: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for i, name in enumerate(order):
        try:
            spec = backend_spec(name)
            device = ort_device if name == "onnxruntime" else spec.devices[0]
            lowered = i == 0 and run_precision not in (None, precision_family(model_precision))
            prec = run_precision if lowered else model_precision
            backends[name] = runner_config(name, device, prec, threads)
        except InputError as exc:  # this backend cannot run the model: the runner must not try it
            skipped[name] = str(exc)
    if not backends:
        raise InputError(f"no runtime of {', '.join(order)} can run this {model_precision} model: "
                         + "; ".join(skipped.values()))
    return {"order": list(backends), "backends": backends, "skipped": skipped}
