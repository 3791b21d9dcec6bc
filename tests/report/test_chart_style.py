"""Charts are drawn on matplotlib's defaults whatever style the process holds (optuna's plots switch
it to ggplot), and the caller's style is left as it was: a regenerated report is byte-identical."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")


def test_a_chart_ignores_and_keeps_the_callers_style():
    import matplotlib
    import matplotlib.pyplot as plt

    from edgeslim.reporting import charts

    before = charts.stage_bars(["a", "b"], [("latency", [1.0, 2.0])])
    with matplotlib.rc_context():
        plt.style.use("ggplot")
        after = charts.stage_bars(["a", "b"], [("latency", [1.0, 2.0])])
        assert matplotlib.rcParams["axes.facecolor"] == "#E5E5E5"  # still the caller's ggplot
    assert before is not None and before == after
