"""The ``edgeslim`` command: a thin layer over the API. Exit codes: 0 ok, 1 failure, 2 bad input."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

# Each name is a module edgeslim.cli.<name> with register(subparsers). A module that is not
# there (a command still to come) is skipped, so adding a command never touches this file.
COMMANDS = ("run", "validate", "info", "tune", "export", "deploy", "bench", "check", "models", "init", "zoo", "search",
            "report")

EPILOG = """examples:
  edgeslim run recipes/demo.yaml            run a recipe (finished stages are reused)
  edgeslim run recipes/demo.yaml --resume   continue an interrupted run
  edgeslim validate recipes/demo.yaml       check a recipe without running it
  edgeslim info torchvision:resnet18 --image-size 224
exit codes: 0 ok, 1 failure, 2 bad input"""


class Parser(argparse.ArgumentParser):
    """argparse with edgeslim's error format: one ``error:`` line naming the command and where
    its help is, exit code 2 (argparse prints the whole usage block first).

    The top-level parser is one, and ``add_subparsers`` makes every command's parser of the
    parser's own class, so every subcommand, present and future, reports this way.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message}; see '{self.prog} --help'\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="edgeslim", description="Compress, export, verify and benchmark "
               "PyTorch vision models for edge devices.", epilog=EPILOG,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    from edgeslim import __version__

    p.add_argument("--version", action="version", version=f"edgeslim {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"edgeslim.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"edgeslim.cli.{name}":
                raise
            continue
        mod.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from edgeslim.errors import EdgeslimError, RecipeError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed in one line
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows up here, inside the handler below
        return code
    except BrokenPipeError:
        return _stdout_closed()
    except RecipeError as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return exc.exit_code
    except EdgeslimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; finished stages are kept: rerun with --resume", file=sys.stderr)
        return 130


def _stdout_closed() -> int:
    """The reader of our stdout went away (``edgeslim validate R --print | head -1``).

    As the Python docs advise: point stdout at devnull so the interpreter's final flush
    does not raise again, and end quietly with the status a SIGPIPE-killed tool has.
    """
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 141


def add_quiet(p: argparse.ArgumentParser) -> None:
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors and the final result")


