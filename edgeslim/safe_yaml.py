"""YAML from users, read with bounds: file size, aliases, expanded size and nesting depth.

``yaml.safe_load`` builds no objects but follows aliases freely: a few hundred bytes of
nested ``*refs`` (a "billion laughs") expand into a tree of billions of values once anything
walks it (validation, JSON dumps of the resolved recipe). Every YAML file a user hands to
edgeslim is read with :func:`load_yaml_file`, which refuses such input before it is used.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.events import AliasEvent

from edgeslim.errors import InputError

MAX_BYTES = 1 << 20  # 1 MiB: the largest shipped recipe is ~3 KB
MAX_ALIASES = 64  # a recipe shares a train: block between stages a handful of times
MAX_NODES = 100_000  # values in the document once every alias is expanded
MAX_DEPTH = 64  # nesting of mappings/sequences


class _Bound(yaml.YAMLError):
    """A bound was exceeded (kept a YAMLError so the composer unwinds cleanly)."""


class BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and nesting while composing the node graph."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases, self._depth = 0, 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                raise _Bound(f"uses more than {MAX_ALIASES} YAML aliases (*name references)")
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _Bound(f"nests mappings/lists more than {MAX_DEPTH} levels deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None and _expanded_size(node, {}, set()) > MAX_NODES:
            raise _Bound(f"expands (through its YAML aliases) to more than {MAX_NODES:,} values")
        return node


def _expanded_size(node: yaml.Node, memo: dict[int, int], active: set[int]) -> int:
    """Values in the tree ``node`` stands for, each alias counted as a full copy (memoized, so
    shared nodes cost one visit; a node that contains itself counts as unbounded)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if key in active:
        return MAX_NODES + 1
    total = 1
    if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)):
        active.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for kv in node.value for n in kv]
        for child in children:
            total += _expanded_size(child, memo, active)
            if total > MAX_NODES:
                break
        active.discard(key)
    memo[key] = total
    return total


def parse_yaml(text: str, source: str) -> Any:
    """Parse ``text`` with the bounds; a one-line InputError names ``source`` and the fix."""
    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - BoundedLoader is a SafeLoader
    except _Bound as exc:
        raise InputError(f"{source}: {exc}; such input is refused as a possible 'billion laughs' "
                         "attack; write the values out or use fewer aliases") from exc
    except RecursionError as exc:
        raise InputError(f"{source}: nested too deeply to parse; flatten the YAML") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"{source}: not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from exc


def read_text_bounded(path: str | os.PathLike, what: str = "recipe", max_bytes: int = MAX_BYTES) -> str:
    """The text of a regular file of at most ``max_bytes`` (a FIFO or device is never read)."""
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputError(f"{what} '{p}' does not exist; check the path (relative to {Path.cwd()})") from None
    except OSError as exc:
        raise InputError(f"{what} '{p}' cannot be read ({exc.strerror}); check its permissions") from exc
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{what} '{p}' is not a regular file; give the path of a .yaml file")
    limit = f"{max_bytes / (1 << 20):g} MiB"
    if st.st_size > max_bytes:
        raise InputError(f"{what} '{p}' is {st.st_size / (1 << 20):.1f} MiB, larger than the {limit} a {what} "
                         "may be; a recipe is a few KB of settings, not data")
    try:
        with open(p, "rb") as fh:
            data = fh.read(max_bytes + 1)  # the file may have grown since the stat
    except OSError as exc:
        raise InputError(f"{what} '{p}' cannot be read ({exc.strerror}); check its permissions") from exc
    if len(data) > max_bytes:
        raise InputError(f"{what} '{p}' is larger than the {limit} a {what} may be")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{p}: not a text file ({exc.reason}); a {what} is UTF-8 YAML") from exc


def load_yaml_file(path: str | os.PathLike, what: str = "recipe") -> Any:
    """Read and parse a user's YAML file with every bound (size, aliases, expansion, depth).

    >>> load_yaml_file("recipes/demo.yaml")["run"]["name"]  # doctest: +SKIP
    'demo'
    """
    return parse_yaml(read_text_bounded(path, what), str(path))
