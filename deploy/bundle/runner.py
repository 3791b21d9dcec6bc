#!/usr/bin/env python3
"""Standalone edge runner: needs only numpy plus onnxruntime, openvino or tensorrt (no torch, no
edgeslim).

Shipped inside every deploy bundle next to ``edgeslim_portable.py`` (edgeslim's timing core and
session options, ``edgeslim.runtime.portable``, copied verbatim, so a device times a model with
the same code as ``edgeslim bench``) and ``edgeslim_images.py`` (PNG codec and preprocessing,
``edgeslim.deploy.bundle.images``) and ``edgeslim_backends.py`` (the onnxruntime, OpenVINO and
TensorRT classes and the choice among them, ``edgeslim.deploy.bundle.runner_backends``); also
importable as ``edgeslim.deploy.bundle.runner``.

    python runner.py verify                      check every file against manifest.json
    python runner.py backends                    one JSON line: which runtimes can run here
    python runner.py classify IMG [IMG ...]      one JSON line per image
    python runner.py eval --images DIR           DIR/<class>/<image>; one JSON line (accuracy, n)
    python runner.py bench [--iters N] ...       one JSON line (median_ms, p90_ms, ...)

Every command verifies first: manifest.json must list every file with its sha256; unlisted code
files are refused. As a script it never imports from its own folder or the cwd (``python3 -I``
also drops PYTHONPATH); the shipped modules are loaded by their paths, after verification.
Exit codes: 0 ok, 2 bad input or no inference library, 3 a tampered or invalid bundle.

Which runtime runs: ``--backend NAME`` (strict), else the first of the manifest's
``runtime.order`` whose library is installed (e.g. openvino, then onnxruntime on x86 CPUs),
saying so on stderr when it falls back. A bf16 entry (OpenVINO's BF16 hint) on a CPU without
native BF16 falls back too: to the next runtime of the order, else OpenVINO in fp32 (only an
explicit ``--precision bf16`` is refused there). ``EDGESLIM_RUNNER_DISABLE=openvino[,...]`` makes the
runner treat those runtimes as not installed (a debugging knob: try the fallback path on a
machine that has them).
"""

from __future__ import annotations

import os
import sys


def _isolate() -> None:
    """Before any other import: no sys.path entry for the script's folder or the cwd (a
    planted numpy.py or json.py there would run before verification); no bytecode written."""
    sys.dont_write_bytecode = True
    try:
        cwd = os.getcwd()
    except OSError:  # a deleted cwd: nothing to import from there
        cwd = ""
    drop = {os.path.realpath(os.path.dirname(os.path.abspath(__file__))), os.path.realpath(cwd)}
    sys.path[:] = [p for p in sys.path if p and os.path.realpath(p) not in drop]


if __name__ == "__main__":
    _isolate()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
from pathlib import Path  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

EXIT_INPUT, EXIT_TAMPERED = 2, 3
# unlisted files with these suffixes (anywhere in the bundle) could run as code: refused
CODE_EXTS = (".py", ".pyc", ".pyo", ".pyw", ".pyd", ".pyz", ".pth", ".so", ".dll", ".dylib",
             ".sh", ".egg", ".whl", ".zip")
PORTABLE = "edgeslim_portable.py"  # timing core, CPU probe, session options (edgeslim.runtime.portable)
IMAGES = "edgeslim_images.py"  # PNG codec and preprocessing (edgeslim.deploy.bundle.images)
BACKENDS_FILE = "edgeslim_backends.py"  # the runtime classes (edgeslim.deploy.bundle.runner_backends)


class RunnerError(Exception):
    """A problem the user can fix; ``code`` is the exit status."""

    def __init__(self, msg: str, code: int = EXIT_INPUT):
        super().__init__(msg)
        self.code = code


def _line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0][:300]


# ---------------------------------------------------------------- bundle


def _tampered(why: str) -> RunnerError:
    return RunnerError(f"tampered/invalid bundle: {why}; refusing to run: re-copy it", EXIT_TAMPERED)


