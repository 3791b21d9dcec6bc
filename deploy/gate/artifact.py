"""Opening what ``edgeslim bench``/``check`` time: ONNX, OpenVINO IR, TensorRT engines, model.pt,
registry names.

Every artifact becomes a backend of the runtime layer (``edgeslim.runtime.open_backend``: by
``--backend``, else by file type) plus what a result records about it: input shape (read from
the model), fixed batch size, file size, params, MACs, threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edgeslim.errors import InputError

if TYPE_CHECKING:
    from edgeslim.deploy.gate.bench import BenchOptions

MODEL_FILES = ("model.onnx", "model.xml", "model.engine", "model.plan", "model.pt")
TORCH_FILES = (".pt", ".pth", ".pt2", ".ts", ".jit")


@dataclass
class Artifact:
    """An opened artifact: a backend with ``run(np.ndarray)`` plus what the result records."""

    name: str
    kind: str  # onnx | openvino-ir | tensorrt | torch (what the file is; backend_name runs it)
    backend: Any
    input_shape: tuple[int, ...]
    fixed_batch: int | None = None
    size_bytes: int | None = None
    params: int | None = None
    macs: int | None = None
    sha256: str | None = None
    providers: list[str] | None = None
    threads: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"

    @property
    def backend_name(self) -> str:
        return str(getattr(self.backend, "name", self.kind))

    def runtime(self) -> dict[str, Any]:
        """The backend's own description (name, version, device, precision, options)."""
        describe = getattr(self.backend, "describe", None)
        return describe() if describe else {"name": self.backend_name}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "size_bytes": self.size_bytes,
            "params": self.params,
            "macs": self.macs,
            "sha256": self.sha256,
            "input_shape": list(self.input_shape),
        }


def resolve_artifact(spec: str | os.PathLike) -> Path | str:
    """A file, the model file in a bundle/stage folder, or a registry name (returned as str)."""
    p = Path(spec)
    if p.is_dir():
        import json

        manifest = p / "manifest.json"
        if manifest.is_file():
            try:
                meta = json.loads(manifest.read_text())
            except ValueError as exc:
                raise InputError(f"bundle manifest '{manifest}' is not valid JSON ({exc})") from exc
            for key in ("model", "artifact", "model_file", "file"):
                name = meta.get(key) if isinstance(meta, dict) else None
                if isinstance(name, dict):  # deploy bundle: {"model": {"file": ...}}
                    name = name.get("file")
                if isinstance(name, str) and (p / name).is_file():
                    return p / name
        for name in MODEL_FILES:
            if (p / name).is_file():
                return p / name
        if (p / "run.json").exists():
            return _run_artifact(p)
        raise InputError(
            f"folder '{p}' holds no model file ({', '.join(MODEL_FILES)}); "
            "pass the .onnx/.engine/model.pt file itself"
        )
    if p.is_file():
        return p
    # "nets/mynet.py:Net" names a user's class (a model source), not a missing file.
    if (p.suffix in (".onnx", ".xml", ".engine", ".plan", ".pt", ".pth") or os.sep in str(spec)) and ":" not in p.name:
        raise InputError(
            f"artifact '{spec}' does not exist; pass an .onnx, OpenVINO .xml, .engine/.plan, model.pt, "
            "a bundle folder or a registry name (edgeslim models lists them)"
        )
    return str(spec)


def open_artifact(spec: str | os.PathLike, opts: BenchOptions) -> Artifact:
    """Open what ``spec`` names for timing (see :func:`resolve_artifact`) in ``opts.backend``
    (default: by file type: .onnx onnxruntime, .xml openvino, .engine tensorrt, .pt torch)."""
    from edgeslim.fsutil import sha256_file

    target = resolve_artifact(spec)
    backend = choose_backend(target, opts.backend)
    if isinstance(target, str):
        return _open_registry(target, opts)
    if backend == "torch":
        art = _open_model_pt(target, opts)
    elif target.suffix == ".onnx":
        art = _open_onnx(target, backend, opts)
    else:  # an engine (tensorrt) or an OpenVINO IR: shapes come from the compiled model
        be = _open(target, backend, opts)
        art = Artifact(str(target), _KINDS.get(target.suffix, target.suffix.lstrip(".")), be,
                       tuple(be.input_shape()), threads=_threads(opts), device=be.describe()["device"])
    art.size_bytes, art.sha256 = target.stat().st_size, sha256_file(target)
    return art


_KINDS = {".onnx": "onnx", ".xml": "openvino-ir", ".engine": "tensorrt", ".plan": "tensorrt"}


def choose_backend(target: Path | str, wanted: str | None) -> str:
    """``wanted`` when it can open ``target``, else the default for the file type; InputError
    (one line, with what it can open) when it cannot."""
    from edgeslim.runtime.providers import BACKENDS
    from edgeslim.runtime.registry import backend_for_artifact, backend_names

    if isinstance(target, str):  # a registry name: built in torch here
        if wanted not in (None, "torch"):
            raise InputError(f"'{target}' is a model name, which runs in torch; --backend {wanted} needs a "
                             f"file: export it first (edgeslim export {target} --out model.onnx)")
        return "torch"
    if wanted is None:
        return "torch" if target.suffix in TORCH_FILES else backend_for_artifact(target)
    if wanted not in backend_names():
        from edgeslim.errors import unknown_name

        raise unknown_name("backend", wanted, backend_names())
    if wanted not in BACKENDS:  # a registered third-party backend: it judges the file itself
        return wanted
    opens = BACKENDS[wanted].artifacts
    if target.suffix not in opens and not (wanted == "torch" and target.suffix in TORCH_FILES):
        files = ", ".join(s for s in opens if s.startswith("."))
        raise InputError(f"--backend {wanted} cannot run '{target.name}': it opens {files} files; "
                         f"drop --backend to use {_default_name(target)}")
    return wanted


