"""--remote over a REAL OpenSSH server on 127.0.0.1 (throwaway host and user keys in tmp_path).

Nothing is mocked: sshd, ssh, scp and the bundle's standalone runner all run for real. The
"device" is this machine, so the remote result must match a local bench of the same bundle.
"""

from __future__ import annotations

import getpass
import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from bench_helpers import conv_net, device_python, export  # noqa: E402

pytestmark = [pytest.mark.ssh, pytest.mark.serial]  # serial: verdicts on measured latency
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def _start_sshd(d: Path, listen: str) -> tuple[subprocess.Popen, int]:
    """A throwaway sshd on ``listen`` (127.0.0.1 or ::1) using the keys in ``d``."""
    port = _free_port(listen)
    conf = d / f"sshd_config_{port}"
    conf.write_text(
        f"Port {port}\nListenAddress {listen}\nHostKey {d / 'host_key'}\n"
        f"PidFile {d / f'sshd_{port}.pid'}\nAuthorizedKeysFile {d / 'authorized_keys'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
        "PermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # privilege-separation dir sshd insists on
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(conf)], stderr=subprocess.PIPE)
    deadline = time.time() + 60  # waits on the port opening; the cap only guards a hang
    while time.time() < deadline:
        try:
            socket.create_connection((listen, port), timeout=0.5).close()
            return proc, port
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"sshd did not start: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.05)
    proc.kill()
    pytest.fail(f"sshd did not listen on {listen}:{port} within 60 s")


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    d = tmp_path_factory.mktemp("sshd")
    host_pub = _keygen(d / "host_key")
    user_pub = _keygen(d / "user_key")
    _keygen(d / "stranger_key")  # a key the server does not know: login must fail
    (d / "authorized_keys").write_text(user_pub + "\n")
    for p in d.glob("*_key"):
        p.chmod(0o600)
    proc, port = _start_sshd(d, "127.0.0.1")
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub}\n")
    yield {"dir": d, "port": port, "target": f"{getpass.getuser()}@127.0.0.1:{port}"}
    proc.terminate()
    proc.wait(timeout=10)


def _has_ipv6_loopback() -> bool:
    try:
        _free_port("::1")
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def sshd6(sshd):
    """A second sshd with the same keys, listening on the IPv6 loopback only."""
    if not _has_ipv6_loopback():
        pytest.skip("this machine has no IPv6 loopback (::1 cannot be bound)")
    d = sshd["dir"]
    proc, port = _start_sshd(d, "::1")
    host_pub = (d / "host_key.pub").read_text().strip()
    (d / "known_hosts6").write_text(f"[::1]:{port} {host_pub}\n")
    yield {"dir": d, "port": port, "target": f"{getpass.getuser()}@[::1]:{port}"}
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    from edgeslim.deploy.gate.remote import local_bundle

    d = tmp_path_factory.mktemp("bundles")
    a = local_bundle(export(conv_net(1), d / "a.onnx", dynamic_batch=False), d / "ba")
    b = local_bundle(export(conv_net(10), d / "b.onnx", dynamic_batch=False), d / "bb")
    return {"a": a, "b": b}


@pytest.fixture(scope="module")
def odd_python(tmp_path_factory):
    """This interpreter behind a path with a space and a ';', to prove remote quoting."""
    d = tmp_path_factory.mktemp("py") / "my python; echo pwned"
    d.mkdir()
    exe = d / "python3"  # a wrapper, not a symlink: a venv's python must keep its own path
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    exe.chmod(0o755)
    return str(exe)


def _ssh_args(sshd, key: str = "user_key", known: str = "known_hosts") -> list[str]:
    known = "known_hosts6" if "[::1]" in sshd["target"] and known == "known_hosts" else known
    return [
        "--remote",
        sshd["target"],
        "--known-hosts",
        str(sshd["dir"] / known),
        "--identity",
        str(sshd["dir"] / key),
    ]


