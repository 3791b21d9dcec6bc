"""The style and building blocks every edgeslim HTML page shares (the run report, the zoo matrix).

Pages are self-contained: inline CSS, images as ``data:`` URIs, no script, no external asset,
so they open from a CI artifact, an e-mail or a file share as they are.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from typing import Any

CSS = """body{font:14px system-ui,-apple-system,Segoe UI,sans-serif;margin:1.5em;color:#222;background:#fff}
.wrap{max-width:1200px;margin:0 auto}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin:1.6em 0 .5em;border-bottom:1px solid #ddd;
padding-bottom:.2em}h3{font-size:1.05em;margin:1.1em 0 .4em}
table{border-collapse:collapse;font-size:13px;margin:.4em 0}th,td{border:1px solid #ccc;padding:3px 6px;
text-align:left;vertical-align:top}th{background:#f0f0f0;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.ok{background:#f3fbf3}tr.gate_failed{background:#fffbe6}tr.failed{background:#fdf0f0}
tr.flag,td.flag{background:#fde2e2;font-weight:600}td.err{max-width:40em;font-size:12px;color:#700}
.sum{margin:.5em 0 1em}.meta{color:#555;font-size:13px}.note{color:#555;font-size:12px;max-width:60em}
.d{font-size:11px;margin-left:.35em;white-space:nowrap}.good{color:#1a7f37}.bad{color:#b42318}
.flat{color:#777}.badge{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;
font-weight:600;color:#fff;background:#777;vertical-align:middle}.badge.completed{background:#1a7f37}
.badge.failed{background:#b42318}.badge.interrupted,.badge.running{background:#b54708}
.warnbox{border:2px solid #b54708;background:#fff7e6;padding:.5em 1em;margin:1em 0;border-radius:4px}
.warnbox h2{border:0;margin:.2em 0;color:#b54708}.warnbox li{margin:.2em 0}
.errbox{border:2px solid #b42318;background:#fdf0f0;padding:.5em 1em;margin:1em 0;border-radius:4px}
.kpi{display:flex;flex-wrap:wrap;gap:.8em;margin:.8em 0}.kpi div{border:1px solid #ddd;border-radius:4px;
padding:.4em .8em;min-width:9em}.kpi b{display:block;font-size:1.3em}
img.chart{max-width:100%;height:auto;border:1px solid #eee;margin:.3em 0}
.cm td{text-align:right;min-width:2.2em}.cm td.diag{font-weight:700}
code{background:#f4f4f4;padding:0 3px;border-radius:3px}"""


def esc(v: Any) -> str:
    """Text for HTML (``None`` is empty)."""
    return "" if v is None else html.escape(str(v))


def cell(v: Any, cls: str = "", raw: bool = False, title: str = "") -> str:
    """A ``<td>``; ``raw`` takes ``v`` as HTML already escaped by the caller."""
    attrs = (f' class="{cls}"' if cls else "") + (f' title="{esc(title)}"' if title else "")
    return f"<td{attrs}>{v if raw else esc(v)}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], row_classes: Sequence[str] | None = None,
          cls: str = "", num_cols: Iterable[int] = ()) -> str:
    """A table from header texts and rows of ready ``<td>`` strings (see :func:`cell`).

    ``num_cols``: indexes of right-aligned header cells (the cells set their own class).
    """
    nums = set(num_cols)
    head = "".join(f'<th class="num">{esc(h)}</th>' if i in nums else f"<th>{esc(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for i, r in enumerate(rows):
        rc = row_classes[i] if row_classes and i < len(row_classes) and row_classes[i] else ""
        body.append((f'<tr class="{esc(rc)}">' if rc else "<tr>") + "".join(r) + "</tr>")
    c = f' class="{cls}"' if cls else ""
    return f"<table{c}><thead><tr>{head}</tr></thead><tbody>\n" + "\n".join(body) + "\n</tbody></table>"


def png_img(png: bytes, alt: str, width: int | None = None) -> str:
    """An ``<img>`` holding ``png`` as a base64 ``data:`` URI (no file beside the page)."""
    data = base64.b64encode(png).decode("ascii")
    w = f' width="{width}"' if width else ""
    return f'<img class="chart" alt="{esc(alt)}"{w} src="data:image/png;base64,{data}">'


def page(title: str, body: str, lang: str = "en") -> str:
    """A whole self-contained page: the shared CSS inline, no script."""
    return (f"<!DOCTYPE html>\n<html lang=\"{lang}\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>\n{body}\n</body></html>\n")
