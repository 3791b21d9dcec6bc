"""Models and files for the gate tests: tiny conv nets, ONNX files that fail to load or to run,
and a reader for the three reports a check writes."""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "deploy"))
from bench_helpers import conv_net, export  # noqa: E402,F401

# Short but real measurements: the verdicts these tests assert are either forced (a stored
# baseline that cannot give a CI, a round count that cannot be reached) or far from any
# threshold; none depends on how fast this machine is.
FAST = ("--min-time", "0.3", "--min-rounds", "8", "--round-ms", "5", "--warmup", "2")


def tiny_graph(path: Path, node: Any, inits: list[Any] = (), opsets: tuple = (("", 17),)) -> Path:
    """A one-node ONNX with input x [N, 3, 16, 16] (for files onnxruntime refuses or fails on)."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([node], "g", [x], [y], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def runtime_failure_onnx(path: Path) -> Path:
    """Loads fine; every run fails: 768 input values cannot be reshaped to rows of 7."""
    import numpy as np
    from onnx import helper, numpy_helper

    shape = numpy_helper.from_array(np.array([-1, 7], dtype=np.int64), "shape")
    return tiny_graph(path, helper.make_node("Reshape", ["x", "shape"], ["y"]), [shape])


def wrong_channels_onnx(path: Path) -> Path:
    """A conv whose kernel wants 4 input channels where the input has 3 (fails when run)."""
    import numpy as np
    from onnx import helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((8, 4, 3, 3), np.float32), "w")
    return tiny_graph(path, helper.make_node("Conv", ["x", "w"], ["y"]), [w])


def unknown_op_onnx(path: Path) -> Path:
    """A valid ONNX file onnxruntime cannot load: an operator nobody registered."""
    from onnx import helper

    node = helper.make_node("Foo", ["x"], ["y"], domain="com.example")
    return tiny_graph(path, node, opsets=(("", 17), ("com.example", 1)))


def reports(tmp_path: Path) -> tuple[list[str], dict[str, Path]]:
    """CLI arguments that write all three reports, and where they go."""
    paths = {"md": tmp_path / "gate.md", "junit": tmp_path / "gate.xml", "json": tmp_path / "gate.json"}
    return ["--markdown", str(paths["md"]), "--junit", str(paths["junit"]), "--json", str(paths["json"])], paths


def read_reports(paths: dict[str, Path]) -> tuple[str, Any, dict[str, Any]]:
    """(Markdown text, the JUnit <testsuite>, the JSON report)."""
    suite = ET.parse(paths["junit"]).getroot().find("testsuite")
    return paths["md"].read_text(), suite, json.loads(paths["json"].read_text())


def one_line_error(err: str) -> bool:
    """A single 'error: ...' line on stderr, no traceback."""
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    return len(lines) == 1 and lines[0].startswith("error:") and "Traceback" not in err