def load_manifest(bundle: Path) -> dict:
    """manifest.json, checked for shape: a 'files' table of relative path -> sha256 that lists
    runner.py, edgeslim_portable.py and the model at least (anything else is exit 3)."""
    path = bundle / "manifest.json"
    if not path.is_file():
        raise RunnerError(
            f"no manifest.json in '{bundle}'; run this from an edgeslim bundle or pass --bundle DIR"
        )
    try:
        man = json.loads(path.read_bytes())
    except (OSError, ValueError, RecursionError) as exc:
        raise _tampered(f"manifest.json is not readable JSON ({type(exc).__name__})") from None
    files = man.get("files") if isinstance(man, dict) else None
    if not isinstance(files, dict) or not files:
        raise _tampered("manifest.json has no 'files' table (the sha256 of every file)")
    for rel, digest in files.items():
        ok = isinstance(digest, str) and len(digest) == 64 and set(digest) <= set("0123456789abcdef")
        if not ok or not rel or rel.startswith("/") or ".." in rel.split("/"):
            raise _tampered(f"manifest entry {rel!r} is not a relative path with a sha256")
    model = man.get("model")
    mfile = model.get("file") if isinstance(model, dict) else None
    if not isinstance(mfile, str) or mfile not in files or "runner.py" not in files or PORTABLE not in files:
        raise _tampered(f"manifest.json must list runner.py, {PORTABLE} and the model file")
    return man


