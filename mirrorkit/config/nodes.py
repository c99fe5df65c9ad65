"""A uniform view of the input: YAML nodes (``load``) or Python values (``from_values``).

Reading a file composes it to nodes with papermill's YAML 1.1 resolver, so the checks see both
the value papermill would pass and how it was written (``raw``, ``style``, ``line``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

import yaml

from .problems import Problem

__all__ = ["Node", "MAP", "SEQ", "SCALAR", "UNREADABLE", "PapermillLoader", "YamlConverter", "from_python",
           "join", "last_key", "SECRETISH", "looks_secretish"]

MAP, SEQ, SCALAR = "map", "seq", "scalar"


@dataclass(eq=False)
class Node:
    kind: str
    value: Any                  # scalar: the value papermill would pass; map: [(key Node, value Node)]; seq: [Node]
    raw: str | None = None      # YAML scalar: the text as written (None for Python values)
    style: str | None = None    # YAML scalar style: None = plain, "'", '"', "|", ">"
    line: int | None = None


class _Unreadable:
    """A value that could not be read (reported already)."""

    def __repr__(self) -> str:
        return "<unreadable>"


UNREADABLE = _Unreadable()
_MAX_DEPTH = 40
_MAX_NODES = 200_000


class PapermillLoader(yaml.SafeLoader):
    """papermill's loader: SafeLoader (YAML 1.1) without the timestamp resolver."""
    yaml_implicit_resolvers = {
        k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
        for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_STD = "tag:yaml.org,2002:"


class YamlConverter:
    def __init__(self, loader: PapermillLoader, problems: list[Problem]):
        self.loader = loader
        self.problems = problems
        self.memo: dict[int, Node] = {}
        self.active: set[int] = set()
        self.count = 0

    def convert(self, node: yaml.Node, path: str, depth: int = 0) -> Node:
        key = id(node)
        if key in self.memo:
            return self.memo[key]
        line = node.start_mark.line + 1
        if key in self.active:
            self.problems.append(Problem(path, "refers to itself through an alias",
                                        "remove the recursive *alias", line))
            return Node(SCALAR, UNREADABLE, line=line)
        self.count += 1
        if depth > _MAX_DEPTH or self.count > _MAX_NODES:
            return Node(SCALAR, UNREADABLE, line=line)
        self.active.add(key)
        try:
            out = self._convert(node, path, depth, line)
        finally:
            self.active.discard(key)
        self.memo[key] = out
        return out

    def _convert(self, node: yaml.Node, path: str, depth: int, line: int) -> Node:
        if isinstance(node, yaml.ScalarNode):
            try:
                value = self.loader.construct_object(node, deep=True)
            except Exception:   # noqa: BLE001 - any failure of an explicit tag (!!int abc, !foo)
                shown = "" if looks_secretish(path) else f" {node.tag}"
                self.problems.append(Problem(path, f"cannot read this value as the YAML tag{shown}",
                                            "remove the !tag and write a plain value", line))
                value = UNREADABLE
            return Node(SCALAR, value, raw=node.value, style=node.style, line=line)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _STD + "seq":
                self.problems.append(Problem(path, f"unsupported YAML tag {node.tag}",
                                            "remove the tag", line))
            return Node(SEQ, [self.convert(item, f"{path}[{i}]", depth + 1)
                             for i, item in enumerate(node.value)], line=line)
        # mapping
        if node.tag != _STD + "map":
            self.problems.append(Problem(path, f"unsupported YAML tag {node.tag}", "remove the tag", line))
        pairs: list[tuple[Node, Node]] = []
        merged: list[tuple[Node, Node]] = []
        for knode, vnode in node.value:
            if knode.tag == _STD + "merge":
                merged.extend(self._merge(vnode, path, depth))
                continue
            if isinstance(knode, yaml.ScalarNode):
                k = self.convert(knode, path, depth + 1)
            else:
                k = Node(SCALAR, UNREADABLE, raw="<complex key>", line=knode.start_mark.line + 1)
            kname = k.value if isinstance(k.value, str) else (k.raw or "?")
            pairs.append((k, self.convert(vnode, join(path, kname), depth + 1)))
        if merged:
            explicit = {k.value for k, _ in pairs if isinstance(k.value, str)}
            seen: set[str] = set()
            extra = []
            for k, v in merged:     # earlier merge sources win, explicit keys win over all
                if isinstance(k.value, str) and (k.value in explicit or k.value in seen):
                    continue
                if isinstance(k.value, str):
                    seen.add(k.value)
                extra.append((k, v))
            pairs = extra + pairs
        return Node(MAP, pairs, line=line)

    def _merge(self, vnode: yaml.Node, path: str, depth: int) -> list[tuple[Node, Node]]:
        sources = vnode.value if isinstance(vnode, yaml.SequenceNode) else [vnode]
        out: list[tuple[Node, Node]] = []
        for src in sources:
            if not isinstance(src, yaml.MappingNode):
                self.problems.append(Problem(path, "a << merge key needs a mapping (or a list of mappings)",
                                            "write <<: *anchor where &anchor names a mapping",
                                            src.start_mark.line + 1))
                continue
            conv = self.convert(src, path, depth + 1)
            if conv.kind == MAP:
                out.extend(conv.value)
        return out


def from_python(value: Any, path: str = "", depth: int = 0, active: set[int] | None = None) -> Node:
    active = set() if active is None else active
    if depth > _MAX_DEPTH:
        return Node(SCALAR, UNREADABLE)
    if isinstance(value, Mapping):
        if id(value) in active:
            return Node(SCALAR, UNREADABLE)
        active.add(id(value))
        try:
            pairs = []
            for k, v in list(value.items()):
                kname = k if isinstance(k, str) else repr(k)
                pairs.append((Node(SCALAR, k), from_python(v, join(path, kname), depth + 1, active)))
        finally:
            active.discard(id(value))
        return Node(MAP, pairs)
    if isinstance(value, (list, tuple)):
        if id(value) in active:
            return Node(SCALAR, UNREADABLE)
        active.add(id(value))
        try:
            items = [from_python(v, f"{path}[{i}]", depth + 1, active) for i, v in enumerate(value)]
        finally:
            active.discard(id(value))
        return Node(SEQ, items)
    return Node(SCALAR, value)


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def last_key(path: str) -> str:
    tail = path.rsplit(".", 1)[-1]
    return re.sub(r"\[\d+\]$", "", tail) or tail


#: Key names that hold secrets.
SECRETISH = re.compile(r"password|secret|token|pwd", re.IGNORECASE)


def looks_secretish(path: str) -> bool:
    """Whether a key path names a secret (``password``, ``token`` ...), so its value is never shown."""
    return any(SECRETISH.search(seg) and seg != "secrets" for seg in re.split(r"[.\[\]]", path) if seg)
