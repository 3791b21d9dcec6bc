"""``edgeslim report RUN``: the same page again, one-line errors, interrupted runs, a collapsed class."""

from __future__ import annotations

import html
import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from report_helpers import Page, without_timestamp  # noqa: E402


def test_report_command_writes_the_same_pages(tiny_run, run_copy, cli):
    code, out, err = cli("report", run_copy)
    assert code == 0, err
    assert f"report.html: {run_copy / 'report.html'}" in out
    original = tiny_run["run_dir"]
    assert (run_copy / "report.md").read_text() == (original / "report.md").read_text()
    again, first = (run_copy / "report.html").read_text(), (original / "report.html").read_text()
    assert without_timestamp(again) == without_timestamp(first)
    assert again != without_timestamp(again)  # the timestamp is there, and only it differs


def test_run_json_argument_works_too(run_copy, cli):
    code, _, err = cli("report", run_copy / "run.json", "-q")
    assert code == 0, err


@pytest.mark.parametrize("case", ["missing", "no-run-json", "a-file", "not-json", "not-a-record"])
def test_not_a_run_is_one_error_line(tmp_path, cli, case):
    target = tmp_path / "x"
    if case == "no-run-json":
        target.mkdir()
    elif case == "a-file":
        target.write_text("hello")
    elif case in ("not-json", "not-a-record"):
        target.mkdir()
        (target / "run.json").write_text("{oops" if case == "not-json" else "[1, 2]")
    code, out, err = cli("report", target)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:") and out == "", err
    assert str(target) in lines[0]
    assert not (target / "report.html").exists() if target.is_dir() else True


def test_an_interrupted_run_is_reported_as_such(run_copy, cli):
    # what a kill -9 during the export stage leaves: run.json says running, nobody holds the lock
    rec = json.loads((run_copy / "run.json").read_text())
    rec["status"] = "running"
    rec["stages"][-1]["status"] = "running"
    (run_copy / "run.json").write_text(json.dumps(rec))
    code, out, err = cli("report", run_copy)
    assert code == 0, err
    assert "is interrupted" in out
    page = (run_copy / "report.html").read_text()
    assert 'class="badge interrupted"' in page and "This run was interrupted." in page
    assert "02-export: interrupted" in page and "finished stages only (00-finetune, 01-quantize)" in page
    assert "status: **interrupted**" in (run_copy / "report.md").read_text()


def test_a_class_lost_in_the_final_artifact_stands_out(run_copy, cli):
    # An INT8 collapse on one class cannot be produced on demand with a tiny model, so the final
    # artifact's stored predictions are rewritten to what such a collapse looks like: every test
    # image of one class predicted as another. The report must flag that class and only add it.
    before = {r[1][0] for r in Page((run_copy / "report.html").read_text()).table_with("change (points)")[1:]
              if "flag" in r[0]}
    path = run_copy / "02-export" / "test_predictions.npz"
    z = np.load(path)
    pred, label = z["pred"].copy(), z["label"]
    ref = np.load(run_copy / "00-finetune" / "test_predictions.npz")["pred"]
    acc = [(ref[label == c] == c).mean() for c in range(10)]
    lost = int(np.argmax(acc))  # the float model's best class: its fall is the largest possible
    pred[label == lost] = (lost + 1) % 10
    np.savez(path, pred=pred, label=label)
    code, _, err = cli("report", run_copy)
    assert code == 0, err
    text = (run_copy / "report.html").read_text()
    rows = Page(text).table_with("change (points)")[1:]
    flagged = {cells[0] for cls, cells in rows if "flag" in cls}
    assert str(lost) in flagged and flagged <= before | {str(lost)}
    row = next(cells for _, cells in rows if cells[0] == str(lost))
    assert row[3] == "0.0000" and "collapsed" in row[4]
    assert f"class '{lost}' lost {acc[lost] * 100:.1f} points" in html.unescape(text)  # the warnings box
    assert text.index('id="warnings"') < text.index('id="stages"')
    assert f"class '{lost}' lost" in (run_copy / "report.md").read_text()


def test_predictions_missing_are_evaluated_or_said_missing(run_copy, cli):
    # a run recorded before stages kept their predictions: the final ONNX is evaluated again
    for p in run_copy.glob("*/test_predictions.npz"):
        p.unlink()
    code, _, err = cli("report", run_copy, "--no-evaluate")
    assert code == 0, err
    text = (run_copy / "report.html").read_text()
    assert "Not available: 02-export kept no test_predictions.npz" in text
    code, _, err = cli("report", run_copy)
    assert code == 0, err
    text = (run_copy / "report.html").read_text()
    assert "evaluated on the test split by `edgeslim report`" in text
    head = Page(text).table_with("change (points)")[0][1]
    assert head[2] == "float"  # no float predictions kept either: no change column to compare with


@pytest.mark.parametrize("how", ["search-folder", "picked-run"])
def test_a_search_front_is_embedded(run_copy, tmp_path, cli, how):
    import base64
    import io

    from PIL import Image

    # what `edgeslim search` leaves (edgeslim/search/outputs.py): pareto.json + pareto.png
    search = run_copy / "search" if how == "search-folder" else tmp_path / "elsewhere" / "search"
    search.mkdir(parents=True)
    points = [{"trial": 3, "accuracy": 0.91, "latency_ms": 0.8, "backend": "onnxruntime", "settings": {"ratio": 0.5}},
              {"trial": 7, "accuracy": 0.95, "latency_ms": 1.6, "backend": "onnxruntime", "settings": {"ratio": 0.2}}]
    (search / "pareto.json").write_text(json.dumps(points))
    buf = io.BytesIO()
    Image.new("RGB", (320, 200), (12, 34, 56)).save(buf, format="PNG")
    (search / "pareto.png").write_bytes(buf.getvalue())
    if how == "picked-run":  # a run made by `edgeslim search --pick` names its search in picked.json
        (run_copy / "picked.json").write_text(json.dumps({"search_dir": str(search), "point": points[1]}))
    code, _, err = cli("report", run_copy)
    assert code == 0, err
    text = (run_copy / "report.html").read_text()
    assert 'id="search"' in text
    page = Page(text)
    assert base64.b64encode(buf.getvalue()).decode() in "".join(page.images())  # the search's own plot
    rows = page.table_with("latency ms")[1:]
    assert [r[1][0] for r in rows] == ["3", "7"]  # fastest first
    assert [r[0] for r in rows] == (["", "ok"] if how == "picked-run" else ["", ""])
