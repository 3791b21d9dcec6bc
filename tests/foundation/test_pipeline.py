"""The pipeline runner: run record, caching, failures that keep earlier stages, resume after kill -9."""

import errno
import json
import os
import signal
import subprocess
import sys

import pytest

from edgeslim.pipeline import run_pipeline
from edgeslim.progress import NULL
from edgeslim.recipe import load_recipe

STAGES = [{"stage": "finetune", "train": {"epochs": 2, "batch_size": 16}},
          {"stage": "export"}, {"stage": "bench", "iters": 10, "warmup": 2}]
STABLE = ("params", "macs", "size_bytes", "test_accuracy")


def test_run_record_schema(write_recipe, cli, tmp_path, digits_data_spec):
    stages = [{"stage": "finetune", "train": {"epochs": 2, "batch_size": 16, "optimizer": {"lr": 0.01}}}] + STAGES[1:]
    code, out, err = cli("run", write_recipe(stages, data=digits_data_spec), "--quiet")
    assert code == 0, err
    rec = json.loads((tmp_path / "runs" / "t" / "run.json").read_text())
    assert rec["status"] == "completed" and rec["schema"] == "edgeslim.run/1"
    for k in ("python", "torch", "torchvision", "onnx", "onnxruntime", "torch-pruning", "edgeslim"):
        assert rec["versions"][k], k
    assert rec["host"]["cores"] >= 1 and rec["host"]["cpu"]
    assert rec["recipe"]["data"]["source"] == "digits" and rec["seed"] == 0
    ft, ex, _ = rec["stages"]
    for st in (ft, ex):
        assert st["status"] == "completed" and st["wall_s"] > 0
        assert {"params", "macs", "size_bytes", "test_accuracy", "latency_ms"} <= set(st["metrics"])
    # The accuracy recorded is the trained model's, measured on the artifact: 10 digit classes
    # (chance 0.10), measured 0.85-0.89 on 450 test images for seeds 0-2, so 0.6 cannot be
    # reached by a broken record or an untrained model and is not near any kernel's result.
    assert ft["metrics"]["test_accuracy"] >= 0.6
    # ONNX in onnxruntime vs torch on the same 450 images: FP32 kernels differ by ~1e-6, so at
    # most a few images with near-tied logits may flip (measured 0 flips); 0.01 is 4 images.
    assert abs(ex["metrics"]["test_accuracy"] - ft["metrics"]["test_accuracy"]) <= 0.01
    assert ft["artifact"].endswith("00-finetune/model.pt") and ex["artifact"].endswith("01-export/model.onnx")
    assert ex["metrics"]["evaluated_on"] == "onnxruntime"
    assert (tmp_path / "runs" / "t" / "report.md").read_text().count("|") > 20
    assert "test acc" in out


def test_rerun_reuses_finished_stages(write_recipe):
    recipe = load_recipe(write_recipe(STAGES))
    first = run_pipeline(recipe, NULL)
    model_pt = first.run_dir / "00-finetune" / "model.pt"
    mtime = model_pt.stat().st_mtime_ns
    second = run_pipeline(recipe, NULL)
    assert model_pt.stat().st_mtime_ns == mtime
    accs = [[s.metrics["test_accuracy"] for s in r.stages[:2]] for r in (first, second)]
    assert accs[0] == accs[1]
    # A changed setting recomputes that stage and every later one.
    changed = load_recipe(write_recipe([{**STAGES[0], "train": {"epochs": 1, "batch_size": 16}}] + STAGES[1:]))
    run_pipeline(changed, NULL)
    assert model_pt.stat().st_mtime_ns != mtime


def test_failed_stage_keeps_earlier_ones(write_recipe, cli, tmp_path):
    # The 2nd stage reads a data folder that does not exist: it fails inside the stage.
    stages = [STAGES[0], {"stage": "pretrain", "data": {"source": "imagefolder", "root": str(tmp_path / "no")}}]
    code, _, err = cli("run", write_recipe(stages), "-q")
    run = tmp_path / "runs" / "t"
    rec = json.loads((run / "run.json").read_text())
    assert code == 2 and "stage 01-pretrain failed" in err and "is not a folder" in err
    assert (run / "00-finetune" / "model.pt").is_file() and not (run / "01-pretrain").exists()
    assert rec["status"] == "failed" and rec["stages"][0]["status"] == "completed"
    assert rec["stages"][1]["status"] == "failed" and "is not a folder" in rec["stages"][1]["error"]


def test_disk_full_keeps_earlier_stages(write_recipe, monkeypatch, tmp_path):
    """A full disk is outside the product, so it is simulated: the 2nd stage's writes raise ENOSPC."""
    import edgeslim.onnxio.export as export_mod

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))

    monkeypatch.setattr(export_mod, "export_onnx", full)
    from edgeslim.errors import InputError

    with pytest.raises(InputError, match="01-export failed: cannot write output .No space left"):
        run_pipeline(load_recipe(write_recipe(STAGES)), NULL)
    run = tmp_path / "runs" / "t"
    assert (run / "00-finetune" / "meta.json").is_file() and not (run / "01-export").exists()
    assert not [p for p in run.iterdir() if ".tmp-" in p.name]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_output_dir(write_recipe, cli, tmp_path):
    (tmp_path / "ro").mkdir(mode=0o500)
    code, _, err = cli("run", write_recipe(STAGES), "--output-dir", tmp_path / "ro" / "x")
    assert code == 2 and "not writable" in err


