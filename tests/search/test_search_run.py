"""A tiny real search (tinycnn at 32 px, synthetic data, 1 epoch): outputs, resume, shared prefix,
the latency cache, --pick, and bad input. Real pipeline, real onnxruntime, real Optuna (SQLite)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from edgeslim.cli import main

SEARCH = {
    "trials": 2,
    "sampler": "random",
    "latency": {"warmup": 1, "min_iters": 5, "min_time_s": 0.0},  # plumbing: the figures are not asserted
    "params": {"target_ratio": {"low": 0.2, "high": 0.6}, "importance": {"choices": ["l1", "l2"]},
               "precision": {"choices": ["int8", "fp32"]}},
}


def _recipe(root: Path, name: str = "srch", search: dict | None = None) -> Path:
    recipe = {
        "run": {"name": name, "output_dir": str(root / "runs"), "seed": 0, "threads": 1, "latency_iters": 5},
        "model": {"source": "tinycnn", "kwargs": {"width": 8, "depth": 2}},
        "data": {"source": "synthetic", "image_size": 32, "channels": 3, "synthetic_classes": 4,
                 "synthetic_per_class": 40, "val_fraction": 0.2, "test_fraction": 0.25},
        "stages": [
            {"stage": "finetune", "train": {"epochs": 1, "tensorboard": False}},
            # synthetic data keeps a 1-epoch model near chance: the guards would refuse every trial
            {"stage": "prune", "target": {"ratio": 0.3}, "on_budget": "warn", "bn_recalibrate_batches": 2},
            {"stage": "quantize", "precision": "int8", "calibration": {"samples": 16}, "on_budget": "warn",
             "sensitivity": {"enabled": False}, "latency_iters": 5},
            # near-chance logits make INT8 top-1 agreement a coin toss; parity is tested in tests/deploy
            {"stage": "export", "parity": {"enabled": False}},
        ],
        "search": search if search is not None else SEARCH,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


def _cli(capsys, *args) -> tuple[int, str, str]:
    """(exit code, stdout, stderr), runs of whitespace as one space (rich wraps at 80 columns)."""
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, " ".join(out.out.split()), " ".join(out.err.split())


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """One 2-trial search shared by the tests of this module (its own capture, hence no capsys)."""
    root = tmp_path_factory.mktemp("search")
    recipe = _recipe(root)
    assert main(["search", str(recipe), "-q"]) == 0
    return root, recipe, root / "runs" / "srch" / "search"


def _stat(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_ino, st.st_mtime_ns


def test_search_writes_the_front_with_documented_fields(searched):
    root, recipe, sdir = searched
    front = json.loads((sdir / "pareto.json").read_text())
    assert isinstance(front, list) and 1 <= len(front) <= 2
    for p in front:
        assert {"trial", "accuracy", "latency_ms", "settings", "artifact", "backend", "sha256"} <= set(p)
        assert 0.0 <= p["accuracy"] <= 1.0 and p["latency_ms"] > 0
        assert set(p["settings"]) == {"target_ratio", "importance", "precision"}
        assert Path(p["artifact"]).is_file() and p["artifact"].endswith(".onnx")
        assert p["backend"] == "onnxruntime"
        assert "test_accuracy" not in p  # never searched on, never shown for a trial
    assert [p["latency_ms"] for p in front] == sorted(p["latency_ms"] for p in front)
    rows = list(csv.DictReader((sdir / "trials.csv").open()))
    assert [r["state"] for r in rows] == ["COMPLETE", "COMPLETE"] and "test_accuracy" not in rows[0]
    # the baseline trial: the recipe's own prune target and precision; importance is unset there
    assert float(rows[0]["param_target_ratio"]) == 0.3 and rows[0]["param_precision"] == "int8"
    assert rows[0]["param_importance"] in ("l1", "l2")
    assert (sdir / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    s = json.loads((sdir / "summary.json").read_text())
    hv = s["hypervolume"]
    assert hv["reference"]["accuracy"] == 0.0 and 0 < hv["normalized"] <= 1
    slowest = max(float(r["latency_ms"]) for r in rows)
    assert hv["reference"]["latency_ms"] == pytest.approx(1.1 * slowest)
    assert {"avx512_vnni", "avx512_bf16", "amx"} <= set(s["cpu_flags"]) and s["versions"]["onnxruntime"]
    assert s["shared_stages"] == ["finetune"] and s["n_complete"] == 2


def test_trials_link_the_shared_prefix_and_a_rerun_resumes(searched, capsys):
    root, recipe, sdir = searched
    base = sdir / "base" / "00-finetune"
    before = _stat(base / "meta.json")
    trial_dirs = sorted(d for d in (sdir / "trials").iterdir() if d.is_dir())
    assert trial_dirs and all((d / "00-finetune").is_symlink() for d in trial_dirs)
    assert all((d / "00-finetune").resolve() == base.resolve() for d in trial_dirs)
    old = {d.name: _stat(d / "02-quantize" / "meta.json") for d in trial_dirs}
    old_front = json.loads((sdir / "pareto.json").read_text())

    code, out, err = _cli(capsys, "search", recipe, "--trials", "3")
    assert code == 0, err
    rows = list(csv.DictReader((sdir / "trials.csv").open()))
    assert [(r["trial"], r["state"]) for r in rows] == [("0", "COMPLETE"), ("1", "COMPLETE"), ("2", "COMPLETE")]
    log = out + err  # progress lines: stdout or stderr, whichever the progress facility uses
    assert "2 completed trial(s); running 1 more" in log
    assert log.count("#2: accuracy") == 1 and "#0:" not in log and "#1:" not in log  # one line per new trial
    assert _stat(base / "meta.json") == before  # the prefix was not recomputed
    for name, st in old.items():  # nor were the earlier trials
        assert _stat(sdir / "trials" / name / "02-quantize" / "meta.json") == st
    kept = {p["trial"]: p for p in json.loads((sdir / "pareto.json").read_text())}
    for p in old_front:  # a point of the old front is either still there, unchanged, or dominated by trial 2
        assert kept.get(p["trial"], p) == p

    code, out, err = _cli(capsys, "search", recipe, "--trials", "3")
    assert code == 0 and "3 completed trial(s); running 0 more" in out + err and "#3:" not in out + err


def test_latency_is_cached_by_artifact_hash(searched):
    from edgeslim.data import build_data
    from edgeslim.recipe import load_recipe
    from edgeslim.search.measure import Measurer
    from edgeslim.search.space import LatencySpec

    root, recipe, sdir = searched
    art = Path(json.loads((sdir / "pareto.json").read_text())[0]["artifact"])
    cache = root / "cache-test"
    m = Measurer(cache, LatencySpec(warmup=1, min_iters=5, min_time_s=0.0), threads=1)
    first = m.latency_ms(art, (3, 32, 32))
    second = m.latency_ms(art, (3, 32, 32))
    assert first["cached"] is False and second["cached"] is True
    assert second["latency_ms"] == first["latency_ms"] and m.measured == [first["sha256"]]  # timed once
    copy = root / "copy.onnx"  # same bytes elsewhere: same hash, same cached figure
    copy.write_bytes(art.read_bytes())
    assert m.latency_ms(copy, (3, 32, 32))["cached"] is True and len(m.measured) == 1
    m2 = Measurer(cache, LatencySpec(warmup=1, min_iters=6, min_time_s=0.0), threads=1)
    assert m2.latency_ms(art, (3, 32, 32))["cached"] is False  # other timing settings: measured again
    r = load_recipe(recipe)
    data = build_data(r.data, r.run.seed)
    a1, a2 = m.accuracy(art, data, "k"), m.accuracy(art, data, "k")
    assert (a1["cached"], a2["cached"]) == (False, True) and a1["accuracy"] == a2["accuracy"]
    # the search itself filled its cache: one latency file per artifact it scored
    assert len(list((sdir / "cache").glob("*.latency-*.json"))) >= 1


def test_pick_writes_a_valid_recipe_and_reports_test_accuracy(searched, capsys):
    root, recipe, sdir = searched
    code, out, err = _cli(capsys, "search", recipe, "--pick", "latency_ms<=100000")
    assert code == 0, err
    assert "running 0 more" in out + err  # --pick alone picks from the study as it is
    picked = sdir / "picked-recipe.yaml"
    code, _, verr = _cli(capsys, "validate", picked)
    assert code == 0, verr
    raw = yaml.safe_load(picked.read_text())
    assert "search" not in raw and raw["run"]["name"] == "srch-picked"
    info = json.loads((sdir / "picked.json").read_text())
    front = json.loads((sdir / "pareto.json").read_text())
    best = max(front, key=lambda p: p["accuracy"])
    assert info["point"]["trial"] == best["trial"]
    assert raw["stages"][1]["target"] == {"ratio": best["settings"]["target_ratio"]}
    run = json.loads((root / "runs" / "srch-picked" / "run.json").read_text())
    assert run["status"] == "completed"
    assert info["test_accuracy"] == run["final"]["test_accuracy"]
    assert f"TEST accuracy {info['test_accuracy']:.4f}" in out
    assert info["same_artifact_as_point"] is True  # the run ships the artifact the front scored
    assert (root / "runs" / "srch-picked" / "picked.json").is_file()


def test_pick_that_nothing_meets_is_one_line(searched, capsys):
    root, recipe, sdir = searched
    code, out, err = _cli(capsys, "search", recipe, "--pick", "latency_ms<=0.000001")
    assert code == 2
    assert err.startswith("error: --pick 'latency_ms<=1e-06': no point of the front meets it; the closest")
    assert err.count("error") == 1


@pytest.mark.parametrize("args,search,says", [
    (["--sampler", "anneal"], None, "invalid choice: 'anneal'"),
    (["--pick", "latency_ms=<2"], None, "--pick 'latency_ms=<2'"),
    (["--backend", "tensorrt"], None, "unknown --backend 'tensorrt'"),
    (["--trials", "0"], None, "--trials must be at least 1"),
    ([], {"trials": 2}, "search.params: no searchable setting"),
])
def test_bad_input_is_one_line_and_runs_nothing(tmp_path, capsys, args, search, says):
    recipe = _recipe(tmp_path, "bad", search)
    try:
        code, out, err = _cli(capsys, "search", recipe, *args)
    except SystemExit as e:  # plain argparse exits (code 2) on an option it refuses
        code, err = e.code, " ".join(capsys.readouterr().err.split())
    assert code == 2 and says in err
    assert err.count("error:") == 1
    assert not (tmp_path / "runs" / "bad" / "search" / "trials").exists()
