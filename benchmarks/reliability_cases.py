"""The bad-input catalog of benchmarks/reliability_campaign.py: data, plus the few builders it needs.

Each case is one command that must be refused: exit code 2 (3 for a tampered bundle), a single
``error:`` line on stderr (no traceback), and nothing lost (every file that was in the case's
folder before the command is still there, unchanged; ``forbid`` paths never appear). Cases are
rows of tables below; a new case is a new row, not new code.

Placeholders in ``argv``: ``{case}`` the case folder, ``{ref}`` a private copy of the reference
run, ``{onnx}`` a good ONNX file, ``{bundle}`` a private copy of an edge bundle.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
import shutil
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DELETE = object()  # a mutation value: remove the key


@dataclass
class Env:
    """Shared artifacts the setups copy from (built once by the campaign)."""

    ref_run: Path | None = None  # a finished run folder (finetune .. export)
    onnx: Path | None = None  # its exported FP32 model.onnx
    bundle: Path | None = None  # an x86-cpu bundle of it
    killed_run: Path | None = None  # a run folder killed mid-training (has .resume/*/state.pt)
    kill_recipe: dict | None = None  # the recipe of killed_run (its run.name names the folder)


@dataclass
class Case:
    name: str
    group: str
    argv: list[str]  # after `python -m edgeslim` (or after `python -I runner.py` when runner)
    setup: Callable[[Path, Env], None] | None = None
    expect: tuple[int, ...] = (2,)
    mention: tuple[str, ...] = ()  # substrings the error line must contain (case-insensitive)
    forbid: tuple[str, ...] = ()  # paths under the case folder that must not exist afterwards
    cwd: str = "."  # relative to the case folder
    runner: bool = False
    needs: tuple[str, ...] = ()  # Env fields the case needs (skipped when missing)
    env: dict[str, str] = field(default_factory=dict)
    timeout: float = 180.0
    pipe_head: bool = False  # read one stdout line, then close the pipe (BrokenPipe handling)
    mutable: tuple[str, ...] = ()  # paths under the case folder the command may legitimately change


# ----------------------------------------------------------------------------- small builders

BASE_RECIPE: dict[str, Any] = {
    "run": {"name": "bad", "output_dir": "{case}/runs", "seed": 0, "threads": 1, "latency_iters": 5},
    "model": {"source": "tinycnn", "kwargs": {"width": 4, "depth": 1}},
    "data": {"source": "synthetic", "image_size": 16, "synthetic_classes": 3, "synthetic_per_class": 12,
             "val_fraction": 0.25, "test_fraction": 0.25},
    "stages": [{"stage": "finetune", "train": {"epochs": 1, "batch_size": 8, "max_steps_per_epoch": 1,
                                               "tensorboard": False, "optimizer": {"name": "adamw", "lr": 0.001},
                                               "schedule": {"name": "constant"}}}],
}


def _fill(obj: Any, case: Path) -> Any:
    if isinstance(obj, str):
        return obj.replace("{case}", str(case))
    if isinstance(obj, list):
        return [_fill(v, case) for v in obj]
    if isinstance(obj, dict):
        return {k: _fill(v, case) for k, v in obj.items()}
    return obj


def _walk(d: Any, path: str) -> tuple[Any, Any]:
    parts = path.split(".")
    for p in parts[:-1]:
        d = d[int(p)] if isinstance(d, list) else d.setdefault(p, {})
    last = parts[-1]
    return d, int(last) if isinstance(d, list) else last


def recipe_with(*ops: tuple, extra_stages: list | None = None) -> Callable[[Path, Env], None]:
    """Setup writing {case}/r.yaml: BASE_RECIPE with ops ("set", path, value) / ("rename", path, new)."""

    def setup(case: Path, env: Env) -> None:
        import yaml

        r = copy.deepcopy(BASE_RECIPE)
        if extra_stages:
            r["stages"] += copy.deepcopy(extra_stages)
        for op, path, val in ops:
            parent, key = _walk(r, path)
            if op == "rename":
                parent[val] = parent.pop(key)
            elif val is DELETE:
                del parent[key]
            else:
                parent[key] = val
        (case / "r.yaml").write_text(yaml.safe_dump(_fill(r, case), sort_keys=False, allow_unicode=True))

    return setup


def raw_file(name: str, content: bytes | str | Callable[[Path], bytes | str]) -> Callable[[Path, Env], None]:
    def setup(case: Path, env: Env) -> None:
        data = content(case) if callable(content) else content
        data = data.encode() if isinstance(data, str) else data
        (case / name).write_bytes(data)

    return setup


def both(*setups: Callable[[Path, Env], None]) -> Callable[[Path, Env], None]:
    def setup(case: Path, env: Env) -> None:
        for s in setups:
            s(case, env)

    return setup


def _base_yaml(case: Path) -> str:
    import yaml

    return yaml.safe_dump(_fill(BASE_RECIPE, case), sort_keys=False)


def _bomb(levels: int = 9, fan: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fan) + "]")
    return "\n".join(lines)


def alias_bomb_in(where: str) -> Callable[[Path], str]:
    """A billion-laughs recipe whose expansion lands in model.kwargs / search / stages."""

    def make(case: Path) -> str:
        base = _base_yaml(case)
        anchors = "x-anchors:\n" + "\n".join("  " + ln for ln in _bomb().splitlines()) + "\n"
        last = "*a8"
        if where == "kwargs":
            return anchors + base.replace("kwargs:\n", f"kwargs:\n    bomb: {last}\n", 1)
        if where == "search":
            return anchors + base + f"search:\n  trials: 1\n  params: {last}\n"
        return anchors + base.replace("stages:\n", f"stages:\n- stage: finetune\n  label: {last}\n", 1)

    return make


def mkfifo(rel: str) -> Callable[[Path, Env], None]:
    def setup(case: Path, env: Env) -> None:
        p = case / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(p)

    return setup


def _png(w: int, h: int, rgb: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    """A valid solid-colour RGB PNG, built by hand (the header is what Pillow checks first)."""

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * w
    raw = zlib.compress(row * h, 9) if w * h <= 4096 * 4096 else zlib.compress(row, 9)  # bomb: header only
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def image_folder(bad: dict[str, bytes | str | None] | None = None, classes: tuple[str, ...] = ("a", "b"),
                 per_class: int = 6) -> Callable[[Path, Env], None]:
    """{case}/imgs/<class>/*.png good images plus ``bad`` {relpath: bytes | "fifo" | "dir" | "loop" | None}."""

    def setup(case: Path, env: Env) -> None:
        root = case / "imgs"
        root.mkdir(exist_ok=True)
        for ci, c in enumerate(classes):
            (root / c).mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                (root / c / f"{i}.png").write_bytes(_png(20, 20, (40 * ci + 20, 10 * i, 90)))
        for rel, what in (bad or {}).items():
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            if what == "fifo":
                os.mkfifo(p)
            elif what == "dir":
                p.mkdir()
            elif what == "loop":
                p.symlink_to(p.name)
            elif what is None:
                p.write_bytes(b"")
            else:
                p.write_bytes(what.encode() if isinstance(what, str) else what)

    return setup


def imagefolder_recipe(**data: Any) -> Callable[[Path, Env], None]:
    return recipe_with(("set", "data", {"source": "imagefolder", "root": "{case}/imgs", "image_size": 16,
                                        "val_fraction": 0.25, "test_fraction": 0.25, **data}))


class _Evil:
    """Unpickling runs os.system: a checkpoint must never be unpickled (the marker must not appear)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return (os.system, (f"touch {self.marker}",))


def checkpoint(kind: str) -> Callable[[Path, Env], None]:
    """{case}/c.pt (or c.safetensors) holding a bad checkpoint of ``kind``."""

    def setup(case: Path, env: Env) -> None:
        p = case / "c.pt"
        if kind == "garbage":
            p.write_bytes(os.urandom(2048))
        elif kind == "empty":
            p.write_bytes(b"")
        elif kind == "pickle":
            p.write_bytes(pickle.dumps({"state_dict": _Evil(str(case / "pwned"))}))
        elif kind == "json":
            p.write_text(json.dumps({"fc.weight": [[1.0]]}))
        elif kind == "dir":
            p.mkdir()
        elif kind in ("wrong_shape", "truncated"):
            import torch

            from edgeslim.models import create_model

            torch.save(create_model("tinycnn", num_classes=10, width=16, depth=2).state_dict(), p)
            if kind == "truncated":
                p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
        elif kind == "safetensors":
            (case / "c.safetensors").write_bytes(b"\xff\xff\x00\x00not safetensors at all")
        elif kind == "symlink_loop":
            p.symlink_to("c.pt")

    return setup


CKPT_FILE = {"safetensors": "c.safetensors"}


def bad_onnx(kind: str) -> Callable[[Path, Env], None]:
    def setup(case: Path, env: Env) -> None:
        p = case / "m.onnx"
        if kind == "empty":
            p.write_bytes(b"")
        elif kind == "text":
            p.write_text("this is not a model\n")
        elif kind == "random":
            p.write_bytes(os.urandom(4096))
        elif kind == "truncated":
            assert env.onnx is not None
            b = env.onnx.read_bytes()
            p.write_bytes(b[: len(b) // 2])
        elif kind == "dir":
            p.mkdir()
        elif kind == "no_inputs":
            import onnx
            from onnx import TensorProto, helper

            y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
            const = helper.make_node("Constant", [], ["y"], value=helper.make_tensor("v", TensorProto.FLOAT, [1, 4],
                                                                                       [0.0] * 4))
            onnx.save(helper.make_model(helper.make_graph([const], "g", [], [y])), str(p))

    return setup


def copy_ref(case: Path, env: Env) -> None:
    assert env.ref_run is not None
    shutil.copytree(env.ref_run, case / "ref", symlinks=True)


def copy_onnx(case: Path, env: Env) -> None:
    assert env.onnx is not None
    shutil.copy2(env.onnx, case / "good.onnx")


def ref_with(fn: Callable[[Path], None]) -> Callable[[Path, Env], None]:
    def setup(case: Path, env: Env) -> None:
        copy_ref(case, env)
        fn(case / "ref")

    return setup


def precious(rel: str, text: str = "precious\n") -> Callable[[Path, Env], None]:
    def setup(case: Path, env: Env) -> None:
        p = case / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    return setup


def tampered_bundle(kind: str) -> Callable[[Path, Env], None]:
    """{case}/bundle: a copy of the reference bundle, tampered with as ``kind`` says."""

    def setup(case: Path, env: Env) -> None:
        assert env.bundle is not None
        b = case / "bundle"
        shutil.copytree(env.bundle, b, symlinks=True)
        man_path = b / "manifest.json"
        man = json.loads(man_path.read_text())
        marker = case / "pwned"
        plant = f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\n"
        if kind == "no_files":
            man.pop("files", None)
        elif kind == "files_list":
            man["files"] = sorted(man.get("files", {}))
        elif kind == "files_empty":
            man["files"] = {}
        elif kind == "traversal":
            man.setdefault("files", {})["../outside.txt"] = "0" * 64
        elif kind == "hash_changed":
            man["files"]["model.onnx"] = "0" * 64
        elif kind == "model_unlisted":
            man["files"].pop("model.onnx", None)
        if kind in ("no_files", "files_list", "files_empty", "traversal", "hash_changed", "model_unlisted"):
            man_path.write_text(json.dumps(man, indent=1))
        elif kind == "garbage_manifest":
            man_path.write_text("{not json")
        elif kind == "manifest_list":
            man_path.write_text("[1, 2, 3]")
        elif kind == "no_manifest":
            man_path.unlink()
        elif kind == "model_flipped":
            data = bytearray((b / "model.onnx").read_bytes())
            data[len(data) // 2] ^= 0xFF
            (b / "model.onnx").write_bytes(bytes(data))
        elif kind == "model_deleted":
            (b / "model.onnx").unlink()
        elif kind in ("numpy_py", "onnxruntime_py", "json_py"):
            (b / f"{kind[:-3]}.py").write_text(plant)
        elif kind == "extra_py":
            (b / "helper.py").write_text(plant)
        elif kind == "sitecustomize":
            (b / "sitecustomize.py").write_text(plant)
        elif kind == "image_changed":
            img = next(p for p in sorted((b / "images").rglob("*")) if p.is_file())
            img.write_bytes(img.read_bytes() + b"\x00")

    return setup


def baseline_json(content: Any) -> Callable[[Path, Env], None]:
    def setup(case: Path, env: Env) -> None:
        copy_onnx(case, env)
        p = case / "base.json"
        if content == "dir":
            p.mkdir()
        elif isinstance(content, (bytes, str)):
            raw_file("base.json", content)(case, env)
        else:
            p.write_text(json.dumps(content))

    return setup


def corrupt_killed_run(case: Path, env: Env) -> None:
    """{case}/<name>: a copy of the killed run with garbage state.pt files; {case}/r.yaml its recipe."""
    import yaml

    assert env.killed_run is not None and env.kill_recipe is not None
    recipe = copy.deepcopy(env.kill_recipe)
    recipe["run"]["output_dir"] = str(case)
    shutil.copytree(env.killed_run, case / recipe["run"]["name"], symlinks=True)
    for st in (case / recipe["run"]["name"]).glob(".resume/*/state.pt"):
        st.write_bytes(b"\x00garbage")
    (case / "r.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
