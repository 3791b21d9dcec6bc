"""`import edgeslim` stays light: no torch, onnxruntime or tensorrt, no CUDA init."""

import subprocess
import sys

HEAVY = ("onnxruntime", "tensorrt", "torch", "optuna", "timm")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_import_edgeslim_is_light():
    mods = _modules_after("import edgeslim")
    assert not {m for m in HEAVY if m in mods}, mods & set(HEAVY)


def test_cli_parser_does_not_import_runtimes():
    # Building the parser imports every command module: each must import heavy things lazily.
    mods = _modules_after("from edgeslim.cli import build_parser; build_parser()")
    assert "onnxruntime" not in mods and "tensorrt" not in mods and "optuna" not in mods
