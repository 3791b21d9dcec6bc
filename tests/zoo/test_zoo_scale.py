"""Scale-out gives the same rows: --shard 0/2 + --shard 1/2 + merge equals one unsharded run, and
the Ray mode on a real local cluster (started here on 127.0.0.1, stopped at the end) equals the
local mode on a 4-model zoo. Compared: keys, statuses, steps, errors, parity figures, file sizes
(not durations or latencies, which are measurements)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from zoo_helpers import by_model, matrix_rows, run_zoo, stable, write_nets, write_zoo  # noqa: E402

pytestmark = pytest.mark.slow
MODELS = [{"source": "tinycnn"}, {"source": "nets.py:Small"}, {"source": "nets.py:Raise"},
          {"source": "tinymobilenet", "int8": "dynamic"}]
# Ray replaces 127.0.0.1 with the machine's outward address unless its "single machine" mode is
# on (ray._private.services.get_node_ip_address); with it, every Ray socket stays on loopback.
RAY_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


@pytest.fixture(scope="module")
def zoo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("zoo")
    write_nets(d)
    write_zoo(d / "zoo.yaml", MODELS)
    return d


@pytest.fixture(scope="module")
def unsharded(zoo_dir: Path) -> dict:
    r = run_zoo("zoo.yaml", "--out", "all", "--workers", "2", cwd=zoo_dir, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = by_model(zoo_dir / "all")
    assert {m: x["status"] for m, x in rows.items()} == {"tinycnn": "ok", "nets.py:Small": "ok",
                                                          "nets.py:Raise": "failed", "tinymobilenet": "ok"}
    return rows


def test_shards_then_merge_equal_one_run(zoo_dir, unsharded, wait_for):
    parts = []
    for i in (0, 1):
        r = run_zoo("zoo.yaml", "--out", f"part{i}", "--shard", f"{i}/2", cwd=zoo_dir, timeout=wait_for.cap_s)
        assert r.returncode == 0, r.stderr[-3000:]
        parts.append(set(by_model(zoo_dir / f"part{i}")))
    assert parts[0] and parts[1] and not parts[0] & parts[1], parts
    r = run_zoo("merge", "part0", "part1", "--out", "merged", cwd=zoo_dir, timeout=wait_for.cap_s)
    assert r.returncode == 0, r.stderr
    merged = by_model(zoo_dir / "merged")
    assert {m: stable(x) for m, x in merged.items()} == {m: stable(x) for m, x in unsharded.items()}
    assert set(matrix_rows(zoo_dir / "merged")) == set(unsharded)
    for x in merged.values():  # artifacts linked in beside the rows
        if x["status"] == "ok":
            assert (zoo_dir / "merged" / x["folder"] / "fp32.onnx").is_file()
    # merging into a folder that holds other rows would lose them: refused
    r = run_zoo("merge", "part0", "--out", "part1", cwd=zoo_dir, timeout=wait_for.cap_s)
    assert r.returncode == 2 and "already holds results.jsonl" in r.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def ray_cluster(wait_for) -> Iterator[str]:
    """A real one-node Ray cluster on 127.0.0.1 (2 CPUs, no dashboard), stopped afterwards."""
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'edgeslim[ray]'; make test installs it)")
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's unix sockets need a short path
    log = open(Path(temp) / "start.log", "w+")  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen([str(ray_bin), "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                             "--num-cpus", "2", "--include-dashboard", "false", "--disable-usage-stats",
                             "--temp-dir", temp, "--block"], stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **RAY_ENV}, start_new_session=True)
    try:
        wait_for(lambda: "Ray runtime started" in (Path(temp) / "start.log").read_text(), "Ray to start", proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` drains and stops what it started
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=120)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything of ours left in its process group
        log.close()
        shutil.rmtree(temp, ignore_errors=True)


def test_ray_mode_equals_local_mode(zoo_dir, unsharded, ray_cluster, wait_for):
    r = run_zoo("zoo.yaml", "--out", "ray", "--ray", ray_cluster, cwd=zoo_dir, timeout=wait_for.cap_s, env=RAY_ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"on ray {ray_cluster}" in r.stderr
    rows = by_model(zoo_dir / "ray")
    assert {m: stable(x) for m, x in rows.items()} == {m: stable(x) for m, x in unsharded.items()}
    assert all((zoo_dir / "ray" / x["folder"] / "worker.log").is_file() for x in rows.values())


def test_ray_address_nobody_listens_on_is_one_line(zoo_dir, wait_for):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'edgeslim[ray]')")
    port = _free_port()  # bound and released: nothing listens there
    r = run_zoo("zoo.yaml", "--out", "noray", "--ray", f"127.0.0.1:{port}", "--only", "tinycnn", cwd=zoo_dir,
                timeout=wait_for.cap_s, env=RAY_ENV)
    assert r.returncode == 2, r.stderr[-2000:]
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errs) == 1 and "cannot connect to the Ray cluster" in errs[0]
