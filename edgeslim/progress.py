"""Progress and messages for every command: rich bars on a terminal, one plain line per event
otherwise, nothing with ``-q``.

Progress and messages go to standard output, so ``edgeslim run R > log`` keeps them in the
log; warnings and errors go to standard error (shown even with ``-q``).

* **terminal** (stdout is a TTY): transient rich progress bars and coloured messages.
* **plain** (stdout is not a TTY, e.g. a CI log or a file; or ``EDGESLIM_PROGRESS=plain``):
  one line per stage start/end, epoch, pruning step, trial, benchmark, in a stable format::

      [   4.2s] 01-finetune: start: fine-tune on the task's data
      [   6.9s] 01-finetune: epoch 1/8: loss 0.6931 val_loss 0.6712 val_acc 0.5000 time 2.1s
      [  30.0s] 01-finetune: done in 25.8s: test_acc 0.9513 latency_ms 1.234 (torch)

  that is ``[<seconds since the command started>s] <scope>: <event>`` (``LINE_RE`` parses it);
  a counted event reads ``<what> <i>/<n>[: <details>]``.
* **quiet** (``-q``): no progress and no messages; the command prints its final result itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")

# The plain line: elapsed seconds, an optional scope (a stage folder, "tune", "bench"), the event.
LINE_RE = re.compile(r"^\[\s*(?P<elapsed>\d+\.\d)s\] (?:(?P<scope>[^\s:]+): )?(?P<event>.*)$")
# A counted event inside a plain line: "epoch 3/8: loss ...", "trials 2/10: ...".
COUNT_RE = re.compile(r"^(?P<what>[\w ]+?) (?P<i>\d+)/(?P<n>\d+|\?)(?:: (?P<info>.*))?$")


def plain_mode() -> bool:
    """True when progress is written as plain lines: ``EDGESLIM_PROGRESS=plain``, or stdout is
    not a terminal (``EDGESLIM_PROGRESS=rich`` forces bars)."""
    mode = os.environ.get("EDGESLIM_PROGRESS", "").strip().lower()
    if mode in ("plain", "lines"):
        return True
    if mode in ("rich", "tty"):
        return False
    isatty = getattr(sys.stdout, "isatty", None)
    return not (callable(isatty) and isatty())


def plain_text(msg: str) -> str:
    """``msg`` without rich markup (``[bold]x[/bold]`` -> ``x``); unchanged when it is not markup."""
    if "[" not in msg:
        return msg
    try:
        from rich.text import Text

        return Text.from_markup(msg).plain
    except Exception:  # rich.errors.MarkupError: brackets that are text, not tags
        return msg


class Reporter:
    """What stages and commands report through, whatever the output is (see the module doc)."""

    def __init__(self, quiet: bool = False, silent: bool = False):
        self.quiet = quiet or silent
        self.silent = silent  # not even warnings: for callers that read run.json themselves
        self.scope: str | None = None  # the stage running now: prefixes plain lines
        self._console: Any = None
        self._t0 = time.monotonic()
        self._stage_t0 = self._t0

    @property
    def plain(self) -> bool:
        return plain_mode()

    @property
    def console(self) -> Any:
        """A rich console on stdout (follows ``sys.stdout`` when it is replaced)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(quiet=self.quiet)
        return self._console

    def line(self, text: str) -> None:
        """One plain line with the elapsed time (plain mode's format)."""
        print(f"[{time.monotonic() - self._t0:7.1f}s] {text}", flush=True)

    def _scoped(self, text: str) -> str:
        return f"{self.scope}: {text}" if self.scope else text

    def log(self, msg: str) -> None:
        if self.quiet:
            return
        if self.plain:
            self.line(self._scoped(plain_text(msg).strip()))
        else:
            self.console.print(msg, highlight=False)

    def warn(self, msg: str) -> None:
        """A warning the user must see: on stderr, even with --quiet (not when silent)."""
        if self.silent:
            return
        if self.quiet or self.plain:
            print(f"warning: {msg}", file=sys.stderr, flush=True)
            return
        from rich.console import Console

        Console(stderr=True).print(f"[bold yellow]warning:[/bold yellow] {msg}", highlight=False,
                                   soft_wrap=True, markup=True)

    # ---- stages ----------------------------------------------------------------------------
    def stage_start(self, name: str, doc: str) -> None:
        self.scope, self._stage_t0 = None, time.monotonic()
        if self.quiet:
            pass
        elif self.plain:
            self.line(f"{name}: start: {doc}")
        else:
            self.console.print(f"[bold]{name}[/bold]: {doc}", highlight=False)
        self.scope = name

    def stage_end(self, name: str, summary: str = "", failed: str | None = None) -> None:
        took = time.monotonic() - self._stage_t0
        self.scope = None
        if self.quiet:
            return
        text = (f"{name}: failed after {took:.1f}s: {failed}" if failed is not None
                else f"{name}: done in {took:.1f}s" + (f": {summary}" if summary else ""))
        if self.plain:
            self.line(text)
        elif failed is None:
            self.console.print(f"[dim]{text}[/dim]", highlight=False, markup=True)

    def stage_reused(self, name: str, summary: str = "") -> None:
        self.scope = None
        self.log(f"[dim]{name}: up to date, reused" + (f": {summary}" if summary else "") + "[/dim]")

    # ---- progress --------------------------------------------------------------------------
    def track(self, items: Iterable[T], total: int | None = None, description: str = "") -> Iterator[T]:
        """Iterate with a progress bar (terminal), a line per item (plain), or silently (quiet)."""
        if self.quiet or (self.plain and not description):
            yield from items
            return
        if self.plain:
            with self.task(description, total) as advance:
                for item in items:
                    yield item
                    advance(1)
            return
        from rich.progress import track

        yield from track(items, total=total, description=description, console=self.console, transient=True)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Callable[..., None]]:
        """Progress advanced by hand: ``with r.task("epoch", 10) as adv: adv(1, info="loss 0.3")``.

        Plain mode prints ``<description> <done>/<total>: <info>`` for every advance of n > 0.
        """
        if self.quiet:
            yield lambda n=1, **kw: None
            return
        if self.plain:
            done = [0]

            def advance(n: int = 1, info: str = "", **_: Any) -> None:
                done[0] += n
                if n > 0:
                    count = f"{description} {done[0]}/{total if total is not None else '?'}"
                    self.line(self._scoped(count + (f": {info}" if info else "")))

            yield advance
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=self.console,
                      transient=True) as prog:
            tid = prog.add_task(self._scoped(description), total=total, info="")
            yield lambda n=1, info="", **_: prog.update(tid, advance=n, info=info)

    @contextlib.contextmanager
    def activity(self, scope: str, detail: str = "", spinner: bool = True,
                 announce: bool = True, finish: bool = True) -> Iterator[Callable[[str], None]]:
        """A long single action (a benchmark, a gate check). Plain mode prints
        ``<scope>: start[: <detail>]`` (unless ``announce`` is False) and ``<scope>: done in
        <s>s[: <result>]``, or ``failed after`` when it raises (announced actions only: an
        unannounced one leaves its error as the only output); a terminal shows a spinner unless
        ``spinner`` is False (the action shows its own bar). The yielded function sets the result.
        ``finish`` False leaves out the ``done`` line where the command prints its result itself
        as its first line (``check``'s verdict, which CI logs and scripts read)."""
        result = [""]
        t0 = time.monotonic()
        if self.quiet:
            yield lambda text: None
            return
        plain = self.plain
        status = None
        if plain and announce:
            self.line(f"{scope}: start" + (f": {detail}" if detail else ""))
        elif not plain and spinner:
            status = self.console.status(f"{scope}: {detail}" if detail else scope)
            status.start()
        try:
            yield lambda text: result.__setitem__(0, text)
        except BaseException:
            if plain and announce:
                self.line(f"{scope}: failed after {time.monotonic() - t0:.1f}s")
            raise
        finally:
            if status is not None:
                status.stop()
        if plain and finish:
            self.line(f"{scope}: done in {time.monotonic() - t0:.1f}s" + (f": {result[0]}" if result[0] else ""))


NULL = Reporter(silent=True)
