"""Progress and messages: rich progress bars on a terminal, silence with --quiet."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class Reporter:
    """Thin wrapper over rich so stages can show progress without caring about --quiet."""

    def __init__(self, quiet: bool = False, silent: bool = False):
        self.quiet = quiet or silent
        self.silent = silent  # not even warnings: for callers that read run.json themselves
        self._console = None

    @property
    def console(self) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=True, quiet=self.quiet)
        return self._console

    def log(self, msg: str) -> None:
        if not self.quiet:
            self.console.print(msg, highlight=False)

    def warn(self, msg: str) -> None:
        """A warning the user must see: printed on stderr even with --quiet (not when silent)."""
        if self.silent:
            return
        if self.quiet:
            import sys

            print(f"warning: {msg}", file=sys.stderr)
        else:
            self.console.print(f"[bold yellow]warning:[/bold yellow] {msg}", highlight=False, soft_wrap=True)

    def track(self, items: Iterable[T], total: int | None = None, description: str = "") -> Iterator[T]:
        """Iterate with a progress bar (only on a terminal and when not quiet)."""
        if self.quiet or not sys.stderr.isatty():
            yield from items
            return
        from rich.progress import track

        yield from track(items, total=total, description=description, console=self.console, transient=True)

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Any]:
        """A progress bar advanced by hand: ``with r.task("epochs", 10) as adv: adv(1)``."""
        if self.quiet or not sys.stderr.isatty():
            yield lambda n=1, **kw: None
            return
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                      TimeRemainingColumn(), TextColumn("{task.fields[info]}"), console=self.console,
                      transient=True) as prog:
            tid = prog.add_task(description, total=total, info="")
            yield lambda n=1, info="": prog.update(tid, advance=n, info=info)


NULL = Reporter(silent=True)
