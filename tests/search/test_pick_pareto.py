"""The --pick grammar (parsed, never evaluated), the Pareto front and the 2-D hypervolume."""

from __future__ import annotations

import pytest

from edgeslim.errors import InputError
from edgeslim.search.pareto import hypervolume, hypervolume_report, pareto_front, reference
from edgeslim.search.pick import Pick, choose, parse_pick

POINTS = [
    {"trial": 0, "accuracy": 0.90, "latency_ms": 1.0},
    {"trial": 1, "accuracy": 0.80, "latency_ms": 2.0},  # dominated by trial 0
    {"trial": 2, "accuracy": 0.95, "latency_ms": 3.0},
    {"trial": 3, "accuracy": 0.70, "latency_ms": 0.5},
    {"trial": 4, "accuracy": 0.95, "latency_ms": 3.0},  # equal to trial 2: the first is kept
    {"trial": 5, "accuracy": 0.95, "latency_ms": 4.0},  # dominated by trial 2 (same accuracy, slower)
]


@pytest.mark.parametrize("text,want", [
    ("latency_ms<=2.0", Pick("latency_ms", "<=", 2.0)),
    ("  latency_ms <  2 ", Pick("latency_ms", "<", 2.0)),
    ("accuracy>=0.95", Pick("accuracy", ">=", 0.95)),
    ("accuracy > .5", Pick("accuracy", ">", 0.5)),
    ("latency_ms<=1e-1", Pick("latency_ms", "<=", 0.1)),
])
def test_pick_grammar_accepts(text, want):
    assert parse_pick(text) == want


@pytest.mark.parametrize("text,says", [
    ("latency<=2", "did you mean 'latency_ms'"),
    ("latency_ms", "no operator"),
    ("latency_ms==2", "operator '==' is not supported"),
    ("latency_ms<=two", "'two' is not a number"),
    ("latency_ms<=1+1", "'1+1' is not a number"),
    ("accuracy>=95", "for 95% write accuracy>=0.95"),
    ("latency_ms<=0", "give a positive bound"),
    ("latency_ms<=1e999", "must be finite"),
    ("", "is not a condition"),
    # Python that eval() would run: it is text that does not fit the grammar, nothing more
    ("__import__('os').system('touch /tmp/x')", "unknown field '__import__'"),
    ("latency_ms<=__import__('os').getpid()", "is not a number"),
])
def test_pick_grammar_refuses_with_one_line(text, says):
    with pytest.raises(InputError) as e:
        parse_pick(text)
    msg = str(e.value)
    assert says in msg and "\n" not in msg and msg.startswith("--pick ")


def test_pick_chooses_most_accurate_within_latency_and_fastest_within_accuracy():
    front = pareto_front(POINTS)
    assert choose(front, parse_pick("latency_ms<=2.5"))["trial"] == 0  # 0.90 at 1.0 ms beats 0.70 at 0.5
    assert choose(front, parse_pick("latency_ms<0.9"))["trial"] == 3
    assert choose(front, parse_pick("accuracy>=0.9"))["trial"] == 0  # fastest meeting 0.9
    assert choose(front, parse_pick("accuracy>0.9"))["trial"] == 2


def test_pick_nothing_satisfies_names_the_closest_point():
    with pytest.raises(InputError) as e:
        choose(pareto_front(POINTS), parse_pick("latency_ms<=0.1"))
    msg = str(e.value)
    assert "no point of the front meets it" in msg and "closest is trial #3" in msg and "\n" not in msg
    with pytest.raises(InputError, match="no completed trial"):
        choose([], parse_pick("accuracy>=0.5"))


def test_pareto_front_drops_dominated_and_duplicate_points():
    front = pareto_front(POINTS)
    assert [p["trial"] for p in front] == [3, 0, 2]  # fastest first
    assert pareto_front([]) == []


def test_hypervolume_by_hand():
    # Front (0.5 ms, 0.70), (1.0, 0.90), (3.0, 0.95); reference latency 4.4 (1.1 x 4.0), accuracy 0:
    # 0.70 x (1.0 - 0.5) + 0.90 x (3.0 - 1.0) + 0.95 x (4.4 - 3.0) = 0.35 + 1.8 + 1.33 = 3.48
    ref = reference(POINTS)
    assert ref == {"accuracy": 0.0, "latency_ms": pytest.approx(4.4)}
    assert hypervolume(POINTS, ref["latency_ms"]) == pytest.approx(3.48)
    assert hypervolume(pareto_front(POINTS), ref["latency_ms"]) == pytest.approx(3.48)  # dominated add nothing
    rep = hypervolume_report(POINTS)
    assert rep["normalized"] == pytest.approx(3.48 / 4.4) and rep["reference"] == ref
    # a reference accuracy above some points clips them; a point beyond the reference latency adds nothing
    assert hypervolume(POINTS, 2.0, ref_accuracy=0.8) == pytest.approx(0.1 * 1.0)
    assert hypervolume([{"accuracy": 0.9, "latency_ms": 5.0}], 4.0) == 0.0


def test_better_front_has_larger_hypervolume():
    worse = [{"accuracy": 0.8, "latency_ms": 2.0}]
    better = worse + [{"accuracy": 0.85, "latency_ms": 1.5}]
    ref = reference(better)["latency_ms"]
    assert hypervolume(better, ref) > hypervolume(worse, ref)
