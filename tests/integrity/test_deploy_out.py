"""`edgeslim deploy --out DIR` never deletes what DIR held (issue 9: items 1, 4 and bad input).

Rules under test: a non-empty folder that is not an edgeslim bundle is refused, even with
--force; an existing bundle is replaced only with --force; cwd, its parents, the run folder,
/ and home are refused; a DIR.tar.gz that is not a bundle tarball is never overwritten; stale
temp siblings of killed deploys are removed; --no-tar removes an older bundle tarball.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from deploy_fixtures import finished_run, one_line_error  # noqa: E402


@pytest.fixture
def run(tmp_path_factory) -> Path:
    return finished_run(tmp_path_factory)


def _deploy(cli, run: Path, out: Path | str, *extra: str) -> tuple[int, str, str]:
    return cli("deploy", run, "--target", "x86-cpu", "--out", out, "--no-images", *extra)


def test_foreign_folder_is_refused_and_kept(cli, run, tmp_path):
    docs = tmp_path / "mydocs"
    docs.mkdir()
    (docs / "thesis.txt").write_text("precious")
    for extra in ((), ("--force",)):
        code, out, err = _deploy(cli, run, docs, *extra)
        assert code == 2 and one_line_error(err), err
        assert "not an edgeslim bundle" in err and "thesis.txt" in err and out == ""
        assert (docs / "thesis.txt").read_text() == "precious"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["mydocs"]  # no tarball, no temp
    # a folder with a forged bundle manifest but other files is still not ours to delete
    (docs / "manifest.json").write_text(json.dumps({"schema": "edgeslim.bundle/1", "files": {}}))
    code, _, err = _deploy(cli, run, docs, "--force")
    assert code == 2 and "thesis.txt" in err and (docs / "thesis.txt").is_file()


def test_empty_folder_is_used_and_a_bundle_is_replaced_only_with_force(cli, run, tmp_path):
    b = tmp_path / "b"
    b.mkdir()
    code, _, err = _deploy(cli, run, b)
    assert code == 0, err
    first = (b / "manifest.json").read_text()
    code, _, err = cli(
        "deploy", run, "--target", "raspberry-pi-5", "--out", b, "--no-images", "--no-tar"
    )
    assert code == 2 and one_line_error(err) and "--force" in err
    assert (b / "manifest.json").read_text() == first
    # files the device workflow writes (engine, timing cache) may go; a user's file may not
    (b / "model.engine").write_bytes(b"engine")
    (b / "bench.json").write_text("{}")
    code, _, err = _deploy(cli, run, b, "--force")
    assert code == 2 and "bench.json" in err and (b / "bench.json").is_file()
    (b / "bench.json").unlink()
    code, _, err = cli(
        "deploy", run, "--target", "raspberry-pi-5", "--out", b, "--no-images", "--force"
    )
    assert code == 0, err
    assert json.loads((b / "manifest.json").read_text())["target"]["name"] == "raspberry-pi-5"
    assert not (b / "model.engine").exists()


@pytest.mark.parametrize("which", ["dot", "cwd", "parent", "run", "run-parent", "root", "home"])
def test_protected_out_paths_are_one_line_errors(cli, run, tmp_path, monkeypatch, which):
    home, work = tmp_path / "home", tmp_path / "proj" / "work"
    home.mkdir()
    work.mkdir(parents=True)
    (work / "keep.txt").write_text("x")
    # HOME points into tmp_path, so a broken guard could only ever touch the test's own folder
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    out = {
        "dot": ".",
        "cwd": str(work),
        "parent": "..",
        "run": str(run),
        "run-parent": str(run.parent),
        "root": "/",
        "home": str(home),
    }[which]
    before = sorted(os.listdir(run))
    code, stdout, err = _deploy(cli, run, out, "--force")
    assert code == 2 and one_line_error(err) and stdout == "", err
    assert sorted(os.listdir(work)) == ["keep.txt"] and sorted(os.listdir(run)) == before
    assert os.listdir(home) == []


def test_foreign_tarball_is_never_overwritten(cli, run, tmp_path):
    tgz = tmp_path / "b.tar.gz"
    tgz.write_bytes(b"my backup, not a bundle")
    for extra in ((), ("--force",)):
        code, _, err = _deploy(cli, run, tmp_path / "b", *extra)
        assert code == 2 and one_line_error(err) and "b.tar.gz" in err and "--no-tar" in err
        assert tgz.read_bytes() == b"my backup, not a bundle" and not (tmp_path / "b").exists()
    code, _, err = _deploy(cli, run, tmp_path / "b", "--no-tar")
    assert code == 0, err
    assert tgz.read_bytes() == b"my backup, not a bundle"  # --no-tar leaves a foreign file alone


def test_no_tar_removes_an_older_bundle_tarball(cli, run, tmp_path):
    b = tmp_path / "b"
    code, _, err = _deploy(cli, run, b)
    assert code == 0 and b.with_name("b.tar.gz").is_file(), err
    with tarfile.open(b.with_name("b.tar.gz")) as tf:
        assert "b/manifest.json" in tf.getnames()
    code, _, err = cli(
        "deploy", run, "--target", "raspberry-pi-5", "--out", b, "--no-tar", "--force"
    )
    assert code == 0, err
    assert not b.with_name("b.tar.gz").exists()  # the x86-cpu tarball no longer sits beside it
    assert json.loads((b / "manifest.json").read_text())["target"]["name"] == "raspberry-pi-5"
    # a bundle tarball alone (folder removed) also needs --force to be replaced
    code, _, _ = _deploy(cli, run, tmp_path / "c")
    assert code == 0
    import shutil

    shutil.rmtree(tmp_path / "c")
    code, _, err = _deploy(cli, run, tmp_path / "c")
    assert code == 2 and "--force" in err and (tmp_path / "c.tar.gz").is_file()


def test_stale_temps_of_killed_deploys_are_removed(cli, run, tmp_path):
    ours = [".b.tmp-abcd1234", ".b.old-123456", ".b.tar.gz.tmp", ".b.tar.gz.tmp-4242"]
    for name in ours[:2]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.onnx").write_bytes(b"half")
    for name in ours[2:]:
        (tmp_path / name).write_bytes(b"half")
    theirs = [".b.tmp-notours-x", ".bb.tmp-abcd1234", ".other.tmp-abcd1234", "b.tmp-abcd1234"]
    for name in theirs:
        (tmp_path / name).mkdir()
    code, _, err = _deploy(cli, run, tmp_path / "b")
    assert code == 0, err
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(["b", "b.tar.gz", *theirs]), left


def test_a_second_deploy_to_the_same_folder_waits_its_turn(cli, run, tmp_path):
    """While a deploy holds the folder's lock, another refuses (its temps are not stale)."""
    lock = tmp_path / ".b.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"4242")
        (tmp_path / ".b.tmp-abcd1234").mkdir()  # the running deploy's work in progress
        code, _, err = _deploy(cli, run, tmp_path / "b")
        assert code == 2 and one_line_error(err) and "4242" in err
        assert (tmp_path / ".b.tmp-abcd1234").is_dir() and not (tmp_path / "b").exists()
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    "case", ["missing", "run-json-dir", "run-json-garbage", "run-json-list", "target", "out-file",
             "out-under-file", "out-unwritable"]
)
def test_bad_input_is_a_one_line_error(cli, run, tmp_path, case):
    import shutil

    src, out, target = run, tmp_path / "b", "x86-cpu"
    bad = tmp_path / "badrun"
    if case == "missing":
        src = tmp_path / "nope"
    elif case.startswith("run-json"):
        shutil.copytree(run, bad)
        (bad / "run.json").unlink()
        if case == "run-json-dir":
            (bad / "run.json").mkdir()
        else:
            (bad / "run.json").write_text("{not json" if case.endswith("garbage") else "[1, 2]")
        src = bad
    elif case == "target":
        target = "jetson-nano"
    elif case == "out-file":
        out.write_text("a file")
    elif case == "out-under-file":
        (tmp_path / "f").write_text("a file")
        out = tmp_path / "f" / "b"
    elif case == "out-unwritable":
        out = Path("/proc/edgeslim-bundle")
    code, stdout, err = cli("deploy", src, "--target", target, "--out", out, "--no-images")
    assert code == 2 and one_line_error(err) and stdout == "", err
    if case == "out-file":
        assert out.read_text() == "a file"
