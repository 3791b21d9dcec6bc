"""``--pick 'latency_ms<=2.0'`` / ``--pick 'accuracy>=0.95'``: a tiny grammar, parsed, never evaluated.

``FIELD OP NUMBER`` with FIELD ``latency_ms`` or ``accuracy`` (a fraction, 0..1), OP one of
``<= < >= >``. A latency bound picks the most accurate point that meets it (ties: the faster);
an accuracy bound picks the fastest (ties: the more accurate).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgeslim.errors import InputError

FIELDS = ("latency_ms", "accuracy")
OPS = ("<=", ">=", "<", ">")
_RE = re.compile(r"^\s*([A-Za-z_]+)\s*(<=|>=|<|>|==|=|!=)?\s*(.*?)\s*$")
_NUM = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_HELP = "use FIELD OP NUMBER with FIELD latency_ms or accuracy and OP <=, <, >= or >, e.g. 'latency_ms<=2.0'"


@dataclass(frozen=True)
class Pick:
    field: str
    op: str
    value: float

    def holds(self, point: dict[str, Any]) -> bool:
        x = float(point[self.field])
        return {"<=": x <= self.value, "<": x < self.value, ">=": x >= self.value, ">": x > self.value}[self.op]

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value:g}"


def parse_pick(text: str) -> Pick:
    """Parse ``text``; InputError (one line: given, valid, fix) for anything else.

    >>> parse_pick(" latency_ms <= 2")
    Pick(field='latency_ms', op='<=', value=2.0)
    """
    shown = repr(text[:60])
    m = _RE.match(text or "")
    if m is None:
        raise InputError(f"--pick {shown} is not a condition; {_HELP}")
    field, op, num = m.groups()
    if field not in FIELDS:
        from edgeslim.errors import did_you_mean

        raise InputError(f"--pick {shown}: unknown field '{field}'{did_you_mean(field, FIELDS)}; {_HELP}")
    if op not in OPS:
        why = f"operator '{op}' is not supported" if op else "no operator"
        raise InputError(f"--pick {shown}: {why}; {_HELP}")
    if not _NUM.match(num):
        raise InputError(f"--pick {shown}: '{num[:30]}' is not a number; {_HELP}")
    value = float(num)
    if not math.isfinite(value):
        raise InputError(f"--pick {shown}: the bound must be finite; {_HELP}")
    if field == "accuracy" and not 0 <= value <= 1:
        raise InputError(f"--pick {shown}: accuracy is a fraction from 0 to 1 (given {value:g}; for "
                         f"{value:g}% write accuracy{op}{value / 100:g})")
    if field == "latency_ms" and value <= 0 and op in ("<=", "<"):
        raise InputError(f"--pick {shown}: no latency is {op} {value:g} ms; give a positive bound")
    return Pick(field, op, value)


def choose(points: Sequence[dict[str, Any]], pick: Pick) -> dict[str, Any]:
    """The point ``pick`` selects; InputError naming the closest point when none meets it."""
    if not points:
        raise InputError(f"--pick '{pick}': the study has no completed trial yet; run trials first (--trials N)")
    ok = [p for p in points if pick.holds(p)]
    if pick.field == "latency_ms":
        best = max(ok, key=lambda p: (p["accuracy"], -p["latency_ms"]), default=None)
    else:
        best = min(ok, key=lambda p: (p["latency_ms"], -p["accuracy"]), default=None)
    if best is not None:
        return best
    near = min(points, key=lambda p: abs(float(p[pick.field]) - pick.value))
    raise InputError(f"--pick '{pick}': no point of the front meets it; the closest is trial #{near.get('trial')} "
                     f"(accuracy {near['accuracy']:.4f}, latency_ms {near['latency_ms']:.4g}); relax the bound "
                     "or run more trials")
