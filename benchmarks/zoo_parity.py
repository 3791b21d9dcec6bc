#!/usr/bin/env python3
"""FP32 export + parity gate across torchvision's classification zoo (random weights, no download).

Every torchvision classification model up to ``--max-params`` (150M) is exported with
edgeslim's exporter at its usual input size (the crop size of its default weights) and
checked against PyTorch with the FP32 parity gate, on images of edgeslim's synthetic test
split drawn at that size. One subprocess per model with a timeout, so a hang or an
out-of-memory kill becomes a recorded failure instead of ending the sweep. Results are
written to benchmarks/results/zoo_parity.json after every model; a rerun skips models
already done (``--redo`` to recompute). CPU-heavy: run it with ``nice -n 19`` and 1 thread.

    nice -n 19 .venv/bin/python benchmarks/zoo_parity.py --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results" / "zoo_parity.json"


def zoo(max_params: int) -> list[dict]:
    """Name, params and input size of each classification model <= max_params, smallest first."""
    from torchvision import models as tvm

    rows = []
    for name in tvm.list_models(module=tvm):
        w = tvm.get_model_weights(name).DEFAULT  # metadata only: nothing is downloaded
        size = w.transforms.keywords.get("crop_size", 224)
        if w.meta["num_params"] <= max_params:
            rows.append({"model": name, "params": int(w.meta["num_params"]), "input_size": int(size)})
    return sorted(rows, key=lambda r: r["params"])


def _randomize_zero_weights(model: Any) -> list[str]:
    """torchvision zero-initialises some heads (ViT): logits would be all 0 and parity vacuous."""
    import torch

    names = []
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() >= 2 and not p.any():
                p.normal_(0, 0.02)
                names.append(n)
    return names


def one(name: str, size: int, threads: int, samples: int, out: Path) -> None:
    """Child process: export one model and run the FP32 gate; write a JSON result to ``out``."""
    import torch

    torch.set_num_threads(threads)
    from torchvision import models as tvm

    from edgeslim.data import build_data
    from edgeslim.deploy.export.parity import ParityConfig, fp32_parity, split_inputs
    from edgeslim.onnxio.export import export_onnx
    from edgeslim.recipe import DataSpec
    from edgeslim.runtime import open_backend

    res: dict = {"model": name, "input_size": size}
    torch.manual_seed(0)
    model = tvm.get_model(name, weights=None).eval()
    _randomize_zero_weights(model)
    data = build_data(
        DataSpec(
            source="synthetic",
            image_size=size,
            synthetic_classes=4,
            synthetic_per_class=8,
            test_fraction=0.25,
            val_fraction=0.15,
        ),
        seed=0,
    )
    x, _ = split_inputs(data, samples)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        exp = export_onnx(
            model,
            (3, size, size),
            Path(tmp) / "m.onnx",
            18,
            True,
            {"edgeslim.class_names": [str(i) for i in range(1000)]},
        )
        res.update(
            exporter=exp.exporter,
            export_s=round(time.perf_counter() - t0, 1),
            onnx_mb=round(exp.path.stat().st_size / 2**20, 1),
            simplified=exp.simplified,
            nodes=exp.nodes_after,
            notes=exp.warnings,
        )
        # purely relative: random-init logits range from 1e-14 (efficientnet) to 1e8 (resnet152)
        cfg = ParityConfig(samples=samples, batch_size=samples, atol=0.0)
        rep = fp32_parity(
            open_backend(model, "torch", input_shape=(3, size, size)),
            open_backend(exp.path, "onnxruntime", threads=threads),
            x,
            cfg,
            output_names=["logits"],
        )
    o = rep.outputs[0]
    res.update(
        passed=rep.passed,
        n_inputs=rep.n_inputs,
        max_abs_err=o.max_abs_err,
        scale=o.scale,
        rel_err=o.rel_err,
        limit=o.limit,
        top1_agreement=o.top1_agreement,
        reason="" if rep.passed else rep.summary(),
        degenerate=o.scale == 0.0,  # all-zero outputs: the comparison would prove nothing
    )
    out.write_text(json.dumps(res))


def _load() -> dict:
    if RESULTS.is_file():
        try:
            return json.loads(RESULTS.read_text())
        except json.JSONDecodeError:
            pass
    return {"schema": "edgeslim.zoo_parity/1", "results": {}}


def _save(doc: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    tmp = RESULTS.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1))
    os.replace(tmp, RESULTS)


def _child(row: dict, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.json"
        cmd = [
            sys.executable,
            __file__,
            "--one",
            row["model"],
            "--size",
            str(row["input_size"]),
            "--threads",
            str(args.threads),
            "--samples",
            str(args.samples),
            "--child-out",
            str(out),
        ]
        env = {
            **os.environ,
            "OMP_NUM_THREADS": str(args.threads),
            "MKL_NUM_THREADS": str(args.threads),
        }
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
        except subprocess.TimeoutExpired:
            return {
                **row,
                "passed": False,
                "reason": f"timeout after {args.timeout} s (export + parity)",
                "wall_s": args.timeout,
            }
        wall = round(time.perf_counter() - t0, 1)
        if p.returncode == 0 and out.is_file():
            return {**row, **json.loads(out.read_text()), "wall_s": wall}
        tail = [ln for ln in (p.stderr or "").strip().splitlines() if ln.strip()][-1:] or [""]
        why = f"killed by signal {-p.returncode} (likely out of memory)" if p.returncode < 0 else tail[0][:400]
        return {**row, "passed": False, "reason": f"exit {p.returncode}: {why}", "wall_s": wall}


def _summary(doc: dict, every: list[dict]) -> dict:
    res = doc["results"]
    return {
        "done": len(res),
        "total": len(every),
        "passed": sum(bool(v.get("passed")) for v in res.values()),
        "failed": sorted(k for k, v in res.items() if not v.get("passed")),
        "max_rel_err": max((v.get("rel_err", 0.0) for v in res.values() if v.get("passed")), default=None),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--max-params", type=float, default=150e6)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--samples", type=int, default=4, help="test images per model")
    ap.add_argument("--timeout", type=int, default=900, help="seconds per model")
    ap.add_argument("--only", nargs="*", help="model names (default: the whole zoo)")
    ap.add_argument("--redo", action="store_true", help="recompute models already in the results")
    ap.add_argument("--retry-failed", action="store_true", help="recompute only models that failed")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--size", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        one(args.one, args.size, args.threads, args.samples, Path(args.child_out))
        return 0
    doc = _load()
    every = zoo(int(args.max_params))
    rows = [r for r in every if not args.only or r["model"] in args.only]
    for i, row in enumerate(rows):
        prev = doc["results"].get(row["model"])
        if prev is not None and not args.redo and not (args.retry_failed and not prev.get("passed")):
            continue
        r = _child(row, args)
        doc["results"][row["model"]] = r
        doc["summary"] = _summary(doc, every)
        _save(doc)
        flag = "PASS" if r.get("passed") else "FAIL"
        print(
            f"[{i + 1}/{len(rows)}] {row['model']:22s} {flag} "
            f"rel={r.get('rel_err', float('nan')):.2e} "
            f"{r.get('exporter', '-')} {r.get('wall_s')}s {r.get('reason', '')[:150]}",
            flush=True,
        )
    doc["summary"] = _summary(doc, every)
    _save(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