def verify(bundle: Path, manifest: dict) -> int:
    """Every listed file against its sha256, then no unlisted code file; exit 3 otherwise."""
    files = manifest["files"]
    for rel, want in sorted(files.items()):
        p = bundle / rel
        if not p.is_file():
            raise _tampered(f"bundle file '{rel}' is missing (manifest lists it)")
        h = hashlib.sha256()
        with open(p, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
        if h.hexdigest() != want:
            raise _tampered(
                f"bundle file '{rel}' changed (sha256 {h.hexdigest()[:12]}... != manifest "
                f"{want[:12]}...)"
            )
    for root, _, names in os.walk(bundle):
        for n in sorted(names):
            rel = (Path(root) / n).relative_to(bundle).as_posix()
            code = n.lower().endswith(CODE_EXTS) or "__pycache__" in rel.split("/")
            if code and rel not in files:
                raise _tampered(f"'{rel}' is not listed in manifest.json and could run as code")
    return len(files)


def load_shipped(bundle: Path, manifest: dict, name: str = PORTABLE) -> ModuleType:
    """A module shipped in the bundle (edgeslim_portable.py, edgeslim_images.py, edgeslim_backends.py), loaded by its
    path. Call only after :func:`verify`: sys.path holds neither the bundle nor the cwd, so this
    is the one way bundle code is imported, and only once its sha256 has matched."""
    import importlib.util

    if name not in manifest["files"]:
        if name == IMAGES:
            raise RunnerError(f"this bundle has no {name} (a minimal bench bundle): only verify, backends and "
                              "bench work")
        raise RunnerError(f"this bundle has no {name}, which this runner needs: rebuild the bundle with the "
                          "edgeslim that wrote this runner.py (edgeslim deploy)", code=EXIT_TAMPERED)
    spec = importlib.util.spec_from_file_location(name[:-3], bundle / name)
    if spec is None or spec.loader is None:
        raise _tampered(f"{name} cannot be loaded")
    mod = importlib.util.module_from_spec(spec)
    keep, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no __pycache__ in the bundle
    try:
        spec.loader.exec_module(mod)
    finally:
        sys.dont_write_bytecode = keep
    return mod


# ---------------------------------------------------------------- backends


def shipped_backends(bundle: Path, manifest: dict) -> ModuleType:
    """edgeslim_backends.py: the runtime classes and the choice among them (its ``BACKENDS``
    table is the one list of runtimes a bundle can run)."""
    return load_shipped(bundle, manifest, BACKENDS_FILE)


def open_runner(bundle: Path, manifest: dict, args: argparse.Namespace, pt: ModuleType) -> Any:
    """The runtime that runs this bundle here (``edgeslim_backends.open_runner``): --backend is
    strict, else the first of the manifest's order that can run here, saying so when it falls back."""
    rb = shipped_backends(bundle, manifest)
    name = getattr(args, "backend", None)
    if name and name not in rb.BACKENDS:
        raise RunnerError(f"--backend {name} is not a runtime this bundle can use; give one of "
                          f"{', '.join(rb.BACKENDS)}")
    return rb.open_runner(bundle, manifest, args, pt, RunnerError)


# ---------------------------------------------------------------- commands


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _batches(xs: list[np.ndarray], size: int):
    for i in range(0, len(xs), size):
        yield np.stack(xs[i : i + size]).astype(np.float32)


def _labels_pre(man: dict) -> tuple[list, dict]:
    labels, pre = man.get("labels"), man.get("preprocessing")
    if not isinstance(labels, list) or not labels or not isinstance(pre, dict):
        raise RunnerError("this bundle has no labels/preprocessing (a minimal bench bundle): "
                          "only verify, backends and bench work")
    return labels, pre


def _images(bundle: Path, man: dict, fn: str, *a: Any) -> Any:
    """``fn`` of the bundle's edgeslim_images.py; its ImageError is the runner's exit 2."""
    im = load_shipped(bundle, man, IMAGES)
    try:
        return getattr(im, fn)(*a)
    except im.ImageError as exc:
        raise RunnerError(str(exc)) from None


def cmd_classify(bundle: Path, man: dict, args: argparse.Namespace, pt: ModuleType) -> int:
    run = open_runner(bundle, man, args, pt)
    labels, pre = _labels_pre(man)
    xs = _images(bundle, man, "load_preprocessed", args.images, pre)
    logits = np.concatenate([run.run(b) for b in _batches(xs, args.batch or 1)])
    for path, z in zip(args.images, logits, strict=True):
        p = _softmax(z.astype(np.float64))
        top = np.argsort(-p)[: min(5, len(p))]
        print(
            json.dumps(
                {
                    "image": str(path),
                    "label": labels[int(top[0])],
                    "index": int(top[0]),
                    "score": round(float(p[top[0]]), 6),
                    "top": [{"label": labels[int(i)], "score": round(float(p[i]), 6)} for i in top],
                }
            )
        )
    return 0


def cmd_eval(bundle: Path, man: dict, args: argparse.Namespace, pt: ModuleType) -> int:
    run = open_runner(bundle, man, args, pt)
    labels, pre = _labels_pre(man)
    items = _images(bundle, man, "labeled_images", Path(args.images), labels)
    xs = _images(bundle, man, "load_preprocessed", [f for f, _ in items], pre)
    y = np.array([c for _, c in items])
    batch = args.batch or int(man.get("expected", {}).get("eval_batch_size", 64))
    pred = np.concatenate([run.run(b).argmax(1) for b in _batches(xs, batch)])
    per = {labels[c]: round(float((pred[y == c] == c).mean()), 6) for c in np.unique(y)}
    out = {
        "accuracy": float((pred == y).mean()),
        "n": int(len(y)),
        "correct": int((pred == y).sum()),
        "per_class_accuracy": per,
        "expected_accuracy": man.get("expected", {}).get("test_accuracy"),
        "backend": run.name,
        "precision": run.precision,
        "batch": batch,
    }
    print(json.dumps(out))
    return 0


def host_info(run: Any, pt: ModuleType) -> dict:
    """CPU model and the flags that decide reduced precision, OS, Python and runtime versions."""
    feats = pt.cpu_features()
    info = {
        "cpu": feats["model"] or platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu_flags": sorted(k for k in pt.CPU_FLAGS if feats.get(k)),
        "onnxruntime": None,
        "openvino": None,
        "tensorrt": None,
    }
    info[run.name] = run.version
    if run.name != "onnxruntime":
        try:
            import onnxruntime

            info["onnxruntime"] = onnxruntime.__version__
        except ImportError:
            pass
    return info


def cmd_bench(bundle: Path, man: dict, args: argparse.Namespace, pt: ModuleType) -> int:
    run = open_runner(bundle, man, args, pt)
    batch = args.batch or int(man.get("target", {}).get("batch", 1))
    inputs = man["model"].get("inputs") or []
    shape = inputs[0]["shape"][1:] if inputs else run.input_shape()  # minimal bundles: ask the model
    x = np.random.default_rng(0).standard_normal((batch, *shape)).astype(np.float32)
    samples = pt.time_calls(lambda: run.run(x), args.warmup, args.iters, args.min_time)
    out = {
        "schema": pt.RESULT_SCHEMA,
        **pt.summarize(samples, batch),
        "samples_ms": [round(s, 4) for s in samples],
        "batch": batch,
        "threads": args.threads,
        "backend": run.name,
        "runtime_precision": run.precision,
        "providers": getattr(run, "providers", None),
        "model": man["model"]["file"],
        "precision": man.get("precision"),
        "host": host_info(run, pt),
    }
    print(json.dumps(out))
    return 0


def cmd_backends(bundle: Path, man: dict, args: argparse.Namespace, pt: ModuleType) -> int:
    print(json.dumps(shipped_backends(bundle, man).backends_report(bundle, man, pt)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description="Run an edgeslim bundle (numpy + onnxruntime, openvino or tensorrt)."
    )
    ap.add_argument("--bundle", default=str(Path(__file__).resolve().parent), help="bundle folder")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("verify", help="check every file's sha256 against manifest.json")
    sub.add_parser("backends", help="which runtimes can run this bundle here; one JSON line")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--backend", metavar="NAME",
                        help="onnxruntime, openvino or tensorrt (default: the first of the manifest's runtime "
                             "order installed here)")
    common.add_argument("--precision", choices=["fp32", "bf16"],
                        help="openvino inference precision (bf16 needs a CPU with native BF16)")
    common.add_argument("--threads", type=int, help="intra-op threads (default: the target's)")
    common.add_argument("--batch", type=int, help="batch size")
    c = sub.add_parser("classify", parents=[common], help="classify images; one JSON line each")
    c.add_argument("images", nargs="+")
    e = sub.add_parser("eval", parents=[common], help="accuracy on DIR/<class>/<image>")
    e.add_argument("--images", required=True)
    b = sub.add_parser("bench", parents=[common], help="latency; one JSON line")
    b.add_argument("--iters", type=int, default=50, help="at least this many timed calls")
    b.add_argument("--warmup", type=int, default=10)
    b.add_argument("--min-time", type=float, default=1.0, help="and at least this many seconds")
    return ap


def _check_args(args: argparse.Namespace) -> None:
    for name, low in (("batch", 1), ("iters", 1), ("warmup", 0), ("min_time", 0), ("threads", 0)):
        v = getattr(args, name, None)
        if v is not None and not v >= low:  # `not >=` also refuses nan
            raise RunnerError(f"--{name.replace('_', '-')} {v} is not valid; give {low} or more")


COMMANDS = {"classify": cmd_classify, "eval": cmd_eval, "bench": cmd_bench, "backends": cmd_backends}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bundle = Path(args.bundle)
    try:
        _check_args(args)
        man = load_manifest(bundle)
        n = verify(bundle, man)
        if args.cmd == "verify":
            print(json.dumps({"verified": n, "bundle": str(bundle), "ok": True}))
            return 0
        pt = load_shipped(bundle, man)  # only now: every file has matched its sha256
        if getattr(args, "threads", None) is None:
            args.threads = man.get("target", {}).get("threads")
        return COMMANDS[args.cmd](bundle, man, args, pt)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code
    except Exception as exc:  # on a device a one-line error beats a traceback
        if os.environ.get("EDGESLIM_TRACEBACK"):
            raise
        print(f"error: {type(exc).__name__}: {_line(exc)}", file=sys.stderr)
        return EXIT_INPUT


if __name__ == "__main__":
    sys.exit(main())
