"""Remote bench over a real local sshd vs a local bench of the same bundle, plus the three
failure cases (unreachable host, failed login, device without onnxruntime). Needs root-free
port, OpenSSH server (scripts/ensure-sshd.sh).

    .venv/bin/python benchmarks/latency_remote.py [--pairs 3]
Writes benchmarks/results/latency_remote.json.
"""

from __future__ import annotations

import argparse
import getpass
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from latency_common import export, plain_cnn, run_cli, write_result  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sshd(d: Path) -> tuple[subprocess.Popen, int]:
    for k in ("host", "user", "stranger"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / k)], check=True
        )
    (d / "authorized_keys").write_text((d / "user.pub").read_text())
    port = _port()
    (d / "cfg").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'pid'}\n"
        "PasswordAuthentication no\nUsePAM no\nStrictModes no\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen(
        [shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", str(d / "cfg")]
    )
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    host_pub = (d / "host.pub").read_text().strip()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    return proc, port


def _err(*args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "edgeslim", *args], capture_output=True, text=True)
    return f"exit {p.returncode}: {p.stderr.strip()}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=3)
    args = ap.parse_args()
    from edgeslim.deploy.gate.remote import local_bundle
    from edgeslim.deploy.gate.stats import compare_samples

    work = Path(tempfile.mkdtemp(prefix="latency-remote-"))
    bundle = local_bundle(export(plain_cnn(6), work / "model.onnx"), work / "b")
    proc, port = _sshd(work)
    target = f"{getpass.getuser()}@127.0.0.1:{port}"
    ssh = [
        "--remote",
        target,
        "--known-hosts",
        str(work / "known_hosts"),
        "--identity",
        str(work / "user"),
    ]
    common = ["--threads", "1", "--min-time", "2"]
    try:
        local, remote = [], []
        for i in range(args.pairs):  # alternate so drift hits both alike
            for where, extra, acc in (
                ("local", [], local),
                ("remote", ssh + ["--remote-python", sys.executable], remote),
            ):
                out = work / f"{where}{i}.json"
                run_cli("bench", str(bundle), *common, *extra, "--json", str(out))
                acc.append(json.loads(out.read_text()))
        cmp = compare_samples(
            [s for r in local for s in r["samples_ms"]],
            [s for r in remote for s in r["samples_ms"]],
            max_slowdown=0.05,
        )
        venv = work / "bare"
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
        import numpy  # the bare device gets numpy (the runner needs it) but no onnxruntime

        site = next(venv.glob("lib/python*/site-packages"))
        for p in Path(numpy.__file__).parent.parent.iterdir():
            if p.name == "numpy" or p.name.startswith(("numpy.libs", "numpy-")):
                (site / p.name).symlink_to(p)
        failures = {
            "unreachable_host": _err(
                "bench",
                str(bundle),
                "--remote",
                f"root@127.0.0.1:{_port()}",
                "--trust-on-first-use",
                "--connect-timeout",
                "3",
            ),
            "failed_login": _err(
                "bench", str(bundle), *ssh[:4], "--identity", str(work / "stranger")
            ),
            "device_missing_onnxruntime": _err(
                "bench", str(bundle), *ssh, "--remote-python", str(venv / "bin" / "python")
            ),
        }
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    write_result(
        "latency_remote",
        {
            "benchmark": "latency_remote",
            "pairs": args.pairs,
            "threads": 1,
            "local_medians_ms": [r["median_ms"] for r in local],
            "remote_medians_ms": [r["median_ms"] for r in remote],
            "remote_over_local_ratio": cmp.ratio,
            "ratio_ci": [cmp.ci_low, cmp.ci_high],
            "verdict": cmp.verdict,
            "shared_keys": sorted(set(local[0]) & set(remote[0])),
            "failures": failures,
        },
    )
    print(json.dumps(failures, indent=1))


if __name__ == "__main__":
    main()
