"""The bundle's runner.py verifies a manifest that must list every file (issue 9, item 8).

The runner runs as a real subprocess (`python runner.py ...` inside a copied bundle, as on a
device). Rules: manifest.json must parse and list runner.py, the model and every file's
sha256 (else exit 3, one line); an unlisted code file anywhere in the bundle is exit 3 naming
it; the script's folder and the cwd are off sys.path before anything is imported, so a
planted numpy.py is never imported; bad input is a one-line exit 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from deploy_fixtures import bundle_copy, one_line_error  # noqa: E402

PLANT = "open({marker!r}, 'w').write('imported'); from numpy_real_is_gone import x\n"


@pytest.fixture
def bundle(tmp_path_factory, tmp_path) -> Path:
    return bundle_copy(tmp_path_factory, tmp_path / "bundle")


def _run(bundle: Path, *args: str, cwd: Path | None = None, env: dict | None = None):
    return subprocess.run(
        [sys.executable, str(bundle / "runner.py"), *args],
        cwd=cwd or bundle,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _manifest(bundle: Path) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def _write_manifest(bundle: Path, man: object) -> None:
    (bundle / "manifest.json").write_text(json.dumps(man))


def test_manifest_without_files_is_refused_and_a_tampered_model_never_runs(bundle):
    man = _manifest(bundle)
    del man["files"]
    _write_manifest(bundle, man)
    with open(bundle / "model.onnx", "ab") as fh:  # the tampering "files" would have caught
        fh.write(b"\0")
    for cmd in (["verify"], ["eval", "--images", "images"], ["bench", "--iters", "1"]):
        r = _run(bundle, *cmd)
        assert r.returncode == 3 and one_line_error(r.stderr), (cmd, r.stderr)
        assert "files" in r.stderr and r.stdout == ""


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        "[1, 2, 3]",
        "\xff\xfe garbage",
        '{"files": "everything"}',
        '{"files": {}, "model": {"file": "model.onnx"}}',
        "unlisted-model",
        "bad-digest",
        "escaping-path",
    ],
)
def test_garbage_or_incomplete_manifest_is_exit_3(bundle, content):
    man = _manifest(bundle)
    if content == "unlisted-model":
        del man["files"]["model.onnx"]
    elif content == "bad-digest":
        man["files"]["model.onnx"] = "not-a-sha256"
    elif content == "escaping-path":
        man["files"]["../outside.txt"] = "0" * 64
    if content in ("unlisted-model", "bad-digest", "escaping-path"):
        _write_manifest(bundle, man)
    else:
        (bundle / "manifest.json").write_bytes(content.encode("latin-1"))
    r = _run(bundle, "verify")
    assert r.returncode == 3 and one_line_error(r.stderr), r.stderr
    assert "invalid bundle" in r.stderr or "tampered" in r.stderr


@pytest.mark.parametrize("rel", ["helper.py", "images/x/evil.so", "__pycache__/a.cpython-311.pyc",
                                 "site.pth", "numpy/__init__.py"])
def test_unlisted_code_files_are_refused(bundle, rel):
    p = bundle / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("print('hi')\n")
    r = _run(bundle, "verify")
    assert r.returncode == 3 and one_line_error(r.stderr) and rel in r.stderr, r.stderr


def test_unlisted_data_files_and_a_device_engine_are_allowed(bundle):
    """Results saved into the bundle (bench.json) and build_engine.sh's outputs are not code."""
    for name in ("bench.json", "model.engine", "timing.cache"):
        (bundle / name).write_text("{}")
    r = _run(bundle, "verify")
    assert r.returncode == 0 and json.loads(r.stdout)["ok"] is True, r.stderr


def test_planted_numpy_beside_runner_or_in_cwd_is_never_imported(bundle, tmp_path):
    marker = tmp_path / "imported.txt"
    (bundle / "numpy.py").write_text(PLANT.format(marker=str(marker)))
    r = _run(bundle, "verify")
    assert r.returncode == 3 and "numpy.py" in r.stderr and one_line_error(r.stderr), r.stderr
    assert not marker.exists() and not (bundle / "__pycache__").exists()
    (bundle / "numpy.py").unlink()
    # a numpy.py in the cwd, on PYTHONPATH as '.', and the runner run via -c from the cwd
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "numpy.py").write_text(PLANT.format(marker=str(marker)))
    r = _run(bundle, "verify", cwd=evil, env={"PYTHONPATH": "."})
    assert r.returncode == 0, r.stderr
    runpy = (
        "import runpy, sys; sys.argv = ['runner.py'] + sys.argv[1:]; "
        f"runpy.run_path({str(bundle / 'runner.py')!r}, run_name='__main__')"
    )
    r = subprocess.run([sys.executable, "-c", runpy, "verify"], cwd=evil, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert not marker.exists() and not (bundle / "__pycache__").exists()


def test_bundle_readme_recommends_isolated_mode(bundle):
    text = (bundle / "README.md").read_text()
    assert "python3 -I runner.py" in text or "python -I runner.py" in text
    r = subprocess.run([sys.executable, "-I", str(bundle / "runner.py"), "verify"], cwd=bundle,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("case", ["no-image", "garbage-png", "folder-image", "images-is-file",
                                  "batch-0", "iters-neg", "no-bundle", "bundle-is-file"])
def test_runner_bad_input_is_one_line_exit_2(bundle, tmp_path, case):
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    args = {
        "no-image": ["classify", str(tmp_path / "none.png")],
        "garbage-png": ["classify", str(junk)],
        "folder-image": ["classify", str(tmp_path)],
        "images-is-file": ["eval", "--images", str(junk)],
        "batch-0": ["eval", "--images", "images", "--batch", "0"],
        "iters-neg": ["bench", "--iters", "-3", "--min-time", "0"],
        "no-bundle": ["--bundle", str(tmp_path / "nope"), "verify"],
        "bundle-is-file": ["--bundle", str(junk), "verify"],
    }[case]
    r = _run(bundle, *args)
    assert r.returncode == 2 and one_line_error(r.stderr), r.stderr
