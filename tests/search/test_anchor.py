"""Anchored latency of the search (real onnxruntime sessions): the first artifact becomes the
study's anchor, later ones are timed interleaved with it and scaled by its figure; the record is
created once (first writer wins) and survives the original file's removal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgeslim.search.measure import Measurer
from edgeslim.search.space import LatencySpec

D = 256
FAST = LatencySpec(warmup=2, min_iters=20, min_time_s=0.05, rounds=4)


def chain_onnx(path: Path, width: int, depth: int) -> Path:
    """x [N, D] -> depth MatMuls of width -> [N, width]: cost grows with width^2 * depth."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits, prev, dim = [], [], "x", D
    for i in range(depth):
        w = numpy_helper.from_array((rng.standard_normal((dim, width)) / np.sqrt(dim)).astype(np.float32), f"w{i}")
        inits.append(w)
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}" if i < depth - 1 else "y"]))
        prev, dim = f"h{i}", width
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", D])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    # ~65k MACs against ~4.5M: the slow one costs far more than any timer noise can hide
    return chain_onnx(tmp_path / "fast.onnx", D, 1), chain_onnx(tmp_path / "slow.onnx", 1024, 5)


def test_first_artifact_anchors_the_rest(tmp_path: Path, files) -> None:
    fast, slow = files
    m = Measurer(tmp_path / "cache", FAST, threads=1)
    a = m.latency_ms(fast, (D,))
    assert a["vs_anchor"] == 1.0 and not a["cached"]
    rec = m.anchor()
    assert rec is not None and rec["ms"] == a["latency_ms"]
    assert (tmp_path / "cache" / rec["onnx"]).is_file()  # a copy: trial folders may be cleaned
    b = m.latency_ms(slow, (D,))
    assert b["vs_anchor"] > 3.0  # ~70x the MACs; 3x leaves room for any kernel and load
    assert b["latency_ms"] == pytest.approx(rec["ms"] * b["vs_anchor"])
    assert b["iters"] >= FAST.min_iters and b["raw_median_ms"] > 0
    assert m.latency_ms(slow, (D,))["cached"] is True


def test_anchor_survives_its_source_and_is_created_once(tmp_path: Path, files) -> None:
    fast, slow = files
    m = Measurer(tmp_path / "cache", FAST, threads=1)
    m.latency_ms(fast, (D,))
    first = m.anchor()
    moved = tmp_path / "elsewhere.onnx"
    shutil.move(fast, moved)
    other = Measurer(tmp_path / "cache", FAST, threads=1)  # a second worker on the same folder
    assert other.anchor(slow, np.zeros((1, D), np.float32)) == first  # exists: not replaced
    assert other.latency_ms(slow, (D,))["vs_anchor"] > 3.0
    records = list((tmp_path / "cache").glob("anchor-*.json"))
    assert len(records) == 1 and json.loads(records[0].read_text())["sha256"] == first["sha256"]
    assert not list((tmp_path / "cache").glob("*.tmp*"))


def test_unanchored_times_alone(tmp_path: Path, files) -> None:
    fast, slow = files
    spec = LatencySpec(warmup=2, min_iters=20, min_time_s=0.05, anchored=False)
    m = Measurer(tmp_path / "cache", spec, threads=1)
    out = m.latency_ms(slow, (D,))
    assert "vs_anchor" not in out and m.anchor() is None
    assert out["latency_ms"] > 0


def test_a_missing_anchor_file_is_one_clear_error(tmp_path: Path, files) -> None:
    from edgeslim.errors import InputError

    fast, slow = files
    m = Measurer(tmp_path / "cache", FAST, threads=1)
    m.latency_ms(fast, (D,))
    (tmp_path / "cache" / m.anchor()["onnx"]).unlink()
    with pytest.raises(InputError, match="is missing: this study's latencies are relative to it"):
        m.latency_ms(slow, (D,))


class _StatefulMachine(Measurer):
    """The machine's state is the one thing outside the product: each measurement's anchor state
    comes from a script (what a VM whose neighbour starts and stops would give), the rest is real."""

    def __init__(self, *a, states: list[float], **kw) -> None:
        super().__init__(*a, **kw)
        self.states, self.calls = list(states), 0

    def against_anchor(self, be, x, anchor):
        got = super().against_anchor(be, x, anchor)
        state = self.states[min(self.calls, len(self.states) - 1)]
        self.calls += 1
        return {**got, "anchor_state": state, "vs_anchor": got["vs_anchor"] * state}


def test_a_measurement_off_the_anchors_state_is_retried_and_recorded(tmp_path: Path, files, monkeypatch) -> None:
    import edgeslim.search.measure as M

    monkeypatch.setattr(M, "SETTLE_WAIT_S", 0.0)
    fast, slow = files
    m = _StatefulMachine(tmp_path / "cache", FAST, threads=1, states=[1.3, 1.02])
    m.latency_ms(fast, (D,))  # the anchor
    b = m.latency_ms(slow, (D,))
    assert m.calls == 2 and b["attempts"] == 2 and b["in_anchor_state"] and b["anchor_state"] == 1.02
    # stuck in another state: SETTLE_RETRIES more tries, the nearest kept and flagged
    m2 = _StatefulMachine(tmp_path / "cache2", FAST, threads=1, states=[1.4, 1.25, 1.3])
    m2.latency_ms(fast, (D,))
    c = m2.latency_ms(slow, (D,))
    assert m2.calls == 1 + M.SETTLE_RETRIES and c["attempts"] == 1 + M.SETTLE_RETRIES
    assert c["anchor_state"] == 1.25 and not c["in_anchor_state"]
    recs = [json.loads(f.read_text()) for f in (tmp_path / "cache2").glob("*.latency-*.json")]
    assert [r.get("anchor_state") for r in recs if r["sha256"] == c["sha256"]] == [1.25]  # cached with it
