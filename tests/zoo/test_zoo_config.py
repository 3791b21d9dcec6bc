"""Bad zoo files and options are one-line errors (exit 2, nothing written); planning, keys, shards."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from zoo_helpers import write_nets, write_zoo  # noqa: E402


def _bad(cli, tmp_path, text: str, *extra: str) -> str:
    zoo = tmp_path / "zoo.yaml"
    zoo.write_text(text)
    out = tmp_path / "out"
    code, stdout, err = cli("zoo", zoo, "--out", out, *extra)
    assert code == 2, (code, stdout, err)
    lines = [ln for ln in err.strip().splitlines() if ln]
    assert lines and all(ln.startswith("error: ") for ln in lines), err
    assert not (out / "results.jsonl").exists(), "bad input must not start a sweep"
    return err


@pytest.mark.parametrize("text, expect", [
    ("models:\n  - source: tinycnn\n    input_sise: 32\n", "unknown key 'input_sise' (did you mean 'input_size'?)"),
    ("modles:\n  - source: tinycnn\n", "unknown key 'modles' (did you mean 'models'?)"),
    ("models:\n  - timm:resnet18d\n", "write '- source: timm:resnet18d'"),
    ("models:\n  - source: tinycnnn\n", "did you mean 'tinycnn'"),
    ("models:\n  - source: timn:resnet18\n", "unknown model source 'timn' (did you mean 'timm'?)"),
    ("models:\n  - source: timm:resnet18dd\n", "unknown timm model 'resnet18dd' (did you mean 'resnet18d'"),
    ("models:\n  - source: nope.py:Net\n", "does not exist"),
    ("models:\n  - source: tinycnn\n  - source: tinycnn\n", "listed twice"),
    ("backends: [onnxrt]\nmodels:\n  - source: tinycnn\n", "unknown backend 'onnxrt' (did you mean 'onnxruntime'?)"),
    ("precisions: [int8]\nmodels:\n  - source: tinycnn\n", "must include fp32"),
    ("models:\n  - source: tinycnn\n    timeout_s: .inf\n", "models.0.timeout_s"),
    ("models:\n  - source: tinycnn\n    calibration: no/such/dir\n", "calibration: 'no/such/dir' does not exist"),
    ("- source: tinycnn\n", "a zoo file is a YAML mapping"),
    ("models: []\n", "no models"),
    ("models: [\n", "not valid YAML"),
])
def test_bad_zoo_files_are_one_line_errors(cli, tmp_path, text, expect):
    assert expect in _bad(cli, tmp_path, text)


def test_every_problem_is_reported_at_once(cli, tmp_path):
    err = _bad(cli, tmp_path, "models:\n  - source: tinycnnn\n  - source: tinycnn\n    opset: 3\n")
    assert "models.0.source" in err and "models.1.opset" in err


@pytest.mark.parametrize("args, expect", [
    (("--shard", "2/2"), "--shard '2/2'"),
    (("--shard", "x"), "is not I/N"),
    (("--only", "timm:*"), "matches no model"),
    (("--workers", "0"), "--workers must be at least 1"),
    (("--backend", "tensorrtt"), "unknown backend 'tensorrtt'"),
    (("--max-params", "lots", "--torchvision"), "--max-params 'lots' is not a count"),
])
def test_bad_options_are_one_line_errors(cli, tmp_path, args, expect):
    assert expect in _bad(cli, tmp_path, "models:\n  - source: tinycnn\n", *args)


def test_nothing_to_run_and_merge_without_results(cli, tmp_path):
    code, _, err = cli("zoo", "--out", tmp_path / "o")
    assert code == 2 and "nothing to run" in err
    (tmp_path / "empty").mkdir()
    code, _, err = cli("zoo", "merge", tmp_path / "empty", "--out", tmp_path / "m")
    assert code == 2 and "has no results.jsonl" in err


def test_entry_keys_mirror_the_settings():
    # Every default may be overridden per model: the two classes must not drift apart.
    from edgeslim.zoo.config import ZooEntry, ZooSettings

    assert set(ZooEntry.model_fields) == set(ZooSettings.model_fields) | {"source", "name"}


def test_tasks_names_keys_and_shards(tmp_path, monkeypatch):
    from edgeslim.zoo.config import load_zoo_file
    from edgeslim.zoo.plan import in_shard, make_tasks

    monkeypatch.chdir(tmp_path)
    write_nets(tmp_path)
    models = [{"source": "tinycnn"}, {"source": "nets.py:Small", "input_size": 48},
              {"source": "tinyresnet"}, {"source": "tinymobilenet", "name": "mobile"}, {"source": "test_mlp"}]
    zoo = load_zoo_file(write_zoo(tmp_path / "z.yaml", models))
    tasks = make_tasks(zoo, zoo.models, "z.yaml")
    assert [t["name"] for t in tasks] == ["tinycnn", "nets.py:Small", "tinyresnet", "mobile", "test_mlp"]
    assert tasks[1]["settings"]["input_size"] == 48 and tasks[0]["settings"]["input_size"] == 32
    assert len({t["key"] for t in tasks}) == 5 and len({t["folder"] for t in tasks}) == 5
    again = make_tasks(zoo, zoo.models, "z.yaml")
    assert [t["key"] for t in again] == [t["key"] for t in tasks], "keys must be deterministic"
    # a changed user file is a new key (the file's content is part of it)
    (tmp_path / "nets.py").write_text((tmp_path / "nets.py").read_text() + "\n# changed\n")
    changed = make_tasks(zoo, zoo.models, "z.yaml")
    assert changed[1]["key"] != tasks[1]["key"] and changed[0]["key"] == tasks[0]["key"]
    # shards: disjoint, complete, balanced, and independent of the order of the list
    parts = [in_shard(tasks, (i, 3)) for i in range(3)]
    names = [t["name"] for p in parts for t in p]
    assert sorted(names) == sorted(t["name"] for t in tasks)
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert [t["name"] for t in in_shard(tasks[::-1], (1, 3))] == [t["name"] for t in parts[1]][::-1]


def test_family_shortcuts_read_metadata_only():
    from edgeslim.zoo.config import timm_entries, torchvision_entries

    tv = torchvision_entries(150e6)
    names = [e.source for e in tv]
    # the figure: 75 torchvision classifiers up to 150M parameters (no weights downloaded)
    assert "torchvision:resnet18" in names and "torchvision:vit_h_14" not in names and len(names) >= 70
    assert [e.source for e in timm_entries("resnet18*")][:1] == ["timm:resnet18"]


def test_zoo_file_defaults_validate_like_entries(tmp_path):
    from edgeslim.zoo.config import load_zoo_file

    z = load_zoo_file(write_zoo(tmp_path / "z.yaml", [{"source": "tinycnn", "precisions": ["fp32"]}],
                                backends=["onnxruntime"]))
    assert z.models[0].precisions == ["fp32"] and z.input_size == 32
    assert yaml.safe_load((tmp_path / "z.yaml").read_text())["models"][0]["source"] == "tinycnn"


def test_shipped_zoo_files_plan(monkeypatch):
    # the benchmark's zoo files validate: every timm name exists in the installed timm, the
    # torchvision defaults take the --torchvision shortcut, the smoke's user file is found
    from edgeslim.zoo.config import load_zoo_file, torchvision_entries
    from edgeslim.zoo.plan import make_tasks

    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    zoos = root / "benchmarks" / "zoos"
    timm100 = load_zoo_file(zoos / "timm100.yaml")
    assert len(make_tasks(timm100, timm100.models, "timm100.yaml")) == 100
    tv = load_zoo_file(zoos / "torchvision.yaml")
    assert len(make_tasks(tv, torchvision_entries(150e6), "torchvision.yaml")) == 75
    smoke = load_zoo_file(zoos / "smoke.yaml")
    assert [t["name"] for t in make_tasks(smoke, smoke.models, "smoke.yaml")][-1] == "smoke_nets.py:TwoBranch"
