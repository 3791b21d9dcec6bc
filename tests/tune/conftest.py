"""A real, throwaway PostgreSQL server on 127.0.0.1 for the tune tests (Debian's ``postgresql``).

``initdb`` into a fresh folder, ``pg_ctl start`` on a free port with its unix socket in that
folder, trust authentication for this one user on 127.0.0.1 only; ``pg_ctl stop`` and the folder
removed afterwards. PostgreSQL refuses to run as root: as root the server runs as the
``postgres`` user the Debian package creates (``runuser``). Tests marked ``postgres`` are skipped,
with the reason, where the server binaries or the psycopg2 driver are missing.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def pg_bin() -> Path | None:
    """The newest /usr/lib/postgresql/<v>/bin that has initdb and pg_ctl (else PATH's)."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(Path(d).parent.name)
                  if Path(d).parent.name.isdigit() else 0)
    for d in reversed(dirs):
        if (Path(d) / "initdb").is_file() and (Path(d) / "pg_ctl").is_file():
            return Path(d)
    initdb = shutil.which("initdb")
    return Path(initdb).resolve().parent if initdb and shutil.which("pg_ctl") else None


def _run_as() -> list[str] | None:
    """The command prefix that runs the server as a non-root user ([] when we are not root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        return None
    runuser = shutil.which("runuser")
    return [runuser, "-u", "postgres", "--"] if runuser else None


def skip_reason() -> str | None:
    if pg_bin() is None:
        return ("PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or PATH; "
                "make test installs them (scripts/ensure-postgres.sh: apt-get install postgresql)")
    if importlib.util.find_spec("psycopg2") is None:
        return "the psycopg2 driver is not installed (pip install 'edgeslim[postgres]')"
    if importlib.util.find_spec("optuna") is None:
        return "optuna is not installed (pip install 'edgeslim[tune]')"
    if _run_as() is None:
        return "running as root without a 'postgres' user and runuser: PostgreSQL refuses to run as root"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = skip_reason()
    for item in items:
        if why and "postgres" in item.keywords:
            item.add_marker(pytest.mark.skip(reason=why))


@dataclass
class PgServer:
    url: str
    port: int
    data: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_server() -> Iterator[PgServer]:
    """Start a server (database ``optuna``, user ``optuna``) and stop it after the test."""
    bindir, prefix = pg_bin(), _run_as()
    assert bindir is not None and prefix is not None  # the marker skipped the test otherwise
    # /tmp, not tmp_path: the server's user must reach the folder (pytest's is root-only 0700)
    root = Path(tempfile.mkdtemp(prefix="edgeslim-pg-", dir="/tmp"))
    data, port = root / "data", _free_port()
    if prefix:
        pw = pwd.getpwnam("postgres")
        os.chown(root, pw.pw_uid, pw.pw_gid)

    def run(*cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=300)

    r = run(str(bindir / "initdb"), "-D", str(data), "-U", "optuna", "-A", "trust", "-E", "UTF8", "--no-sync")
    assert r.returncode == 0, r.stderr[-2000:]
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    # -w: pg_ctl itself waits until the server accepts connections (-t: the cap of that wait)
    r = run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "server.log"), "-o", opts, "-w",
            "-t", "300", "start")
    try:
        assert r.returncode == 0, r.stdout[-1000:] + r.stderr[-1000:] + _log(root)
        r = subprocess.run([str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "optuna", "optuna"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        yield PgServer(f"postgresql+psycopg2://optuna@127.0.0.1:{port}/optuna", port, data)
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "120", "stop")
        shutil.rmtree(root, ignore_errors=True)


def _log(root: Path) -> str:
    try:
        return (root / "server.log").read_text()[-2000:]
    except OSError:
        return ""
