"""``--remote user@host[:port]``: run a deploy bundle's standalone runner on a device over SSH.

Uses the OpenSSH client (``ssh``/``scp``) as a subprocess, never a shell: BatchMode (no password
prompts), host keys checked against a known_hosts file (``StrictHostKeyChecking=yes``, or
``accept-new`` with ``--trust-on-first-use``), one multiplexed connection per session, and
every argument of the remote command quoted with :func:`shlex.quote`. The device needs only
python3 + numpy + onnxruntime or tensorrt: the bundle's ``runner.py`` does the timing with the
same ``time_calls``/``summarize`` code as ``edgeslim bench``.
"""

from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeslim.errors import InputError

_TARGET = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
    r"(?:\[(?P<ip6>[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?)\]|(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*))"
    r"(?::(?P<port>\d{1,5}))?$"
)
_SAFE_REMOTE_DIR = re.compile(r"^/[A-Za-z0-9._/-]+$")
RUNNER_MISSING_RUNTIME, RUNNER_TAMPERED = 2, 3


class RemoteError(InputError):
    """The device could not be reached, refused the login, or cannot run the bundle (exit 2)."""


@dataclass
class SshTarget:
    """Where and how to connect. ``known_hosts`` None means ~/.ssh/known_hosts."""

    user: str | None
    host: str
    port: int = 22
    known_hosts: Path | None = None
    identity: Path | None = None
    trust_on_first_use: bool = False
    connect_timeout: int = 10
    python: str = "python3"
    _control_dir: str | None = field(default=None, repr=False)

    @property
    def dest(self) -> str:
        """``user@host`` for ssh (which takes an IPv6 address without brackets)."""
        return f"{self.user}@{self.host}" if self.user else self.host

    def with_path(self, path: str) -> str:
        """``user@host:path`` for scp; an IPv6 address needs brackets there (``user@[::1]:p``)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.user}@{host}:{path}" if self.user else f"{host}:{path}"

    def __str__(self) -> str:
        return self.with_path(str(self.port))


def parse_target(text: str) -> tuple[str | None, str, int]:
    """Split ``user@host[:port]`` (``user@[::1]:2222`` for IPv6); reject anything else.

    The host comes back without brackets.
    """
    import ipaddress

    m = _TARGET.match(text or "")
    port = int(m.group("port")) if m and m.group("port") else 22
    ip6 = m.group("ip6") if m else None
    try:
        ok = m is not None and 1 <= port <= 65535 and (ip6 is None or ipaddress.IPv6Address(ip6))
    except ValueError:
        ok = False
    if not ok:
        raise InputError(
            f"--remote '{text}' is not user@host[:port]; e.g. pi@raspberrypi.local, "
            "root@10.0.0.5:2222 or pi@[fd00::2]:2222 (IPv6 in brackets)"
        )
    return m.group("user"), ip6 or m.group("host"), port


def add_remote_args(p: argparse.ArgumentParser) -> None:
    """--remote and its SSH options (shared by bench and check)."""
    g = p.add_argument_group("remote device (SSH)")
    g.add_argument(
        "--remote",
        default=None,
        metavar="USER@HOST[:PORT]",
        help="run on this device over SSH (needs a deploy bundle or an .onnx)",
    )
    g.add_argument(
        "--known-hosts",
        default=None,
        metavar="FILE",
        help="known_hosts file with the device's host key (default ~/.ssh/known_hosts)",
    )
    g.add_argument("--identity", default=None, metavar="KEY", help="SSH private key (ssh -i)")
    g.add_argument(
        "--trust-on-first-use",
        action="store_true",
        help="accept and remember an unknown host key (StrictHostKeyChecking=accept-new); "
        "a changed key is still refused",
    )
    g.add_argument(
        "--remote-python", default="python3", help="python on the device (default python3)"
    )
    g.add_argument("--connect-timeout", type=int, default=10, help="SSH connect timeout in seconds")


def target_from_args(args: argparse.Namespace) -> SshTarget:
    user, host, port = parse_target(args.remote)
    ident = Path(args.identity).expanduser() if args.identity else None
    if ident is not None and not ident.is_file():
        raise InputError(
            f"--identity '{ident}' does not exist; pass the private key file for the device"
        )
    kh = Path(args.known_hosts).expanduser().resolve() if args.known_hosts else None
    if kh is not None and not kh.exists() and not args.trust_on_first_use:
        raise InputError(
            f"--known-hosts '{kh}' does not exist; add the device's key to it (ssh-keyscan, "
            "after checking the fingerprint) or pass --trust-on-first-use"
        )
    return SshTarget(
        user,
        host,
        port,
        kh,
        ident,
        args.trust_on_first_use,
        args.connect_timeout,
        args.remote_python,
    )


# --------------------------------------------------------------------------- ssh plumbing


def _ssh_options(t: SshTarget) -> list[str]:
    if shutil.which("ssh") is None or shutil.which("scp") is None:
        raise RemoteError(
            "the OpenSSH client (ssh, scp) is not installed here; install it with "
            "apt-get install openssh-client (or scripts/ensure-sshd.sh)"
        )
    if t._control_dir is None:
        t._control_dir = tempfile.mkdtemp(prefix="es-ssh-")
    opts = {
        "BatchMode": "yes",
        "StrictHostKeyChecking": "accept-new" if t.trust_on_first_use else "yes",
        "ConnectTimeout": str(t.connect_timeout),
        "ControlMaster": "auto",
        "ControlPath": f"{t._control_dir}/cm",
        "ControlPersist": "60",
        "LogLevel": "ERROR",
    }
    if t.known_hosts is not None:
        opts["UserKnownHostsFile"] = str(t.known_hosts)
    if t.identity is not None:
        opts["IdentityFile"], opts["IdentitiesOnly"] = str(t.identity), "yes"
    out: list[str] = []
    for k, v in opts.items():
        out += ["-o", f"{k}={v}"]
    return out


def _classify(t: SshTarget, stderr: str) -> RemoteError:
    err = " ".join(stderr.strip().split())[-300:]
    low = stderr.lower()
    kh = t.known_hosts or "~/.ssh/known_hosts"
    if "host key verification failed" in low or "remote host identification has changed" in low:
        return RemoteError(
            f"host key of {t} is not trusted (not in {kh}, or it changed): {err}; add it "
            f"with ssh-keyscan -p {t.port} {t.host} >> {kh} after checking its "
            "fingerprint, or pass --trust-on-first-use for a first connection"
        )
    if "permission denied" in low or "too many authentication failures" in low:
        return RemoteError(
            f"login to {t} failed ({err}); check the user name and the key "
            "(--identity KEY); passwords are never tried (BatchMode)"
        )
    for sign in (
        "connection refused",
        "timed out",
        "no route to host",
        "could not resolve",
        "network is unreachable",
        "connection closed",
        "connection reset",
        "name or service",
    ):
        if sign in low:
            return RemoteError(
                f"cannot reach {t} ({err}); check that the device is on, the address "
                "and port are right and sshd is running"
            )
    return RemoteError(f"ssh to {t} failed: {err or 'no error message'}")


def ssh_run(t: SshTarget, argv: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """Run ``argv`` on the device; each word is shell-quoted. ssh errors become RemoteError."""
    cmd = " ".join(shlex.quote(a) for a in argv)
    full = ["ssh", *_ssh_options(t), "-p", str(t.port), "--", t.dest, cmd]
    try:
        proc = subprocess.run(full, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as exc:
        raise RemoteError(f"command on {t} did not finish within {timeout:.0f} s") from exc
    if proc.returncode == 255:
        raise _classify(t, proc.stderr)
    return proc


def scp_to(t: SshTarget, local: Path, remote_path: str) -> None:
    """Copy a local folder to ``remote_path`` (a path we created; no shell expansion needed)."""
    if not _SAFE_REMOTE_DIR.match(remote_path):
        raise RemoteError(f"unexpected remote path {remote_path!r}")
    full = [
        "scp",
        *_ssh_options(t),
        "-P",
        str(t.port),
        "-q",
        "-r",
        "--",  # no path can become an option; absolute, so no ':' in it reads as a host
        str(local.resolve()),
        t.with_path(remote_path),
    ]
    proc = subprocess.run(full, capture_output=True, text=True, timeout=600, check=False)
    if proc.returncode != 0:
        raise _classify(t, proc.stderr)


def close(t: SshTarget) -> None:
    """End the shared connection and remove its socket folder."""
    if t._control_dir is None:
        return
    subprocess.run(
        ["ssh", "-o", f"ControlPath={t._control_dir}/cm", "-O", "exit", "--", t.dest],
        capture_output=True,
        timeout=10,
        check=False,
    )
    shutil.rmtree(t._control_dir, ignore_errors=True)
    t._control_dir = None


# --------------------------------------------------------------------------- bundles on the device


def local_bundle(artifact: str | Path, workdir: Path) -> Path:
    """The bundle folder to copy: ``artifact`` itself when it holds runner.py, else a minimal
    bundle (runner.py + model + manifest.json) built from an .onnx/.engine file."""
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
    from edgeslim.fsutil import atomic_write_json, sha256_file

    out = workdir / p.stem
    out.mkdir(parents=True)
    shutil.copy2(Path(__file__).with_name("runner.py"), out / "runner.py")
    name = f"model{p.suffix}"
    shutil.copy2(p, out / name)
    trt = p.suffix != ".onnx"
    model: dict[str, Any] = {
        "file": name,
        "inputs": [{"shape": _onnx_input_shape(p)}] if not trt else [],
    }
    manifest = {
        "schema": "edgeslim.bundle/1",
        "minimal": True,
        "source": str(p),
        "model": model,
        "engine_file": name if trt else None,
        "target": {"runner_backend": "tensorrt" if trt else "onnxruntime"},
        "files": {n: sha256_file(out / n) for n in ("runner.py", name)},
    }
    atomic_write_json(out / "manifest.json", manifest)
    return out


def _onnx_input_shape(path: Path) -> list[int]:
    """Static input shape of an ONNX file; a symbolic batch becomes 1."""
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    inits = {t.name for t in m.graph.initializer}
    inp = next(i for i in m.graph.input if i.name not in inits)
    dims = [d.dim_value if d.dim_value > 0 else None for d in inp.type.tensor_type.shape.dim]
    if any(d is None for d in dims[1:]):
        raise InputError(
            f"'{path}' has dynamic image dimensions; export it with a fixed size for --remote"
        )
    return [dims[0] or 1, *dims[1:]]


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
            if proc.returncode != 0 or not _SAFE_REMOTE_DIR.match(self.dir):
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

    def upload(self, artifact: str | Path, slot: str) -> str:
        """Copy a bundle (or an .onnx wrapped in a minimal one) to ``<scratch>/<slot>``."""
        bundle = local_bundle(artifact, self._local / slot)
        dest = f"{self.dir}/{slot}"
        scp_to(self.t, bundle, dest)
        return dest

    def bench(self, folder: str, opts: Any, batch: int, **kw: Any) -> dict[str, Any]:
        """Run the bundle's runner benchmark; return its JSON (one line on stdout)."""
        proc = ssh_run(self.t, runner_argv(self.t, folder, opts, batch, **kw))
        return parse_runner_output(self.t, proc)


