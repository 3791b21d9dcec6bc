#!/usr/bin/env bash
# GPU checks, run once on a lent GPU machine (H100/H200) by the lead:
#   the image has python3 + torch + CUDA; edgeslim's pure-Python deps travel as wheels in .whl/.
# Results go to $OUT (JSON + logs). Each section is independent: one failing does not stop the rest.
set -u
# The device tool returns at most 8 files from $OUT: sections write into a scratch folder that is
# packed into one archive at the end (and the JSON summaries are printed).
FINAL=${OUT:-/tmp/out}; OUT=/tmp/devout; mkdir -p "$OUT" "$FINAL"
T0=$(date +%s); stamp() { echo "[$(( $(date +%s) - T0 ))s] $*" | tee -a "$OUT/timeline.txt"; }
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
stamp "installed; running GPU tests"
# 1. every test that needs CUDA or TensorRT (they skip here with a reason when absent)
timeout 300 python3 -m pytest -q -m "cuda or tensorrt" -rs tests > "$OUT/pytest-gpu.txt" 2>&1
# --- sections added by each area below ---
stamp "deploy section"
# --- deploy (issue 5): export on GPU host, parity GPU-torch vs ORT, ORT CUDA EP, TensorRT if present ---
timeout 300 python3 - > "$OUT/deploy-gpu.json" 2> "$OUT/deploy-gpu.log" <<'PY'
import importlib.util, json, time
import numpy as np, onnxruntime as ort, torch, torchvision
from edgeslim.deploy.export.parity import ParityConfig, fp32_parity, quant_parity
from edgeslim.onnxio.export import export_onnx
from edgeslim.runtime import open_backend
res = {"tensorrt_module": importlib.util.find_spec("tensorrt") is not None, "ort": ort.__version__,
       "ort_providers": ort.get_available_providers(), "gpu": torch.cuda.get_device_name(0)}
torch.manual_seed(0)
m = torchvision.models.resnet50().eval()
p = export_onnx(m, (3, 224, 224), "/tmp/r50.onnx").path
x = np.random.default_rng(0).standard_normal((8, 3, 224, 224)).astype(np.float32)
gpu = open_backend(m, "torch", input_shape=(3, 224, 224), device="cuda")  # cuDNN may use TF32: the relative gate must absorb it
for name, art in [("ort_cpu", open_backend(p))] + ([("ort_cuda", open_backend(p, device="cuda"))]
                                                   if "CUDAExecutionProvider" in res["ort_providers"] else []):
    rep = fp32_parity(gpu, art, x, ParityConfig(rtol=1e-3, batch_size=8), output_names=["logits"])
    res[f"torch_cuda_vs_{name}"] = {"passed": rep.passed, "summary": rep.summary()}
if res["tensorrt_module"]:
    from edgeslim.deploy.tensorrt import build_engine, plan_build
    for prec in ("fp32", "fp16"):
        t0 = time.time()
        meta = build_engine(plan_build(p, prec, opt_batch=8, max_batch=16), f"/tmp/r50-{prec}.engine",
                            timing_cache="/tmp/r50.timing")
        eng = open_backend(f"/tmp/r50-{prec}.engine")
        cfg = ParityConfig(rtol=1e-2 if prec == "fp16" else 1e-3, batch_size=8)
        rep = fp32_parity(gpu, eng, x, cfg, output_names=["logits"])
        q = quant_parity(gpu, eng, x, gpu.run(x).argmax(1), cfg)
        res[f"trt_{prec}"] = {"build_s": round(time.time() - t0, 1), "meta": {k: meta[k] for k in
                              ("tensorrt", "gpu", "compute_capability")}, "fp32_gate": rep.summary(),
                              "top1_agreement": q.metrics["top1_agreement"]}
print(json.dumps(res, indent=1))
PY
echo "deploy-gpu rc=$?" >> "$OUT/deploy-gpu.log"
stamp "bench section"
# --- bench (issue 6): bench on CUDA (torch + ORT CUDA EP when present), GPU memory, host fingerprint, gate ---
timeout 240 sh -c '
python3 -m edgeslim bench torchvision:resnet18 --image-size 224 --device cuda --batch 1,8 --min-time 2 \
  --json "$OUT/bench-torch-cuda.json" > "$OUT/bench-gpu.log" 2>&1