def test_remote_bench_matches_local_bench(cli, sshd, bundles, odd_python, tmp_path):
    remote_json, local_json = tmp_path / "remote.json", tmp_path / "local.json"
    quick = ("--threads", "1", "--min-time", "0.5", "--warmup", "5")
    code, out, err = cli(
        "bench",
        bundles["a"],
        *_ssh_args(sshd),
        "--remote-python",
        odd_python,
        "--json",
        remote_json,
        *quick,
    )
    assert code == 0, err
    assert "pwned" not in out
    code, _, err = cli("bench", bundles["a"], "--json", local_json, *quick)
    assert code == 0, err
    r, loc = json.loads(remote_json.read_text()), json.loads(local_json.read_text())
    assert r["schema"] == loc["schema"] == "edgeslim.bench/1"
    assert r["settings"]["remote"] == f"{sshd['target']}" and r["host"]["cpu"] == loc["host"]["cpu"]
    assert len(r["samples_ms"]) == r["iters"] >= 50
    # Same machine, model and timing code, but measured one after the other: on a shared CI
    # machine the load can change between the two by 2x, so only the order of magnitude is
    # asserted (a unit or model mix-up is 10x-1000x off).
    assert 0.2 < r["median_ms"] / loc["median_ms"] < 5.0
    assert "median" in out


def test_remote_check_interleaves_runner_calls(cli, sshd, bundles, tmp_path):
    js = tmp_path / "check.json"
    code, out, err = cli(
        "check",
        bundles["a"],
        bundles["b"],
        *_ssh_args(sshd),
        "--remote-python",
        sys.executable,
        # 8 rounds, not 4: with 4 a single disturbed round (seen once in CI on a 7x regression)
        # widens the interval past the threshold and the verdict is inconclusive
        "--min-rounds",
        "8",
        "--min-time",
        "1",
        "--threads",
        "1",
        "--warmup",
        "2",
        "--min-iters",
        "10",
        "--json",
        js,
    )
    assert code == 1, out + err
    rep = json.loads(js.read_text())
    assert rep["mode"].startswith("remote") and rep["comparison"]["rounds"] == 8
    assert rep["comparison"]["verdict"] == "regression"


def test_unreachable_host(cli, bundles):
    port = _free_port()  # nothing listens there
    code, _, err = cli(
        "bench",
        bundles["a"],
        "--remote",
        f"root@127.0.0.1:{port}",
        "--trust-on-first-use",
        "--connect-timeout",
        "3",
    )
    assert code == 2 and "cannot reach" in err and f"127.0.0.1:{port}" in err


def test_failed_login(cli, sshd, bundles):
    code, _, err = cli("bench", bundles["a"], *_ssh_args(sshd, key="stranger_key"))
    assert code == 2 and "login to" in err and "failed" in err and "--identity" in err


def test_device_without_onnxruntime(cli, sshd, bundles, tmp_path):
    """A real interpreter with numpy but no onnxruntime/tensorrt, as on a bare device."""
    bare = device_python(tmp_path / "bare", ("numpy",))
    code, _, err = cli("bench", bundles["a"], *_ssh_args(sshd), "--remote-python", str(bare))
    assert code == 2 and "cannot run the bundle" in err and "onnxruntime is not installed" in err
    assert "--remote-python" in err and err.count("\n") == 1


def test_remote_backend_openvino_where_the_device_has_it(cli, sshd, bundles, tmp_path):
    if importlib.util.find_spec("openvino") is None:
        pytest.skip("openvino is not installed here (pip install 'edgeslim[openvino]')")
    js = tmp_path / "ov.json"
    code, _, err = cli("bench", bundles["a"], *_ssh_args(sshd), "--remote-python", sys.executable,
                       "--backend", "openvino", "--min-time", "0.1", "--min-iters", "5", "--json", js)
    assert code == 0, err
    r = json.loads(js.read_text())
    assert r["settings"]["backend"] == "openvino" and r["runtime_precision"] == "f32"
    assert r["host"]["openvino"] and r["iters"] >= 5


def test_remote_backend_the_device_lacks_is_one_line(cli, sshd, bundles, tmp_path):
    """The device's python has numpy + onnxruntime only: --backend openvino is refused up front."""
    dev = device_python(tmp_path / "dev")
    code, _, err = cli("bench", bundles["a"], *_ssh_args(sshd), "--remote-python", str(dev),
                       "--backend", "openvino")
    assert code == 2 and err.count("\n") == 1
    assert "cannot run --backend openvino" in err and "openvino is not installed" in err
    assert "the device has: onnxruntime" in err
    code, _, err = cli("bench", bundles["a"], *_ssh_args(sshd), "--backend", "torch")
    assert code == 2 and "works only on this machine" in err


