"""``edgeslim bench ARTIFACT [--backend NAME] [--json OUT] [--threads N] [--batch N[,N...]] [--remote user@host]``"""

from __future__ import annotations

import argparse
from typing import Any

EPILOG = """examples:
  edgeslim bench runs/demo/03-export/model.onnx
  edgeslim bench model.onnx --batch 1,8,32 --threads 2 --json bench.json
  edgeslim bench model.onnx --backend openvino --threads 2          (same ONNX, OpenVINO CPU)
  edgeslim bench model.onnx --backend openvino --precision bf16     (CPUs with native BF16)
  edgeslim bench runs/demo/01-finetune/model.pt --min-time 3
  edgeslim bench torchvision:resnet18 --image-size 224
  edgeslim bench bundle/ --remote pi@raspberrypi.local --known-hosts ~/.ssh/known_hosts
  edgeslim bench model.onnx --save-baseline main
      (writes .edgeslim/baselines/<host key>/main.json, measured as edgeslim check does)
  edgeslim bench --host-key          (prints this host's key, e.g. for a CI cache path)
exit codes: 0 ok, 1 failure, 2 bad input"""


def batch_list(text: str) -> list[int]:
    """argparse type for ``--batch 1,4,8``."""
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        vals = []
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"'{text}' is not a batch size list; use e.g. 1 or 1,4,8")
    return vals


def add_measure_args(p: argparse.ArgumentParser, min_time: float = 1.0) -> None:
    """Options shared by bench and check: how to open the artifact and how long to measure."""
    g = p.add_argument_group("measurement")
    g.add_argument(
        "--threads", type=int, default=None, help="intra-op threads (default: runtime's)"
    )
    g.add_argument("--inter-threads", type=int, default=None, help="inter-op threads")
    g.add_argument("--batch", type=batch_list, default=[1], help="batch size(s), e.g. 1 or 1,4,8")
    g.add_argument("--warmup", type=int, default=10, help="untimed calls first (default 10)")
    g.add_argument("--min-iters", type=int, default=50, help="timed calls at least (default 50)")
    g.add_argument(
        "--min-time",
        type=float,
        default=min_time,
        help=f"timed seconds at least (default {min_time:g})",
    )
    g.add_argument(  # names are checked by the runtime registry (third-party backends included)
        "--backend",
        default=None,
        metavar="NAME",
        help="runtime that runs the artifact: onnxruntime, openvino, torch, tensorrt (default: by "
        "file type: .onnx onnxruntime, .xml openvino, .engine tensorrt, .pt torch)",
    )
    g.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default=None,
        help="run in this precision where the runtime can: openvino fp32|bf16 (bf16 on CPUs with "
        "native BF16), torch on cuda fp16 (default: what the artifact holds)",
    )
    g.add_argument(
        "--provider", default="auto", help="onnxruntime: auto|cpu|cuda|tensorrt (auto: CUDA if present)"
    )
    g.add_argument("--device", default="cpu", help="torch artifacts: cpu|cuda")
    g.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="input size for torch models / ONNX with dynamic H,W",
    )
    g.add_argument("--in-chans", type=int, default=3, help="input channels of a registry model")
    g.add_argument("--checkpoint", default=None, help="weights for a registry-name artifact")
    g.add_argument(
        "--num-classes", type=int, default=None, help="classes of a registry-name artifact"
    )


def bench_options(args: argparse.Namespace):  # -> BenchOptions (import kept lazy)
    from edgeslim.deploy.gate.bench import BenchOptions
    from edgeslim.errors import InputError

    for name in ("threads", "inter_threads", "min_iters"):
        v = getattr(args, name)
        if v is not None and v < 1:
            raise InputError(f"--{name.replace('_', '-')} {v} is not valid; use a positive number")
    if args.warmup < 0 or args.min_time < 0:
        raise InputError("--warmup and --min-time must be >= 0")
    return BenchOptions(
        batches=args.batch,
        warmup=args.warmup,
        min_iters=args.min_iters,
        min_time_s=args.min_time,
        threads=args.threads,
        inter_threads=args.inter_threads,
        provider=args.provider,
        device=args.device,
        backend=args.backend,
        precision=args.precision,
        image_size=args.image_size,
        in_chans=args.in_chans,
        checkpoint=args.checkpoint,
        num_classes=args.num_classes,
    )


