"""``edgeslim deploy RUN_DIR --target PROFILE --out DIR`` (writes DIR and DIR.tar.gz)"""

from __future__ import annotations

import argparse
import json


def _targets() -> str:
    from edgeslim.deploy.profiles import PROFILES

    return "\n".join(
        f"  {p.name:18s} {'/'.join(p.runtimes or (p.backend,)):20s} {'/'.join(p.precisions):14s} {p.description}"
        for p in PROFILES.values()
    )


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "deploy",
        help="write a self-contained edge bundle for a device profile",
        description="Bundle a run's newest ONNX model with manifest.json (sha256 of every "
        "file), a standalone runner.py (numpy + onnxruntime, openvino or tensorrt: the first of the "
        "target's runtimes installed on the device runs), build_engine.sh and "
        "the test images, for one target device.",
        epilog="targets:\n" + _targets() + "\nexample:\n  edgeslim deploy runs/demo --target "
        "raspberry-pi-5 --out bundles/demo-rpi5\n  cd bundles/demo-rpi5 && python3 -I runner.py "
        "eval --images images\nDIR must be new or empty; an earlier bundle there is replaced only "
        "with --force, anything else never.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run", metavar="RUN_DIR", help="a finished run folder (runs/<name>)")
    p.add_argument("--target", required=True, help="device profile (see targets below)")
    p.add_argument(
        "--out",
        required=True,
        help="bundle folder to write (DIR.tar.gz is written next to it); must be new, empty, "
        "or an earlier bundle (with --force)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an earlier edgeslim bundle in DIR / DIR.tar.gz (a folder or file that is "
        "not a bundle is never replaced)",
    )
    p.add_argument(
        "--precision",
        choices=["fp32", "fp16", "int8"],
        help="engine precision on TensorRT targets (default: the model's, else the target's)",
    )
    p.add_argument(
        "--batch",
        type=int,
        help="batch the runner benchmarks / engine opt shape (default: target's)",
    )
    p.add_argument(
        "--calibration-cache", help="TensorRT INT8 calibration cache (default: found in the run)"
    )
    p.add_argument(
        "--no-images", action="store_true", help="do not write the test split as PNG folders"
    )
    p.add_argument("--no-tar", action="store_true", help="skip DIR.tar.gz")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeslim.deploy.bundle.build import build_bundle
    from edgeslim.errors import InputError

    if args.batch is not None and args.batch < 1:
        raise InputError(f"--batch {args.batch} is not valid; give 1 or more")
    man = build_bundle(
        args.run,
        args.out,
        args.target,
        precision=args.precision,
        batch=args.batch,
        include_images=not args.no_images,
        calibration_cache=args.calibration_cache,
        tarball=not args.no_tar,
        force=args.force,
    )
    print(
        json.dumps(
            {
                "bundle": args.out,
                "tarball": None if args.no_tar else f"{args.out.rstrip('/')}.tar.gz",
                "target": args.target,
                "precision": man["precision"],
                "files": len(man["files"]),
                "expected_test_accuracy": man["expected"]["test_accuracy"],
            }
        )
    )
    return 0
