"""Model figures every stage records: parameters, MACs, accuracy and latency.

ONNX files count their parameters in ``edgeslim.onnxio.info.count_params``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from edgeslim.data.bundle import DataBundle


def count_params(model: nn.Module) -> int:
    return int(sum(p.numel() for p in model.parameters()))


def state_dict_bytes(model: nn.Module) -> int:
    """Bytes of the model's state dict as torch.save writes it (its size on disk)."""
    import io

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return len(buf.getvalue())


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Multiply-accumulates for one image (batch 1), from torch's FLOP counter (MACs = FLOPs/2).

    Counted with autograd on: under no_grad, eval-mode attention takes a fused fast path that
    the counter does not see (a ViT would read 30% low).
    """
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    try:
        dev = next((p.device for p in model.parameters()), torch.device("cpu"))
        with torch.enable_grad(), FlopCounterMode(display=False) as fc:
            model(torch.zeros(1, *input_shape, device=dev))
        return int(fc.get_total_flops() // 2)
    finally:
        model.train(was_training)


def topk_metrics(logits: np.ndarray, labels: np.ndarray, num_classes: int) -> dict[str, Any]:
    """top-1, top-5, macro-F1, per-class accuracy and confusion matrix from logits."""
    pred = logits.argmax(1)
    k = min(5, logits.shape[1])
    top5 = np.any(np.argsort(-logits, 1)[:, :k] == labels[:, None], 1).mean()
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, pred), 1)
    tp = np.diag(cm).astype(float)
    prec = tp / np.maximum(cm.sum(0), 1)
    rec = tp / np.maximum(cm.sum(1), 1)
    f1 = np.where(prec + rec > 0, 2 * prec * rec / np.maximum(prec + rec, 1e-12), 0.0)
    return {"top1": float((pred == labels).mean()), "top5": float(top5), "macro_f1": float(f1.mean()),
            "per_class_accuracy": [round(float(v), 4) for v in rec], "confusion_matrix": cm.tolist(),
            "n": int(len(labels))}


def predict(backend: Any, data: DataBundle, split: str = "test", batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Logits of a backend (anything with ``run(np.ndarray) -> np.ndarray``) on a split."""
    x, y = data.dataset(split).tensors()
    outs = [backend.run(x[i:i + batch_size].numpy()) for i in range(0, len(x), batch_size)]
    return np.concatenate(outs), y.numpy()


def evaluate(backend: Any, data: DataBundle, split: str = "test", batch_size: int = 64) -> dict[str, Any]:
    logits, labels = predict(backend, data, split, batch_size)
    return topk_metrics(logits, labels, data.num_classes)