def register(sub: argparse._SubParsersAction) -> None:
    from edgeslim.deploy.gate.ssh import add_remote_args

    p = sub.add_parser(
        "bench",
        help="latency, throughput and memory of an artifact (local or over SSH)",
        description="Benchmark an .onnx (onnxruntime, or --backend openvino), OpenVINO .xml, "
        ".engine (TensorRT), edgeslim model.pt, bundle folder or registry model name.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "artifact", nargs="?",
        help=".onnx, OpenVINO .xml, .engine/.plan, model.pt, bundle/stage/run folder or model name",
    )
    p.add_argument(
        "--json", dest="json_out", default=None, help="write the full result (raw samples) here"
    )
    p.add_argument(
        "--save-baseline", default=None, metavar="BRANCH",
        help="store the result as this host's baseline of BRANCH: "
        "BASELINE_DIR/<host key>/BRANCH.json, for edgeslim check --baseline-json; measured with "
        "the gate's default threads unless --threads is given",
    )
    p.add_argument(
        "--baseline-dir", default=".edgeslim/baselines", metavar="DIR",
        help="root of stored baselines (default .edgeslim/baselines)",
    )
    p.add_argument("--host-key", action="store_true",
                   help="print this host's baseline key (machine-cpu-cores-hash) and exit")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the median")
    add_measure_args(p)
    add_remote_args(p)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from edgeslim.deploy.gate.bench import format_table, run_benchmark
    from edgeslim.fsutil import atomic_write_json

    if args.host_key:
        from edgeslim.deploy.gate.baseline import host_key

        print(host_key())
        return 0
    if not args.artifact:
        from edgeslim.errors import InputError

        raise InputError("bench needs an ARTIFACT (.onnx, .xml, .engine, model.pt, a folder or a "
                         "model name), or --host-key")
    opts = bench_options(args)
    save = _baseline_target(args, opts)
    from edgeslim.deploy.gate.bench import quiet_runtime_logs

    quiet_runtime_logs()
    check_out_file(args.json_out, "--json")
    check_out_file(save, "--save-baseline")
    from edgeslim.progress import Reporter

    reporter = Reporter(quiet=args.quiet)
    where = f" on {args.remote}" if args.remote else ""
    # no start line: a bad artifact stays a single error line with nothing on stdout
    with reporter.activity("bench", f"{args.artifact}{where}", spinner=False, announce=False) as finished:
        if args.remote:
            from edgeslim.deploy.gate.remote import remote_bench
            from edgeslim.deploy.gate.ssh import target_from_args

            result = remote_bench(target_from_args(args), args.artifact, opts)
        else:
            result = run_benchmark(args.artifact, opts, reporter=reporter)
        finished(f"median {result['median_ms']:.3f} ms")
    if args.json_out:
        write_out(atomic_write_json, args.json_out, result)
    saved_model = None
    if save:
        from edgeslim.deploy.gate.baseline import save_model

        write_out(atomic_write_json, save, result)
        # the model beside it (models/<branch>.onnx), so a host without a baseline can compare
        saved_model = write_out(lambda _path, _obj: save_model(args.artifact, args.save_baseline,
                                                               args.baseline_dir), save, None)
    if args.quiet:
        print(f"{result['median_ms']:.4f}")
    else:
        print(format_table(result))
        if args.json_out:
            print(f"result: {args.json_out}")
        if save:
            print(f"baseline: {save}" + (f"\nmodel:    {saved_model}" if saved_model else ""))
    return 0


def _baseline_target(args: argparse.Namespace, opts: Any) -> str | None:
    """Path of ``--save-baseline BRANCH``; the gate's default threads apply to it."""
    if not args.save_baseline:
        return None
    from edgeslim.deploy.gate.baseline import baseline_path

    if args.remote:
        from edgeslim.errors import InputError

        raise InputError("--save-baseline stores a baseline of this host; drop --remote (a "
                         "device's result can be kept with --json FILE)")
    if opts.threads is None:  # measured as `edgeslim check` would measure the candidate
        from edgeslim.deploy.gate.check import gate_threads

        opts.threads = gate_threads()
    return str(baseline_path(args.save_baseline, args.baseline_dir))


def check_out_file(path: str | None, flag: str) -> None:
    """Before a long measurement: ``path`` must be a file we can create (not a folder)."""
    import tempfile
    from pathlib import Path

    from edgeslim.errors import InputError

    if not path:
        return
    p = Path(path)
    if p.is_dir() or (p.exists() and not p.is_file()):
        raise InputError(f"{flag} '{p}' exists and is not a regular file; give a file name")
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=p.parent, prefix=".probe-"):
            pass
    except OSError as exc:
        raise InputError(
            f"{flag} '{p}' cannot be written ({exc.strerror or exc}); choose a writable path"
        ) from exc


def write_out(writer: Any, path: str, obj: Any) -> Any:
    """``writer(path, obj)`` with a full disk or a vanished folder as a one-line error."""
    from edgeslim.deploy.bundle.outpath import os_error_message
    from edgeslim.errors import InputError

    try:
        return writer(path, obj)
    except OSError as exc:
        raise InputError(os_error_message(exc, f"writing '{path}'")) from exc