python3 -c "import torch,torchvision; from edgeslim.onnxio.export import export_onnx; \
export_onnx(torchvision.models.resnet18().eval(), (3,224,224), \"/tmp/r18.onnx\")" >> "$OUT/bench-gpu.log" 2>&1
python3 -m edgeslim bench /tmp/r18.onnx --provider auto --batch 1,8 --min-time 2 \
  --json "$OUT/bench-ort-auto.json" >> "$OUT/bench-gpu.log" 2>&1
python3 -m edgeslim check /tmp/r18.onnx /tmp/r18.onnx --provider auto --json "$OUT/check-gpu-self.json" \
  --markdown "$OUT/check-gpu-self.md" >> "$OUT/bench-gpu.log" 2>&1
echo "check exit $?" >> "$OUT/bench-gpu.log"'
stamp "compress section"
# --- compress (issue 4): symmetric-activation QDQ INT8 (PTQ) parses and builds in TensorRT ---
timeout 240 python3 - > "$OUT/compress-gpu.json" 2> "$OUT/compress-gpu.log" <<'PY'
import json, tempfile
from pathlib import Path
import numpy as np, torch, torchvision
from edgeslim.compress import quantize as Q
from edgeslim.onnxio.export import export_onnx
tmp = Path(tempfile.mkdtemp())
f32 = export_onnx(torchvision.models.resnet18().eval(), (3, 224, 224), tmp / "r18.onnx").path
calib = np.random.default_rng(0).standard_normal((16, 3, 224, 224)).astype(np.float32)
q = Q.quantize_static_qdq(Q.preprocess(f32, tmp / "p.onnx"), tmp / "q.onnx", calib,
                          Q.PtqSettings(symmetric_activations=True))
res = {"qdq_onnx_bytes": q.stat().st_size}
try:
    import tensorrt as trt
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    net = builder.create_network(0)
    parser = trt.OnnxParser(net, logger)
    res["parsed"] = bool(parser.parse(q.read_bytes()))
    cfg = builder.create_builder_config(); cfg.set_flag(trt.BuilderFlag.INT8)
    prof = builder.create_optimization_profile()
    prof.set_shape(net.get_input(0).name, (1, 3, 224, 224), (1, 3, 224, 224), (8, 3, 224, 224))
    cfg.add_optimization_profile(prof)
    res["engine_built"] = builder.build_serialized_network(net, cfg) is not None
except ImportError as e:
    res["tensorrt"] = f"missing: {e}"
print(json.dumps(res, indent=1))
PY
echo "compress-gpu rc=$?" >> "$OUT/compress-gpu.log"
stamp "finetune section"
# --- finetune (issue 3): the engine on CUDA: off/bf16/fp16 autocast train, images/s + final loss ---
timeout 240 python3 - > "$OUT/finetune-gpu.json" 2> "$OUT/finetune-gpu.log" <<'PY'
import json, torch
from edgeslim.data import build_data
from edgeslim.models.registry import create_model
from edgeslim.recipe import DataSpec
from edgeslim.train.config import TrainConfig
from edgeslim.train.engine import fit
data = build_data(DataSpec(source="digits", image_size=32, classes=[str(i) for i in range(5)]), 0)
res = {"gpu": torch.cuda.get_device_name(0)}
for amp in ("off", "bf16", "fp16", "off"):  # "off" twice: the first run warms up CUDA
    torch.manual_seed(0)
    m = create_model("tinyresnet", 5, 3)
    r = fit(m, data, TrainConfig(epochs=2, batch_size=64, amp=amp, tensorboard=False), device=torch.device("cuda"))
    res[amp] = {"images_per_s": r.history[-1]["train_images_per_s"], "train_loss": r.history[-1]["train_loss"],
                "test_top1": r.test["top1"]}
print(json.dumps(res, indent=1))
PY
echo "finetune-gpu rc=$?" >> "$OUT/finetune-gpu.log"
stamp "done"
for f in env.txt gpu.txt pytest-gpu.txt deploy-gpu.json bench-gpu.log compress-gpu.json finetune-gpu.json timeline.txt; do
  echo "=== $f"; tail -c 1500 "$OUT/$f" 2>/dev/null
done
tar czf "$FINAL/device-results.tgz" -C /tmp devout
