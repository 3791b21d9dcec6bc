"""``edgeslim info``: a model's params, MACs, size and layer summary."""

from __future__ import annotations

from pathlib import Path

from torch import nn


def load_for_info(name: str, checkpoint: str | None, num_classes: int | None, in_chans: int,
                  image_size: int) -> tuple[nn.Module, tuple[int, int, int]]:
    from edgeslim.models.registry import create_model

    if name.endswith(".pt") and Path(name).is_file():
        from edgeslim.models.serialize import load_model

        model = load_model(name)
        return model, (model._edgeslim_spec.get("in_chans", in_chans), image_size, image_size)
    kw = {"image_size": image_size} if name in ("tinyvit", "test_mlp") else {}
    model = create_model(name, num_classes=None if checkpoint else num_classes, in_chans=in_chans, **kw)
    if checkpoint:
        from edgeslim.models.checkpoint import load_weights_into

        load_weights_into(model, checkpoint, num_classes=num_classes)
    in_ch = in_chans if ":" not in name else 3
    return model.eval(), (in_ch, image_size, image_size)


def describe(model: nn.Module, shape: tuple[int, int, int], depth: int = 2, checkpoint: Path | None = None) -> str:
    from edgeslim.measure import count_macs, count_params, state_dict_bytes

    lines = [f"model:  {type(model).__name__}", f"input:  1x{shape[0]}x{shape[1]}x{shape[2]}",
             f"params: {count_params(model):,}", f"MACs:   {count_macs(model, shape):,}",
             f"size:   {state_dict_bytes(model):,} bytes (fp32 state dict)"]
    if checkpoint:
        lines.append(f"file:   {checkpoint} ({checkpoint.stat().st_size:,} bytes)")
    lines += ["", f"{'layer':<40} {'type':<22} {'params':>12}"]
    for name, mod in model.named_modules():
        if not name or name.count(".") >= depth:
            continue
        n = sum(p.numel() for p in mod.parameters())
        lines.append(f"{name:<40} {type(mod).__name__:<22} {n:>12,}")
    return "\n".join(lines)
