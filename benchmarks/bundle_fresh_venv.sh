#!/usr/bin/env bash
# Must-show: the demo's bundle, unpacked into a FRESH virtual environment holding only numpy and
# onnxruntime, evaluates the bundled demo test images and reproduces the manifest's test accuracy
# exactly. Writes benchmarks/results/bundle_fresh_venv.json; exit 1 when the accuracies differ.
#
#   benchmarks/bundle_fresh_venv.sh [RUN_DIR] [TARGET]
# Without RUN_DIR the demo recipe is run first (into a temp folder; about 3-5 minutes on 2 cores).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EDGESLIM="${EDGESLIM:-$ROOT/.venv/bin/edgeslim}"
TARGET="${2:-x86-cpu}"
WORK="$(mktemp -d /tmp/edgeslim-fresh-venv.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
if [ $# -ge 1 ]; then RUN="$1"; else
  "$EDGESLIM" run "$ROOT/recipes/demo.yaml" --output-dir "$WORK/runs" -q >/dev/null
  RUN="$WORK/runs/demo"
fi
"$EDGESLIM" deploy "$RUN" --target "$TARGET" --out "$WORK/build/bundle" >/dev/null
mkdir -p "$WORK/device" && tar -xzf "$WORK/build/bundle.tar.gz" -C "$WORK/device"
# the fresh venv: only numpy + onnxruntime (no torch, no edgeslim), as on a device
python3 -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install -q numpy onnxruntime
LIST="$("$WORK/venv/bin/pip" list --format=freeze | tr '\n' ' ')"
cd "$WORK/device/bundle"
EVAL="$("$WORK/venv/bin/python" runner.py eval --images images)"
"$WORK/venv/bin/python" - "$EVAL" "$LIST" "$TARGET" "$ROOT/benchmarks/results/bundle_fresh_venv.json" <<'PYEOF'
import json, sys
ev, pkgs, target, dest = json.loads(sys.argv[1]), sys.argv[2].split(), sys.argv[3], sys.argv[4]
man = json.load(open("manifest.json"))
want = man["expected"]["test_accuracy"]
res = {"target": target, "precision": man["precision"], "venv_packages": pkgs,
       "runner_accuracy": ev["accuracy"], "manifest_accuracy": want, "n": ev["n"],
       "exact_match": ev["accuracy"] == want, "torch_in_venv": any(p.startswith("torch") for p in pkgs)}
import os
os.makedirs(os.path.dirname(dest), exist_ok=True)
open(dest + ".tmp", "w").write(json.dumps(res, indent=1)); os.replace(dest + ".tmp", dest)
print(json.dumps(res))
sys.exit(0 if res["exact_match"] and not res["torch_in_venv"] else 1)
PYEOF
