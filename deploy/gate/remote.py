"""``--remote user@host[:port]``: run a deploy bundle's standalone runner on a device over SSH.

The device needs only python3 + numpy + one runtime (onnxruntime, openvino or tensorrt): the
bundle's ``runner.py`` times with ``edgeslim_portable.py``, the same ``time_calls``/``summarize``
file as ``edgeslim bench``. ``--backend NAME`` is passed to the runner after asking it which
runtimes the device can open (``runner.py backends``); a missing one is a one-line error naming
it. SSH itself (BatchMode, checked host keys, quoting) is ``ssh.py``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from edgeslim.deploy.gate.ssh import (
    SAFE_REMOTE_DIR,
    RemoteError,
    SshTarget,
    close,
    scp_to,
    ssh_run,
)
from edgeslim.errors import InputError

RUNNER_MISSING_RUNTIME, RUNNER_TAMPERED = 2, 3


# --------------------------------------------------------------------------- bundles on the device


def local_bundle(artifact: str | Path, workdir: Path, backend: str | None = None) -> Path:
    """The bundle folder to copy: ``artifact`` itself when it holds runner.py, else a minimal
    bundle (runner.py, edgeslim_portable.py, the model, manifest.json) built from an .onnx or
    .engine file, whose runtime section names ``backend`` (default: the file type's)."""
    p = Path(artifact)
    if p.is_dir():
        if not (p / "runner.py").is_file():
            raise InputError(
                f"'{p}' is not a deploy bundle (no runner.py); create one with "
                "edgeslim deploy, or pass the .onnx file"
            )
        return p
    if not p.is_file() or p.suffix not in (".onnx", ".engine", ".plan"):
        raise InputError(
            f"--remote needs a deploy bundle folder or an .onnx/.engine file, got '{p}'"
        )
    from edgeslim.deploy.bundle.runtimes import copy_runner, runtime_section
    from edgeslim.fsutil import atomic_write_json, sha256_file

    out = workdir / p.stem
    out.mkdir(parents=True)
    name = f"model{p.suffix}"
    shutil.copy2(p, out / name)
    trt = p.suffix != ".onnx"
    shape, precision = _model_facts(p)
    order = (backend or ("tensorrt" if trt else "onnxruntime"),)
    manifest = {
        "schema": "edgeslim.bundle/1",
        "minimal": True,
        "source": str(p),
        "model": {"file": name, "inputs": [{"shape": shape}] if shape else []},
        "engine_file": name if trt else None,
        "target": {"runner_backend": order[0]},
        "runtime": runtime_section(order, precision),
        "files": {n: sha256_file(out / n) for n in (*copy_runner(out), name)},
    }
    atomic_write_json(out / "manifest.json", manifest)
    return out


def _model_facts(path: Path) -> tuple[list[int] | None, str]:
    """Full static input shape (a symbolic batch becomes 1) and precision of an ONNX file; an
    engine has neither here (the runner asks it; its build record holds the precision)."""
    if path.suffix != ".onnx":
        meta = path.with_name(path.name + ".json")
        try:
            plan = json.loads(meta.read_text()).get("plan", {}) if meta.is_file() else {}
        except ValueError:
            plan = {}
        return None, str(plan.get("precision") or "fp32")
    from edgeslim.onnxio.info import onnx_info

    info = onnx_info(path)
    try:
        shape = info.input_shape()
    except InputError:
        raise InputError(
            f"'{path}' has dynamic image dimensions; export it with a fixed size for --remote"
        ) from None
    return [info.fixed_batch or 1, *shape], info.precision


def runner_argv(
    t: SshTarget,
    folder: str,
    opts: Any,
    batch: int,
    min_time_s: float | None = None,
    warmup: int | None = None,
) -> list[str]:
    """The device command ``PYTHON FOLDER/runner.py bench ...`` as separate (later quoted) words."""
    argv = [
        t.python,
        f"{folder}/runner.py",
        "bench",
        "--batch",
        str(batch),
        "--warmup",
        str(opts.warmup if warmup is None else warmup),
        "--iters",
        str(opts.min_iters),
        "--min-time",
        str(opts.min_time_s if min_time_s is None else min_time_s),
    ]
    if opts.threads:
        argv += ["--threads", str(opts.threads)]
    if getattr(opts, "backend", None):
        argv += ["--backend", opts.backend]
    if getattr(opts, "precision", None):
        argv += ["--precision", opts.precision]
    return argv


class RemoteSession:
    """A scratch folder on the device holding uploaded bundles; removed on exit."""

    def __init__(self, target: SshTarget):
        self.t, self.dir = target, ""
        self._local = Path(tempfile.mkdtemp(prefix="es-remote-"))

    def __enter__(self) -> RemoteSession:
        try:
            proc = ssh_run(self.t, ["mktemp", "-d", "/tmp/edgeslim-XXXXXXXX"], timeout=60)
            self.dir = proc.stdout.strip()
            if proc.returncode != 0 or not SAFE_REMOTE_DIR.match(self.dir):
                raise RemoteError(
                    f"cannot create a scratch folder on {self.t}: {proc.stderr.strip()[:200]}"
                )
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.dir:
                ssh_run(self.t, ["rm", "-rf", "--", self.dir], timeout=60)
        except RemoteError:
            pass  # the device went away; nothing left to clean that we can reach
        finally:
            close(self.t)
            shutil.rmtree(self._local, ignore_errors=True)

    def upload(self, artifact: str | Path, slot: str, backend: str | None = None) -> str:
        """Copy a bundle (or an .onnx wrapped in a minimal one) to ``<scratch>/<slot>``."""
        bundle = local_bundle(artifact, self._local / slot, backend)
        dest = f"{self.dir}/{slot}"
        scp_to(self.t, bundle, dest)
        return dest

    def require_backend(self, folder: str, backend: str | None) -> None:
        """Ask the device's runner which runtimes it can open; RemoteError naming the one it lacks."""
        if not backend:
            return
        proc = ssh_run(self.t, [self.t.python, f"{folder}/runner.py", "backends"])
        report = parse_runner_output(self.t, proc, key="backends")
        have = report["backends"].get(backend) or {"available": False, "reason": f"its runner has no {backend}"}
        if not have["available"]:
            raise RemoteError(
                f"the device {self.t} cannot run --backend {backend} with '{self.t.python}': {have['reason']}; "
                f"install it there, or drop --backend (the device has: {_have(report) or 'no runtime'})"
            )

    def bench(self, folder: str, opts: Any, batch: int, **kw: Any) -> dict[str, Any]:
        """Run the bundle's runner benchmark; return its JSON (one line on stdout)."""
        proc = ssh_run(self.t, runner_argv(self.t, folder, opts, batch, **kw))
        return parse_runner_output(self.t, proc)


def _have(report: dict[str, Any]) -> str:
    return ", ".join(n for n, b in report["backends"].items() if b.get("available"))


def parse_runner_output(
    t: SshTarget, proc: subprocess.CompletedProcess, key: str = "median_ms"
) -> dict[str, Any]:
    """Turn the runner's exit status and JSON line (the one holding ``key``) into a result or a
    clear RemoteError."""
    err = " ".join(proc.stderr.strip().split())[-300:]
    if proc.returncode == RUNNER_MISSING_RUNTIME and "is importable here" in proc.stderr:
        raise RemoteError(
            f"the device {t} cannot run the bundle with '{t.python}': {err.removeprefix('error: ')}; "
            f"install a runtime on the device, e.g. {t.python} -m pip install onnxruntime numpy, "
            "or pass --remote-python"
        )
    if proc.returncode == RUNNER_TAMPERED:
        raise RemoteError(
            f"the bundle on {t} failed verification (files differ from manifest.json): {err}"
        )
    if "No module named 'numpy'" in proc.stderr:
        raise RemoteError(
            f"numpy is not installed for '{t.python}' on {t}; install it there "
            f"({t.python} -m pip install numpy onnxruntime) or pass --remote-python"
        )
    if proc.returncode == 127:
        raise RemoteError(
            f"'{t.python}' was not found on {t}; pass --remote-python /path/to/python3"
        )
    if proc.returncode == RUNNER_MISSING_RUNTIME:
        raise RemoteError(f"the runner on {t} refused the bundle: {err}")
    if proc.returncode != 0:
        raise RemoteError(f"the runner on {t} exited with {proc.returncode}: {err or 'no message'}")
    for line in reversed(proc.stdout.strip().splitlines()):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and key in obj:
            return obj
    raise RemoteError(f"the runner on {t} printed no result line: {proc.stdout.strip()[-200:]!r}")


def _as_result(
    t: SshTarget, artifact: str | Path, runs: list[dict[str, Any]], opts: Any
) -> dict[str, Any]:
    """Shape runner lines like a local ``edgeslim bench`` result (schema edgeslim.bench/1)."""
    from edgeslim.runtime.portable import RESULT_SCHEMA
    from edgeslim.runtime.timing import summarize

    sweep = []
    for r in runs:
        samples = r.get("samples_ms") or [r["median_ms"]]
        row = {
            **summarize(samples, int(r.get("batch", 1))),
            **{k: v for k, v in r.items() if k not in ("schema", "host")},
        }
        sweep.append({"batch": int(r.get("batch", 1)), **row, "samples_ms": samples})
    first = runs[0]
    host = {"remote": str(t), **(first.get("host") or {})}
    host.setdefault("cpu", "?")
    host.setdefault("cores", "?")
    p = Path(artifact)
    art = {
        "name": f"{t}:{p.name}",
        "kind": first.get("backend", "bundle"),
        "size_bytes": first.get("size_bytes"),
        "params": None,
        "macs": None,
        "sha256": first.get("sha256"),
        "input_shape": first.get("input_shape"),
    }
    settings = {
        "warmup": opts.warmup,
        "min_iters": opts.min_iters,
        "min_time_s": opts.min_time_s,
        "batches": list(opts.batches),
        "input_shape": first.get("input_shape"),
        "intra_op_threads": first.get("threads", opts.threads or "default"),
        "inter_op_threads": "default",
        "threads_requested": {"intra": opts.threads, "inter": None},
        "backend": first.get("backend", "runner"),
        "providers": first.get("providers"),
        "device": "remote",
        "remote": str(t),
    }
    return {
        "schema": RESULT_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **sweep[0],
        "artifact": art,
        "settings": settings,
        "host": host,
        "sweep": sweep,
    }


def remote_bench(t: SshTarget, artifact: str | Path, opts: Any) -> dict[str, Any]:
    """``edgeslim bench --remote``: upload, run the runner per batch size, bring the JSON back."""
    check_remote_backend(opts)
    with RemoteSession(t) as s:
        folder = s.upload(artifact, "a", opts.backend)
        s.require_backend(folder, opts.backend)
        runs = [s.bench(folder, opts, b) for b in opts.batches]
    return _as_result(t, artifact, runs, opts)


def check_remote_backend(opts: Any) -> None:
    """The device runner runs what a bundle can ship; torch is for local measurements only."""
    from edgeslim.deploy.bundle.runner_backends import BACKENDS

    if opts.backend and opts.backend not in BACKENDS:
        raise InputError(f"--remote runs the bundle's runner ({', '.join(BACKENDS)}); --backend "
                         f"{opts.backend} works only on this machine: drop --remote or pick one of those")
    if opts.precision not in (None, "fp32", "bf16"):
        raise InputError(f"--precision {opts.precision} cannot be given to the device runner; it takes fp32 or bf16")


def remote_check(t: SshTarget, baseline: str | Path, candidate: str | Path, opts: Any) -> Any:
    """``edgeslim check --remote``: interleaved runner invocations (A B, B A, ...) on the device.

    Each invocation is one round; the same paired bootstrap as the local gate decides.
    """
    from edgeslim.deploy.gate.check import CheckReport, _side
    from edgeslim.deploy.gate.stats import compare_rounds

    b = opts.bench
    check_remote_backend(b)
    rounds = max(4, min(opts.min_rounds, 10))
    per_call = max(0.2, opts.min_time_s / (2 * rounds))
    a_rounds: list[list[float]] = []
    b_rounds: list[list[float]] = []
    t0 = time.perf_counter()
    with RemoteSession(t) as s:
        fa, fb = s.upload(baseline, "a", b.backend), s.upload(candidate, "b", b.backend)
        s.require_backend(fa, b.backend)
        for r in range(rounds):
            order = (("a", fa), ("b", fb)) if r % 2 == 0 else (("b", fb), ("a", fa))
            got = {k: s.bench(f, b, b.batches[0], min_time_s=per_call) for k, f in order}
            a_rounds.append(got["a"].get("samples_ms") or [got["a"]["median_ms"]])
            b_rounds.append(got["b"].get("samples_ms") or [got["b"]["median_ms"]])
    cmp = compare_rounds(a_rounds, b_rounds, opts.max_slowdown, opts.confidence)
    flat = ([x for r in a_rounds for x in r], [x for r in b_rounds for x in r])
    return CheckReport(
        _side(f"{t}:{Path(baseline).name}", flat[0], b.batches[0]),
        _side(f"{t}:{Path(candidate).name}", flat[1], b.batches[0]),
        cmp,
        mode=f"remote {t}",
        host={"remote": str(t)},
        calls_per_round=0,
        wall_s=time.perf_counter() - t0,
        stop="fixed rounds",
    )