def test_read_only_output_dir_as_any_user(write_recipe, cli, tmp_path):
    # Works as root too: a path below a regular file can never be created.
    (tmp_path / "file").write_text("x")
    code, _, err = cli("run", write_recipe(STAGES), "--output-dir", tmp_path / "file" / "runs")
    assert code == 2 and "not writable" in err and "run.output_dir" in err


def _run_cli(recipe, out_dir, *extra):
    return subprocess.Popen([sys.executable, "-m", "edgeslim", "run", str(recipe), "-q",
                             "--output-dir", str(out_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_kill9_then_resume_matches_uninterrupted(write_recipe, tmp_path, wait_for):
    stages = [{"stage": "pretrain", "train": {"epochs": 2, "batch_size": 16}},
              {"stage": "finetune", "train": {"epochs": 12, "batch_size": 8}},
              {"stage": "export"}]
    recipe = write_recipe(stages, data={"source": "digits", "image_size": 16, "classes": ["0", "1", "2"],
                                        "synthetic_classes": 4})
    ref = _run_cli(recipe, tmp_path / "ref")
    assert ref.wait(timeout=wait_for.cap_s) == 0, ref.stderr.read()
    proc = _run_cli(recipe, tmp_path / "killed")
    run_json = tmp_path / "killed" / "t" / "run.json"
    # Killed once the finetune stage has saved the state of its first epoch (11 epochs still to
    # go): mid-stage on any machine, without a sleep that assumes how fast it runs.
    wait_for(lambda: list((tmp_path / "killed" / "t" / ".resume").glob("01-finetune*/state.pt")),
             "finetune resume state", proc)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    first = tmp_path / "killed" / "t" / "00-pretrain" / "meta.json"
    mtime = first.stat().st_mtime_ns
    assert not (tmp_path / "killed" / "t" / "01-finetune" / "meta.json").exists()
    res = _run_cli(recipe, tmp_path / "killed", "--resume")
    assert res.wait(timeout=wait_for.cap_s) == 0, res.stderr.read()
    assert first.stat().st_mtime_ns == mtime, "a stage before the killed one was recomputed"
    a = json.loads((tmp_path / "ref" / "t" / "run.json").read_text())
    b = json.loads(run_json.read_text())
    assert b["stages"][1]["metrics"]["resumed_at_epoch"] >= 1, "the finetune stage restarted from scratch"
    for sa, sb in zip(a["stages"], b["stages"], strict=True):
        assert {k: sa["metrics"][k] for k in STABLE} == {k: sb["metrics"][k] for k in STABLE}


@pytest.mark.parametrize("content, fragment", [
    (None, "does not exist"),
    (b"\x00not a checkpoint", "corrupt"),
    ("wrong-shape", "shape mismatch"),
])
def test_bad_checkpoint_in_recipe_writes_nothing(write_recipe, cli, tmp_path, content, fragment):
    import torch

    from edgeslim.models import create_model

    ckpt = tmp_path / "c.pt"
    if content == "wrong-shape":
        torch.save(create_model("tinycnn", width=16, depth=2).state_dict(), ckpt)
    elif content is not None:
        ckpt.write_bytes(content)
    code, _, err = cli("run", write_recipe(model={"checkpoint": str(ckpt)}))
    assert code == 2 and fragment in err and "c.pt" in err
    assert not (tmp_path / "runs").exists()


def test_local_checkpoint_is_used(write_recipe, tmp_path):
    import torch

    from edgeslim.models import create_model

    src = create_model("tinycnn", num_classes=9, width=8, depth=2)
    torch.save(src.state_dict(), tmp_path / "c.pt")
    recipe = load_recipe(write_recipe([{"stage": "finetune", "train": {"epochs": 0}}],
                                      model={"checkpoint": str(tmp_path / "c.pt")}))
    res = run_pipeline(recipe, NULL)
    from edgeslim.models.serialize import load_model

    m = load_model(res.run_dir / "00-finetune" / "model.pt")
    assert torch.equal(m.features[0][0].weight, src.features[0][0].weight)
    assert m.fc.out_features == 4


def test_stale_stage_folders_are_removed(write_recipe, tmp_path):
    run_pipeline(load_recipe(write_recipe(STAGES)), NULL)
    run = tmp_path / "runs" / "t"
    (run / "05-prune.failed").mkdir()
    (run / "00-finetune.failed").mkdir()
    run_pipeline(load_recipe(write_recipe(STAGES[:1])), NULL)
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["00-finetune", "05-prune.failed"]


def test_onnx_params_count_int8_weights(tmp_path):
    """A QDQ INT8 model holds as many weights as its float parent (scales/zero points aside)."""
    import numpy as np

    from edgeslim.compress.quantize import PtqSettings, quantize_static_qdq
    from edgeslim.models import create_model
    from edgeslim.onnxio.export import export_onnx
    from edgeslim.onnxio.info import count_params as onnx_params

    f32 = export_onnx(create_model("tinycnn", num_classes=4, width=8, depth=2), (3, 16, 16),
                      tmp_path / "f.onnx", exporter="torchscript").path
    calib = np.random.default_rng(0).standard_normal((8, 3, 16, 16)).astype(np.float32)
    q = quantize_static_qdq(f32, tmp_path / "q.onnx", calib, PtqSettings())
    n_q, n_f = onnx_params(q), onnx_params(f32)
    assert n_f > 1000 and abs(n_q - n_f) / n_f < 0.02  # counting floats only gave ~2% of n_f
