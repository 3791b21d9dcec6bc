"""One exception family. Every message is one line: what was given, what is valid, how to fix it."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class EdgeslimError(Exception):
    """Base of every error edgeslim raises on purpose. ``exit_code`` is what the CLI returns."""

    exit_code = 1


class InputError(EdgeslimError, ValueError):
    """Bad input from the user (a file, a name, a setting): exit code 2, nothing written."""

    exit_code = 2


class RecipeError(InputError):
    """A recipe that does not validate. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


class CheckpointError(InputError):
    """A checkpoint that is missing, corrupt, unsafe or does not fit the architecture."""


class StageError(EdgeslimError):
    """A stage failed while running (exit code 1); earlier stages stay intact."""


class GateError(StageError):
    """A parity or accuracy gate failed; the artifact is kept for inspection."""


class MissingDependencyError(EdgeslimError, ImportError):
    """An optional dependency is not installed; the message carries the ``pip install`` line."""

    exit_code = 2


def did_you_mean(given: str, valid: Iterable[str], n: int = 3) -> str:
    """Return ``" (did you mean 'x'?)"`` for close matches of ``given`` in ``valid``, else ``""``."""
    matches = difflib.get_close_matches(str(given), list(valid), n=n, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(f"'{m}'" for m in matches) + "?)"


def unknown_name(kind: str, given: str, valid: Iterable[str], hint: str = "") -> InputError:
    """Build the standard error for an unknown registry name."""
    valid = sorted(valid)
    shown = ", ".join(valid[:20]) + (" ..." if len(valid) > 20 else "")
    msg = f"unknown {kind} '{given}'{did_you_mean(given, valid)}; valid: {shown}"
    return InputError(msg + (f"; {hint}" if hint else ""))


def require(module: str, extra: str) -> object:
    """Import an optional dependency or raise with the install line."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{module} is not installed ({exc}); install it with: pip install 'edgeslim[{extra}]'"
        ) from exc
