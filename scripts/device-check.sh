#!/usr/bin/env bash
# GPU checks, run once on a lent GPU machine (H100/H200) by the lead:
#   the image has python3 + torch + CUDA; edgeslim's pure-Python deps travel as wheels in .whl/.
# Results go to $OUT (JSON + logs). Each section is independent: one failing does not stop the rest.
set -u
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q --no-index --no-deps .whl/*.whl > "$OUT/pip.log" 2>&1
python3 -m pip install -q --no-deps --no-build-isolation -e . >> "$OUT/pip.log" 2>&1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.txt" 2>&1
python3 - <<'PY' > "$OUT/env.txt" 2>&1
import importlib, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.get_device_name(0))
for m in ("onnxruntime", "tensorrt", "onnx", "torch_pruning", "optuna", "pydantic"):
    try:
        mod = importlib.import_module(m); print(m, getattr(mod, "__version__", "?"))
    except Exception as e:
        print(m, "MISSING", type(e).__name__, e)
PY
# 1. every test that needs CUDA or TensorRT (they skip here with a reason when absent)
timeout 300 python3 -m pytest -q -m "cuda or tensorrt" -rs tests > "$OUT/pytest-gpu.txt" 2>&1
# --- sections added by each area below ---