def _default_name(target: Path) -> str:
    try:
        return choose_backend(target, None)
    except InputError:
        return "the file type's default"


def _threads(opts: BenchOptions) -> dict[str, Any]:
    return {"intra": opts.threads or "default", "inter": opts.inter_threads or "default"}


def _open(path: Path, backend: str, opts: BenchOptions, **kw: Any) -> Any:
    from edgeslim.runtime import open_backend

    device = "cuda" if backend == "tensorrt" else "cpu"
    return open_backend(path, backend, threads=opts.threads, inter_threads=opts.inter_threads,
                        precision=opts.precision, device=kw.pop("device", device), **kw)


def _ort_device(provider: str) -> str:
    """onnxruntime device preset for --provider (auto: CUDA when this onnxruntime has it)."""
    from edgeslim.errors import require, unknown_name
    from edgeslim.runtime.providers import ORT_PRESETS

    if provider == "auto":
        ort = require("onnxruntime", "onnx")
        return "cuda" if ORT_PRESETS["cuda"][0] in ort.get_available_providers() else "cpu"
    if provider not in ORT_PRESETS:
        raise unknown_name("provider", provider, ["auto", *ORT_PRESETS])
    return provider


def _open_onnx(path: Path, backend: str, opts: BenchOptions) -> Artifact:
    from edgeslim.onnxio.info import count_macs, onnx_info

    info = onnx_info(path)  # one-line InputError for an unreadable file, before any session
    shape = info.input_shape(opts.image_size)
    if backend == "onnxruntime":
        be = _open(path, backend, opts, device=_ort_device(opts.provider))
    else:
        if opts.provider not in ("auto", "cpu"):
            raise InputError(f"--provider {opts.provider} is an onnxruntime option; {backend} runs on the cpu")
        be = _open(path, backend, opts)
    art = Artifact(str(path), "onnx", be, shape, fixed_batch=info.fixed_batch,
                   providers=getattr(be, "providers", None), threads=_threads(opts),
                   device=be.describe()["device"])
    art.params = info.params
    art.macs = count_macs(info.path, (info.fixed_batch or 1, *shape))
    return art


def _torch_threads(opts: BenchOptions) -> dict[str, Any]:
    import torch

    if opts.threads:
        torch.set_num_threads(opts.threads)
    if opts.inter_threads and opts.inter_threads != torch.get_num_interop_threads():
        try:
            torch.set_num_interop_threads(opts.inter_threads)
        except RuntimeError as exc:  # torch allows this once, before any parallel work
            raise InputError(
                f"--inter-threads {opts.inter_threads} cannot be set now ({exc}); "
                "run edgeslim bench in a fresh process"
            ) from exc
    return {"intra": torch.get_num_threads(), "inter": torch.get_num_interop_threads()}


def _torch_artifact(name: str, model: Any, shape: tuple[int, ...], opts: BenchOptions) -> Artifact:
    from edgeslim.errors import unknown_name
    from edgeslim.measure import count_macs, count_params
    from edgeslim.runtime import open_backend

    if opts.device not in ("cpu", "cuda"):
        raise unknown_name("device", opts.device, ["cpu", "cuda"])
    threads = _torch_threads(opts)
    art = Artifact(
        name,
        "torch",
        None,
        shape,
        params=count_params(model),
        macs=count_macs(model, shape),
        threads=threads,
        device=opts.device,
    )
    art.backend = open_backend(model, "torch", device=opts.device, input_shape=shape, precision=opts.precision)
    return art


def _open_model_pt(path: Path, opts: BenchOptions) -> Artifact:
    """An edgeslim model.pt (rebuilt from its spec, a user's file included), TorchScript or .pt2."""
    from edgeslim.models.inspect import open_model

    opened = open_model(str(path), image_size=opts.image_size or _run_image_size(path))
    return _torch_artifact(str(path), opened.model, opened.input_shape, opts)


def _run_image_size(model_path: Path) -> int | None:
    """Image size of the recipe that produced a stage's model.pt (runs/<name>/NN-stage/model.pt)."""
    from edgeslim.runrecord import read_record

    run_dir = model_path.parent.parent
    if not (run_dir / "run.json").is_file():
        return None
    try:
        return int(read_record(run_dir)["recipe"]["data"]["image_size"])
    except (InputError, KeyError, TypeError, ValueError):
        return None


def _run_artifact(run_dir: Path) -> Path:
    """The newest completed stage's ONNX (else model.pt) of a run folder, read through
    ``read_record`` so a killed run reads as interrupted, never as running."""
    from edgeslim.runrecord import read_record

    rec = read_record(run_dir)
    for key in ("onnx_file", "model_file"):
        for st in reversed(rec.get("stages", [])):
            if isinstance(st, dict) and st.get("status") == "completed" and st.get(key):
                path = run_dir / str(st.get("dir")) / str(st[key])
                if path.is_file():
                    return path
    raise InputError(f"run '{run_dir}' ({rec.get('status', 'unknown')}) has no completed stage with a "
                     "model file; finish it with edgeslim run RECIPE --resume, or pass a model file")


def _open_registry(name: str, opts: BenchOptions) -> Artifact:
    from edgeslim.measure import state_dict_bytes
    from edgeslim.models.inspect import load_for_info

    model, shape = load_for_info(name, opts.checkpoint, opts.num_classes, opts.in_chans, opts.image_size)
    art = _torch_artifact(name, model, tuple(shape), opts)
    art.size_bytes = state_dict_bytes(model)
    return art
