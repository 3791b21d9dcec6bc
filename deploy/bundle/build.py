"""The edge bundle: everything a device needs to run, check and benchmark a model.

    DIR/model.onnx           the artifact (plus model.onnx.data when over 2 GB)
    DIR/manifest.json        inputs, preprocessing, labels, precision, expected accuracy and
                             latency on the build host, target profile, sha256 of every file
    DIR/runner.py            standalone runner (numpy + onnxruntime, openvino or tensorrt)
    DIR/edgeslim_portable.py its timing core and session options (edgeslim.runtime.portable)
    DIR/edgeslim_images.py   its PNG codec and preprocessing (deploy/bundle/images.py)
    DIR/build_engine.sh      trtexec command for the target (engines are built on the device)
    DIR/README.md
    DIR/calibration.cache    TensorRT INT8 calibration cache (INT8 from an FP32 model)
    DIR/images/<class>/*.png the test split, as the pipeline evaluated it (optional)

manifest.json's ``runtime`` section names the backends the runner tries, in order, with their
resolved session configs (``runtimes.py``). Written atomically under a lock (``outpath.py``
says what DIR may hold), then packed into DIR.tar.gz.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import time
from pathlib import Path
from typing import Any

from edgeslim.deploy.bundle.agree import verify_runtimes
from edgeslim.deploy.bundle.outpath import (
    BUNDLE_SCHEMA,
    check_bundle_out,
    os_error_message,
    output_lock,
    remove_stale_tarball,
)
from edgeslim.deploy.bundle.runtimes import copy_runner, runtime_section
from edgeslim.deploy.profiles import Profile, check_model, get_profile, resolve_precision
from edgeslim.errors import InputError
from edgeslim.fsutil import atomic_dir, atomic_write_json, atomic_write_text, sha256_file

SCHEMA = BUNDLE_SCHEMA


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """run.json of a run folder; every way it can be missing or broken is a one-line InputError.

    Read through ``runrecord.read_record``: a run killed mid-stage reads ``interrupted``."""
    from edgeslim.runrecord import read_record

    path = Path(run_dir) / "run.json"
    fix = "give runs/<name> of a finished `edgeslim run`"
    record = read_record(run_dir)
    if not (
        isinstance(record, dict)
        and isinstance(record.get("stages"), list)
        and isinstance(record.get("recipe"), dict)
    ):
        raise InputError(f"'{path}' is not an edgeslim run record (no stages/recipe); {fix}")
    return record


def onnx_stage(run_dir: Path, record: dict[str, Any]) -> dict[str, Any]:
    """The newest completed stage that produced an ONNX file."""
    for st in reversed(record.get("stages", [])):
        if isinstance(st, dict) and st.get("status") == "completed" and st.get("onnx_file"):
            if not (run_dir / st["dir"] / st["onnx_file"]).is_file():
                raise InputError(
                    f"{st['dir']}/{st['onnx_file']} listed in run.json is missing; rerun the recipe"
                )
            return st
    if record.get("status") in ("interrupted", "running", "failed"):
        raise InputError(f"run '{run_dir}' is {record['status']} and has no completed stage with an "
                         "ONNX model yet; finish it with edgeslim run RECIPE --resume")
    raise InputError(
        f"run '{run_dir}' has no completed stage with an ONNX model; add `- stage: export` "
        "to the recipe and run it again"
    )


def find_calibration_cache(run_dir: Path) -> Path | None:
    """A TensorRT calibration cache written by the quantize stage (calibration.cache / *.calib)."""
    hits = sorted(
        p
        for pat in ("*/calibration.cache", "*/*.calib", "*/trt_calib*.cache")
        for p in run_dir.glob(pat)
    )
    return hits[-1] if hits else None


def _onnx_facts(path: Path) -> dict[str, Any]:
    """What the manifest and the profile checks need from the ONNX file (one read)."""
    from edgeslim.onnxio.info import onnx_info, precision_family

    info = onnx_info(path)
    inp = info.input
    return {
        "opset": info.opset,
        "input": {"name": inp.name, "shape": inp.shape, "dtype": "float32", "layout": "NCHW"},
        "outputs": [{"name": o.name, "shape": o.shape} for o in info.outputs],
        "dynamic_batch": inp.dynamic_batch,
        "precision": precision_family(info.declared_precision),
        "graph_precision": info.precision,
        "meta": info.metadata,
    }


def build_bundle(
    run_dir: str | Path,
    out: str | Path,
    target: str,
    *,
    precision: str | None = None,
    batch: int | None = None,
    include_images: bool = True,
    calibration_cache: str | Path | None = None,
    tarball: bool = True,
    force: bool = False,
    **_: Any,
) -> dict[str, Any]:
    """Write the bundle for ``target`` from a finished run; return the manifest.

    ``out`` may be new, empty, or (with ``force``) an earlier bundle; nothing else is replaced
    (see ``outpath.check_bundle_out``). Without ``tarball`` an older ``out.tar.gz`` bundle
    tarball is removed so it cannot be mistaken for this bundle.

    Raises:
        InputError: the run has no ONNX, the target cannot run it, or ``out`` holds something
            that is not a bundle (the reason names the fix).
    """
    run_dir, out = Path(run_dir), Path(out)
    record = load_run(run_dir)
    st = onnx_stage(run_dir, record)
    onnx_path = run_dir / st["dir"] / st["onnx_file"]
    facts = _onnx_facts(onnx_path)
    prof = get_profile(target)
    calib = Path(calibration_cache) if calibration_cache else find_calibration_cache(run_dir)
    if calib is not None and not calib.is_file():
        raise InputError(f"calibration cache '{calib}' does not exist")
    run_prec = resolve_precision(prof, facts["precision"], precision, calib is not None)
    check_model(prof, facts["opset"], facts["dynamic_batch"], batch)
    check_fits_target(onnx_path, prof, f"{st['dir']}/{st['onnx_file']}")
    check_bundle_out(out, run_dir, force, tarball)
    with output_lock(out):
        check_bundle_out(out, run_dir, force, tarball)  # again: the folder may have changed
        use_cache = run_prec == "int8" and facts["precision"] == "fp32"
        try:
            with atomic_dir(out) as tmp:
                _copy_model(onnx_path, tmp)
                copy_runner(tmp)
                if use_cache and calib is not None:
                    shutil.copy2(calib, tmp / "calibration.cache")
                data = data_of(record) if include_images else _data_or_none(record)
                n_images = _write_images(data, tmp / "images") if include_images else 0
                manifest = _manifest(record, st, facts, prof, run_prec, batch, n_images, use_cache)
                manifest["runtime"] = verify_runtimes(onnx_path, manifest["runtime"], data, prof.threads)
                _write_texts(tmp, manifest, prof, facts, use_cache)
            if tarball:
                write_tarball(out)
            else:
                remove_stale_tarball(out)
        except OSError as exc:
            raise InputError(os_error_message(exc, f"writing the bundle '{out}'")) from exc
    return manifest


def check_fits_target(onnx_path: Path, prof: Profile, shown: str) -> None:
    """Refuse, before anything is written, a model the target's runtime would reject on the
    device (TensorRT: uint8 or non-zero-point QDQ, dynamic INT8, QOperator nodes, an opset it
    does not parse), naming the first offending node and the fix."""
    from edgeslim.deploy.compat import check_onnx_for_profile, first_problem_message

    problems = check_onnx_for_profile(onnx_path, prof)
    if problems:
        raise InputError(first_problem_message(problems, f"{shown} would be rejected on '{prof.name}'"))


def _write_texts(
    tmp: Path, manifest: dict[str, Any], prof: Profile, facts: dict[str, Any], use_cache: bool
) -> None:
    """build_engine.sh, README.md, then manifest.json with the sha256 of every other file."""
    prec = manifest["precision"]
    atomic_write_text(
        tmp / "build_engine.sh", build_engine_script(prof, facts, prec, manifest, use_cache)
    )
    os.chmod(tmp / "build_engine.sh", 0o755)
    atomic_write_text(tmp / "README.md", _readme(manifest, prof))
    manifest["files"] = {
        rel: sha256_file(p)
        for p in sorted(tmp.rglob("*"))
        if p.is_file() and (rel := p.relative_to(tmp).as_posix()) != "manifest.json"
    }
    atomic_write_json(tmp / "manifest.json", manifest)


def _copy_model(onnx_path: Path, tmp: Path) -> None:
    shutil.copy2(onnx_path, tmp / "model.onnx")
    side = onnx_path.with_name(onnx_path.name + ".data")
    if side.is_file():
        # the .onnx names its sidecar; keep that name so onnxruntime finds the weights
        from edgeslim.onnxio.export import finalize_onnx

        finalize_onnx(onnx_path, tmp / "model.onnx", simplify=False)


def write_tarball(folder: Path) -> Path:
    """DIR.tar.gz via a temp name (pid-tagged, so stale ones are recognised) and one rename."""
    dest = folder.with_name(folder.name + ".tar.gz")
    tmp = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    try:
        with tarfile.open(tmp, "w:gz") as tf:
            tf.add(folder, arcname=folder.name)
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def data_of(record: dict[str, Any]) -> Any:
    from edgeslim.data import build_data
    from edgeslim.data.build import recorded_data, recorded_norm
    from edgeslim.recipe import DataSpec

    # The run's own mean/std (they may come from the model's weights, not only from the recipe),
    # and its data.root as resolved when it ran (the command may run elsewhere).
    return build_data(DataSpec.model_validate(recorded_data(record)), int(record.get("seed", 0)),
                      recorded_norm(record))


def _data_or_none(record: dict[str, Any]) -> Any:
    """The run's data, or None when it cannot be rebuilt here (moved, deleted): a bundle built
    without images then says its runtimes were not verified."""
    try:
        return data_of(record)
    except (InputError, OSError):
        return None


def _write_images(data: Any, folder: Path) -> int:
    """The test split as PNG class folders; names keep split order so batches match the pipeline."""
    from edgeslim.deploy.bundle.images import write_png

    imgs, labels = data.test.images.numpy(), data.test.labels.numpy()
    for i, (img, y) in enumerate(zip(imgs, labels, strict=True)):
        d = folder / data.class_names[int(y)]
        d.mkdir(parents=True, exist_ok=True)
        write_png(d / f"{i:05d}.png", img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0))
    return len(labels)


def _manifest(
    record: dict[str, Any],
    st: dict[str, Any],
    facts: dict[str, Any],
    prof: Profile,
    prec: str,
    batch: int | None,
    n_images: int,
    use_cache: bool,
) -> dict[str, Any]:
    from edgeslim import __version__

    meta, m = facts["meta"], st.get("metrics", {})
    shape = meta.get("edgeslim.input_shape") or list(facts["input"]["shape"][1:])
    labels = meta.get("edgeslim.class_names") or st.get("class_names")
    if not labels:
        labels = data_of(record).class_names
    return {
        "schema": SCHEMA,
        "name": record.get("name"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "edgeslim_version": __version__,
        "recipe_hash": record.get("recipe_hash"),
        "source_stage": st["dir"],
        "precision": prec,
        "model_precision": facts["precision"],
        "model": {
            "file": "model.onnx",
            "opset": facts["opset"],
            "exporter": m.get("exporter"),
            "inputs": [{**facts["input"], "shape": [facts["input"]["shape"][0], *shape]}],
            "outputs": facts["outputs"],
            "dynamic_batch": facts["dynamic_batch"],
        },
        "engine_file": "model.engine",
        "calibration_cache": "calibration.cache" if use_cache else None,
        "preprocessing": _preprocessing(record, meta, shape),
        "labels": labels,
        "expected": _expected(record, m, n_images),
        "parity": {k: v for k, v in m.items() if k.startswith("parity")},
        "target": {**prof.to_json(), "batch": batch or prof.batch},
        "runtime": runtime_section(prof.runtime_order, facts["graph_precision"], prec, prof.threads,
                                   prof.ort_device, chosen=meta.get("edgeslim.runtime"), target_arch=prof.arch),
        "images": "images" if n_images else None,
    }


def _preprocessing(
    record: dict[str, Any], meta: dict[str, Any], shape: list[int]
) -> dict[str, Any]:
    mean, std = meta.get("edgeslim.mean"), meta.get("edgeslim.std")
    if mean is None or std is None:  # an ONNX from another stage without our metadata
        data = data_of(record)
        mean, std = data.mean, data.std
    return {
        "input": "uint8 image at the model's input size",
        "size": list(shape[1:]),
        "channels": int(shape[0]),
        "layout": "NCHW",
        "scale": "1/255",
        "mean": mean,
        "std": std,
        "formula": "x = (uint8 / 255 - mean) / std, float32, NCHW",
    }


def _expected(record: dict[str, Any], m: dict[str, Any], n_images: int) -> dict[str, Any]:
    return {
        "test_accuracy": m.get("test_accuracy"),
        "test_images": n_images or None,
        "eval_batch_size": int(record["recipe"]["data"].get("batch_size", 64)),
        "evaluated_on": m.get("evaluated_on"),
        "latency_ms": m.get("latency_ms"),
        "latency_batch": 1,
        "latency_threads": record["recipe"]["run"].get("threads"),
        "build_host": record.get("host"),
        "note": f"measured on the build host ({m.get('evaluated_on') or 'onnxruntime'}); "
        "rerun runner.py eval/bench on device",
    }


def build_engine_script(
    prof: Profile, facts: dict[str, Any], prec: str, manifest: dict[str, Any], use_cache: bool
) -> str:
    """The trtexec command that builds model.engine on the device (batch optimization profile)."""
    name = facts["input"]["name"]
    chw = "x".join(str(d) for d in manifest["model"]["inputs"][0]["shape"][1:])
    opt = manifest["target"]["batch"]
    flags = [
        "--onnx=model.onnx",
        "--saveEngine=model.engine",
        "--timingCacheFile=timing.cache",
        f"--memPoolSize=workspace:{prof.workspace_mb}",
    ]
    if facts["dynamic_batch"]:
        flags += [
            f"--minShapes={name}:1x{chw}",
            f"--optShapes={name}:{opt}x{chw}",
            f"--maxShapes={name}:{prof.max_batch}x{chw}",
        ]
    if prec == "fp16":
        flags.append("--fp16")
    elif prec == "int8":
        # QDQ models carry their scales (explicit quantization); fp16 speeds up float layers
        flags += ["--int8", "--fp16"] + (["--calib=calibration.cache"] if use_cache else [])
    lines = " \\\n  ".join(flags)
    cpu = (
        f"# {prof.name} runs model.onnx in onnxruntime: no engine is needed there. This script is\n"
        "# for moving the bundle to an NVIDIA GPU.\n"
        if prof.backend != "tensorrt"
        else ""
    )
    return f"""#!/bin/sh
