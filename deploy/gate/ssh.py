"""SSH plumbing of ``--remote user@host[:port]``: target parsing, options, ssh/scp, errors.

Uses the OpenSSH client (``ssh``/``scp``) as a subprocess, never a shell: BatchMode (no password
prompts), host keys checked against a known_hosts file (``StrictHostKeyChecking=yes``, or
``accept-new`` with ``--trust-on-first-use``), one multiplexed connection per session, and
every argument of the remote command quoted with :func:`shlex.quote`. What runs there is in
``remote.py``.
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from edgeslim.errors import InputError

_TARGET = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
    r"(?:\[(?P<ip6>[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?)\]|(?P<host>[A-Za-z0-9][A-Za-z0-9.-]*))"
    r"(?::(?P<port>\d{1,5}))?$"
)
SAFE_REMOTE_DIR = re.compile(r"^/[A-Za-z0-9._/-]+$")


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
    if not SAFE_REMOTE_DIR.match(remote_path):
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