def parse_runner_output(t: SshTarget, proc: subprocess.CompletedProcess) -> dict[str, Any]:
    """Turn the runner's exit status and JSON line into a result or a clear RemoteError."""
    err = " ".join(proc.stderr.strip().split())[-300:]
    if proc.returncode == RUNNER_MISSING_RUNTIME and "importable" in proc.stderr:
        raise RemoteError(
            f"the device {t} cannot run the bundle with '{t.python}': neither onnxruntime "
            f"nor tensorrt is importable there ({err}); install one on the device, e.g. "
            f"{t.python} -m pip install onnxruntime numpy, or pass --remote-python"
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
        if isinstance(obj, dict) and "median_ms" in obj:
            return obj
    raise RemoteError(f"the runner on {t} printed no result line: {proc.stdout.strip()[-200:]!r}")


def _as_result(
    t: SshTarget, artifact: str | Path, runs: list[dict[str, Any]], opts: Any
) -> dict[str, Any]:
    """Shape runner lines like a local ``edgeslim bench`` result (schema edgeslim.bench/1)."""
    from edgeslim.deploy.runner import RESULT_SCHEMA, summarize

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
    with RemoteSession(t) as s:
        folder = s.upload(artifact, "a")
        runs = [s.bench(folder, opts, b) for b in opts.batches]
    return _as_result(t, artifact, runs, opts)


def remote_check(t: SshTarget, baseline: str | Path, candidate: str | Path, opts: Any) -> Any:
    """``edgeslim check --remote``: interleaved runner invocations (A B, B A, ...) on the device.

    Each invocation is one round; the same paired bootstrap as the local gate decides.
    """
    from edgeslim.deploy.check import CheckReport, _side
    from edgeslim.deploy.stats import compare_rounds

    b = opts.bench
    rounds = max(4, min(opts.min_rounds, 10))
    per_call = max(0.2, opts.min_time_s / (2 * rounds))
    a_rounds: list[list[float]] = []
    b_rounds: list[list[float]] = []
    t0 = time.perf_counter()
    with RemoteSession(t) as s:
        fa, fb = s.upload(baseline, "a"), s.upload(candidate, "b")
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
    )