# Build the TensorRT engine for {prof.name} ON THE DEVICE: an engine only runs on the GPU model
# and TensorRT version it was built with. Precision: {prec}.
{cpu}# Usage: sh build_engine.sh [extra trtexec flags]
set -eu
cd "$(dirname "$0")"
if command -v python3 >/dev/null 2>&1; then python3 runner.py verify; fi
TRTEXEC="${{TRTEXEC:-$(command -v trtexec || echo /usr/src/tensorrt/bin/trtexec)}}"
if [ ! -x "$TRTEXEC" ]; then
  echo "trtexec not found: install TensorRT (JetPack: /usr/src/tensorrt/bin) or set TRTEXEC" >&2
  exit 2
fi
"$TRTEXEC" \\
  {lines} "$@"
echo "built model.engine; run: python3 runner.py bench --backend tensorrt"
"""


def _readme(man: dict[str, Any], prof: Profile) -> str:
    exp, pre = man["expected"], man["preprocessing"]
    acc = f"{exp['test_accuracy']:.4f}" if exp.get("test_accuracy") is not None else "n/a"
    trt = (
        "\nBuild the TensorRT engine on the device first: `sh build_engine.sh` (trtexec), then\n"
        "`python3 runner.py bench --backend tensorrt` (needs tensorrt and cuda-python).\n"
        if prof.backend == "tensorrt"
        else ""
    )
    order = man["runtime"]["order"]
    pip = " ".join(n for n in order if n != "tensorrt") or "onnxruntime"
    return f"""# {man["name"]} for {prof.name}

