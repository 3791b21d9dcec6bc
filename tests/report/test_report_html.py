"""report.html of a real run: one self-contained page with every section, images that decode,
latency in one column per runtime; report.md with the same latency columns."""

from __future__ import annotations

import base64
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from report_helpers import Page  # noqa: E402


def _page(run_dir: Path) -> tuple[str, Page]:
    text = (run_dir / "report.html").read_text()
    return text, Page(text)


def test_page_is_self_contained(tiny_run):
    text, page = _page(tiny_run["run_dir"])
    # no script, no stylesheet link, no frame; every src/href is embedded data or an in-page anchor
    assert not [t for t, _ in page.tags if t in ("script", "link", "iframe", "object", "embed")]
    for tag, attrs in page.tags:
        for key in ("src", "href"):
            if key in attrs:
                assert attrs[key].startswith(("data:image/png;base64,", "#")), (tag, attrs[key][:80])
    assert "http://" not in text and "https://" not in text and "url(" not in text


def test_every_image_decodes(tiny_run):
    from PIL import Image

    _, page = _page(tiny_run["run_dir"])
    srcs = page.images()
    # bar charts, latency per runtime, the fine-tune curves, the final artifact's confusion matrix
    assert len(srcs) >= 4, len(srcs)
    for src in srcs:
        im = Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1], validate=True)))
        im.load()  # decodes the whole image, not only its header
        assert im.format == "PNG" and im.width > 100 and im.height > 100


def test_page_has_every_section(tiny_run):
    text, page = _page(tiny_run["run_dir"])
    for section in ('id="stages"', 'id="charts"', 'id="training"', 'id="final"', 'id="precision"',
                    'id="parity"', 'id="environment"'):
        assert section in text, section
    stages = page.table_with("stage")
    assert [r[1][0] for r in stages[1:]] == ["00-finetune", "01-quantize", "02-export"]
    assert "Confusion matrix" in text and "Per-class accuracy" in text
    per_class = page.table_with("change (points)")
    assert len(per_class) - 1 == 10  # the ten digit classes
    env = dict(r[1] for r in page.table_with("what")[1:])
    assert env["CPU"] and "avx512_vnni" in env["CPU features (INT8/BF16 speed)"]
    assert "onnxruntime" in env["versions"] and "run.threads 1" in env["threads"]
    prec = page.table_with("candidate")
    assert {r[1][0] for r in prec[1:]} >= {"onnxruntime/fp32", "onnxruntime/int8"}


def test_latency_columns_name_their_runtime_and_never_mix(tiny_run):
    run = json.loads((tiny_run["run_dir"] / "run.json").read_text())
    _, page = _page(tiny_run["run_dir"])
    table = page.table_with("stage")
    head = table[0][1]
    eager, ort = head.index("latency ms · torch eager"), head.index("latency ms · onnxruntime")
    for (_, cells), st in zip(table[1:], run["stages"], strict=True):
        runtime = st["metrics"]["latency_backend"]
        # a stage's latency sits only in the column of the runtime that measured it
        assert (cells[eager] != "") == (runtime == "torch") and (cells[ort] != "") == (runtime == "onnxruntime")
        expected = f"{st['metrics']['latency_ms']:.3f}"
        assert cells[eager if runtime == "torch" else ort].startswith(expected)
    md = (tiny_run["run_dir"] / "report.md").read_text()
    assert "| latency ms · torch eager | latency ms · onnxruntime |" in md
    assert "| 00-finetune |" in md and "torch eager" in md


def test_final_artifact_is_the_int8_onnx_compared_with_the_float_model(tiny_run):
    text, page = _page(tiny_run["run_dir"])
    assert "Final artifact: 02-export in onnxruntime" in text
    head = page.table_with("change (points)")[0][1]
    assert head[2] == "float (00-finetune)" and head[3] == "final (02-export)"
    # the stored predictions are the run's own figure: their accuracy is the recorded test accuracy
    import numpy as np

    z = np.load(tiny_run["run_dir"] / "02-export" / "test_predictions.npz")
    run = json.loads((tiny_run["run_dir"] / "run.json").read_text())
    assert float((z["pred"] == z["label"]).mean()) == run["stages"][2]["metrics"]["test_accuracy"]
