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
says so on stderr when it had to fall back. Where the quantize stage's ``precision: auto`` chose
a runtime (metadata ``edgeslim.runtime`` of the ONNX), that runtime comes first with the
precision it was chosen in (e.g. openvino bf16), recorded as ``"chosen"``.

The runner's timing core and session-option translation are ``edgeslim.runtime.portable``,
shipped verbatim as ``edgeslim_portable.py``, and its image reading is ``images.py`` as
``edgeslim_images.py`` (both hashed in the manifest like every file; the runner loads them by
path after verification).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from edgeslim.errors import InputError

PORTABLE_NAME = "edgeslim_portable.py"
IMAGES_NAME = "edgeslim_images.py"
BACKENDS_NAME = "edgeslim_backends.py"
RUNNER_NAME = "runner.py"


def runner_sources() -> dict[str, Path]:
    """Bundle file name -> source file of the runner and the modules it loads by path."""
    from edgeslim.runtime import portable

    here = Path(__file__).parent
    return {RUNNER_NAME: here / RUNNER_NAME, PORTABLE_NAME: Path(portable.__file__),
            IMAGES_NAME: here / "images.py", BACKENDS_NAME: here / "runner_backends.py"}


def copy_runner(dest: Path) -> list[str]:
    """Copy runner.py and the modules it loads by path (edgeslim_portable.py, edgeslim_images.py,
    edgeslim_backends.py) into the bundle folder ``dest``; return their names."""
    for name, src in runner_sources().items():
        shutil.copy2(src, dest / name)
    return list(runner_sources())


def apply_choice(order: tuple[str, ...], chosen: dict[str, Any] | None, model_precision: str,
                 target_arch: str | None = None) -> tuple[tuple[str, ...], dict[str, Any] | None]:
    """Put the runtime ``precision: auto`` chose first, where its choice compared that order.

    ``chosen`` is the ONNX's ``edgeslim.runtime`` metadata (the quantize stage's choice:
    backend, precision, the backends it measured, the build host's architecture). It reorders
    the target's ``order`` only when every runtime of that order was measured on a host of the
    target's architecture and the precision fits the file (bf16 = the float file with OpenVINO's
    hint); otherwise the target's order stands and the record says why.
    """
    from edgeslim.onnxio.info import precision_family

    if not isinstance(chosen, dict) or not chosen.get("backend"):
        return order, None
    rec = {k: chosen.get(k) for k in ("backend", "precision", "measured", "stage")}
    backend, prec = str(chosen["backend"]), str(chosen.get("precision") or "")
    unmeasured = [b for b in order if b not in (chosen.get("measured") or [])]
    fits = prec == precision_family(model_precision) or (prec == "bf16" and model_precision == "fp32")
    why = (f"the target does not run {backend}" if backend not in order
           else f"{', '.join(unmeasured)} not measured by the {rec['stage'] or 'quantize'} stage" if unmeasured
           else f"measured on {chosen.get('host_arch')}, the target is {target_arch}"
           if target_arch and chosen.get("host_arch") not in (None, target_arch)
           else f"the choice was {prec}, the model holds {model_precision}" if not fits else None)
    if why:
        return order, {**rec, "applied": False, "why": why + ": the target's runtime order is kept"}
    return (backend, *[b for b in order if b != backend]), {**rec, "applied": True}


def runtime_section(
    order: tuple[str, ...],
    model_precision: str,
    run_precision: str | None = None,
    threads: int | None = None,
    ort_device: str = "cpu",
    chosen: dict[str, Any] | None = None,
    target_arch: str | None = None,
) -> dict[str, Any]:
    """The manifest's ``runtime`` section: each backend of ``order`` resolved by the provider table.

    ``model_precision`` is what the graph holds (``onnxio.info.detect_precision``: int8_dynamic is
    not int8). ``chosen`` (the ONNX's ``edgeslim.runtime`` metadata) moves the runtime the
    quantize stage chose to the front with its precision (:func:`apply_choice`); else the first
    backend runs ``run_precision`` when it differs (a TensorRT engine may be built in fp16 from an
    FP32 file). Only the first backend may run a lowered precision; the fallbacks run the file as
    it is. A backend the table says cannot run it is left out of ``order`` and listed under
    ``skipped`` with the reason.
    """
    from edgeslim.onnxio.info import precision_family
    from edgeslim.runtime.providers import backend_spec, runner_config

    order, choice = apply_choice(order, chosen, model_precision, target_arch)
    first_prec = chosen["precision"] if choice and choice["applied"] else run_precision
    backends: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    for i, name in enumerate(order):
        try:
            spec = backend_spec(name)
            device = ort_device if name == "onnxruntime" else spec.devices[0]
            lowered = i == 0 and first_prec not in (None, precision_family(model_precision))
            prec = first_prec if lowered else model_precision
            backends[name] = runner_config(name, device, prec, threads)
        except InputError as exc:  # this backend cannot run the model: the runner must not try it
            skipped[name] = str(exc)
    if not backends:
        raise InputError(f"no runtime of {', '.join(order)} can run this {model_precision} model: "
                         + "; ".join(skipped.values()))
    out: dict[str, Any] = {"order": list(backends), "backends": backends, "skipped": skipped}
    if choice is not None:
        out["chosen"] = choice
    return out