{prof.description}. Precision: {man["precision"]}. Labels: {", ".join(man["labels"] or [])}.

Needs only Python 3 with numpy and one of: {", ".join(order)}. The runner uses the first of
these that is installed (in that order) and says on stderr when it falls back; `--backend NAME`
picks one, `runner.py backends` lists what this device can run.

    python3 -m venv venv && venv/bin/pip install numpy {pip}
    venv/bin/python -I runner.py verify                  # sha256 of every file vs manifest.json
    venv/bin/python -I runner.py eval --images images    # expected accuracy {acc} (build host)
    venv/bin/python -I runner.py classify images/*/00000.png
    venv/bin/python -I runner.py bench --iters 200       # one JSON line: median_ms, p90_ms, ...
{trt}
Input: {pre["formula"]}; size {pre["size"]}, {pre["channels"]} channel(s).
Every command verifies first and refuses to run (exit 3) when manifest.json is unreadable or
lacks its file table, a listed file is missing or differs, or an unlisted code file (.py, .so,
.pth, .sh, ...) sits anywhere in the bundle. runner.py never imports from its own folder or the
cwd; `-I` (recommended) also ignores PYTHONPATH and user site-packages, so install numpy and
onnxruntime in a venv or system-wide, not with `pip install --user`. Results you save here
(bench.json) and build_engine.sh's model.engine/timing.cache are allowed.
Built by edgeslim {man["edgeslim_version"]} from stage {man["source_stage"]}.
"""