def test_host_key_checking_and_trust_on_first_use(cli, sshd, bundles, tmp_path):
    empty = sshd["dir"] / "empty_known_hosts"
    empty.write_text("")
    code, _, err = cli("bench", bundles["a"], *_ssh_args(sshd, known="empty_known_hosts"))
    assert code == 2 and "not trusted" in err and "--trust-on-first-use" in err
    code, _, err = cli(
        "bench",
        bundles["a"],
        *_ssh_args(sshd, known="empty_known_hosts"),
        "--trust-on-first-use",
        "--remote-python",
        sys.executable,
        "--min-time",
        "0.1",
        "--min-iters",
        "5",
        "-q",
    )
    assert code == 0, err
    host_key = (sshd["dir"] / "host_key.pub").read_text().split()[1]
    assert host_key in empty.read_text()  # the key was remembered (hashed host name)


def test_tampered_bundle_is_refused(cli, sshd, bundles, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(bundles["a"], bad)
    with open(bad / "model.onnx", "ab") as fh:
        fh.write(b"\0")
    code, _, err = cli("bench", bad, *_ssh_args(sshd), "--remote-python", sys.executable)
    assert code == 2 and "failed verification" in err


@pytest.mark.parametrize("target", ["host;rm -rf /", "user@", "a@b:99999", "$(id)@host"])
def test_bad_remote_target(cli, bundles, target):
    code, _, err = cli("bench", bundles["a"], "--remote", target)
    assert code == 2 and "is not user@host[:port]" in err


@pytest.mark.parametrize(
    "text,want",
    [
        ("[::1]:2222", (None, "::1", 2222)),
        ("pi@[::1]:2222", ("pi", "::1", 2222)),
        ("pi@[fd00::2]", ("pi", "fd00::2", 22)),
        ("root@[fe80::1%eth0]:22", ("root", "fe80::1%eth0", 22)),
        ("pi@10.0.0.5:2222", ("pi", "10.0.0.5", 2222)),
    ],
)
def test_ipv6_targets_parse_and_scp_destinations_have_brackets(text, want):
    from edgeslim.deploy.gate.ssh import SshTarget, parse_target

    assert parse_target(text) == want
    t = SshTarget(*want)
    host = f"[{want[1]}]" if ":" in want[1] else want[1]
    user = f"{want[0]}@" if want[0] else ""
    assert t.with_path("/tmp/edgeslim-x/a") == f"{user}{host}:/tmp/edgeslim-x/a"
    assert str(t) == f"{user}{host}:{want[2]}" and t.dest == f"{user}{want[1]}"


@pytest.mark.parametrize("target", ["::1:2222", "pi@[::1", "pi@[zz::1]:22", "pi@[::1]:0"])
def test_bad_ipv6_targets(cli, bundles, target):
    code, _, err = cli("bench", bundles["a"], "--remote", target)
    assert code == 2 and "is not user@host[:port]" in err and "IPv6" in err


def test_remote_bench_over_ipv6(cli, sshd6, bundles, tmp_path):
    js = tmp_path / "r6.json"
    code, _, err = cli(
        "bench", bundles["a"], *_ssh_args(sshd6), "--remote-python", sys.executable,
        "--min-time", "0.1", "--min-iters", "5", "--json", js, "-q",
    )
    assert code == 0, err
    assert json.loads(js.read_text())["settings"]["remote"] == sshd6["target"]


def test_scp_paths_cannot_become_options(sshd, bundles, tmp_path, monkeypatch):
    """A local bundle folder named like an scp option is copied as a path, never obeyed."""
    from edgeslim.deploy.gate.ssh import SshTarget, close, scp_to

    monkeypatch.chdir(tmp_path)
    evil = Path("-oProxyCommand=touch pwned")
    shutil.copytree(bundles["a"], evil)
    d = sshd["dir"]
    t = SshTarget(getpass.getuser(), "127.0.0.1", sshd["port"], d / "known_hosts", d / "user_key")
    remote = tmp_path / "remote"
    remote.mkdir()
    try:
        scp_to(t, evil, str(remote / "copy"))
    finally:
        close(t)
    assert not (tmp_path / "pwned").exists()
    assert (remote / "copy" / "runner.py").read_bytes() == (bundles["a"] / "runner.py").read_bytes()
