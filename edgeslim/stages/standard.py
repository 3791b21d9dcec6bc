"""What the runner does after every stage: save the model, measure the standard metrics, write meta.json."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgeslim.fsutil import atomic_write_json
from edgeslim.stages.context import StageContext, StageOutput, StageRecord

STANDARD = ("params", "macs", "size_bytes", "test_accuracy", "latency_ms")


def finish_stage(rec: StageRecord, out: StageOutput, ctx: StageContext, tmp: Path) -> None:
    """Fill ``rec`` from ``out`` and write ``meta.json`` last (its presence marks completion)."""
    from edgeslim.models.serialize import save_model

    if out.model is not None:
        save_model(out.model, tmp / "model.pt")
        rec.model_file = rec.artifact = "model.pt"
    if out.onnx is not None:
        rec.onnx_file = rec.artifact = Path(out.onnx).relative_to(tmp).as_posix()
    rec.class_names = out.class_names or ctx.class_names
    metrics: dict[str, Any] = {}
    if out.measure and (out.model is not None or out.onnx is not None):
        metrics = standard_metrics(out, ctx, tmp)
    metrics.update(out.metrics)
    _chance_check(metrics, ctx, out, rec.dir.name)
    rec.metrics, rec.status = metrics, "completed"
    meta = rec.to_json(ctx.run_dir)
    meta["dir"] = rec.dir.name
    atomic_write_json(tmp / "meta.json", meta)


def _chance_check(metrics: dict[str, Any], ctx: StageContext, out: StageOutput, name: str) -> None:
    """A model at or near chance level on the test split gets a loud warning (stage metrics,
    the log, and from there run.json, the table and report.md)."""
    from edgeslim.compress.guards import chance_warning

    acc = metrics.get("test_accuracy", metrics.get("test_top1"))
    if not isinstance(acc, (int, float)):
        return
    data = ctx.data(out.data)
    msg = chance_warning(float(acc), data.num_classes, len(data.test))
    if msg:
        metrics["chance_level"] = True
        metrics.setdefault("warnings", []).append(msg)
        ctx.reporter.warn(f"{name}: {msg}")


def standard_metrics(out: StageOutput, ctx: StageContext, tmp: Path) -> dict[str, Any]:
    """params, macs, size_bytes, test_accuracy (0..1) and latency_ms (median, batch 1); the test
    predictions go to ``test_predictions.npz``."""
    from edgeslim.measure import count_macs, count_params, predict, topk_metrics
    from edgeslim.onnxio.info import count_params as onnx_params
    from edgeslim.reporting.predictions import save_predictions
    from edgeslim.runtime import open_backend
    from edgeslim.runtime.timing import quick_latency_ms

    data = ctx.data(out.data)
    shape = data.input_shape
    model = out.model if out.model is not None else ctx.model
    m: dict[str, Any] = {}
    if hasattr(model, "state_dict"):  # an nn.Module (the stage's, or its parent for an ONNX output)
        m["params"], m["macs"] = count_params(model), count_macs(model, shape)
    else:  # a frozen source (FrozenModel): its graph has the figures
        model = None
    threads = ctx.recipe.run.threads
    if out.onnx is not None:
        from edgeslim.onnxio.info import count_macs as onnx_macs

        onnx_path = Path(out.onnx)
        m.setdefault("params", onnx_params(onnx_path))
        if "macs" not in m and (macs := onnx_macs(onnx_path, (1, *shape))) is not None:
            m["macs"] = macs
        m["size_bytes"] = onnx_path.stat().st_size
        backend, m["evaluated_on"] = onnx_backend(onnx_path, threads)
    else:
        m["size_bytes"] = (tmp / "model.pt").stat().st_size
        backend = open_backend(out.model, "torch", input_shape=tuple(shape), device=ctx.device.type)
        m["evaluated_on"] = "torch"
    logits, labels = predict(backend, data, "test", ctx.recipe.data.batch_size)
    ev = topk_metrics(logits, labels, data.num_classes)
    m["test_accuracy"], m["test_top5"], m["test_macro_f1"] = ev["top1"], ev["top5"], ev["macro_f1"]
    # Kept for the report (confusion matrix, per-class change of the final artifact): a few bytes
    # per test image instead of running the model again.
    save_predictions(tmp, logits.argmax(1), labels)
    m["latency_ms"] = round(quick_latency_ms(backend, shape, ctx.recipe.run.latency_iters), 4)
    m["latency_backend"] = m["evaluated_on"]  # which runtime measured latency_ms (never mixed silently)
    if model is not None:
        model.cpu()
    return m


def onnx_backend(path: Path, threads: int | None) -> tuple[Any, str]:
    """The runtime an ONNX ships in: the one its metadata names (``edgeslim.runtime``, written by
    the quantize stage's precision choice, e.g. openvino with the bf16 hint), else onnxruntime.
    Returns the opened backend and its name; a named runtime missing here falls back to onnxruntime."""
    from edgeslim.onnxio.info import read_metadata
    from edgeslim.runtime import open_backend
    from edgeslim.runtime.registry import unavailable_reason

    hint = read_metadata(path).get("edgeslim.runtime")
    name = hint.get("backend") if isinstance(hint, dict) else None
    if name == "openvino" and unavailable_reason(name) is None:  # CPU runtimes only: no engine build here
        prec = "bf16" if hint.get("precision") == "bf16" else None  # type: ignore[union-attr]
        return open_backend(path, name, threads=threads, precision=prec), name
    return open_backend(path, "onnxruntime", threads=threads), "onnxruntime"
