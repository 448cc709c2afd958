"""Protocol state tables: which message is handled in which state, by which handler, and which
states that handler may lead to. Reading a table is reading the protocol; a session checks every
transition against it at run time (an undeclared one is a bug, ended safely), a test checks the
handlers' code against it, and ``docs/sessions.md`` draws it (``python -m tools.session_diagrams``).

The charger's tables are keyed by (state, request name) and lead to states; the car's by the
response it awaits and lead to the requests it may send next. Each protocol has its own table.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from enum import Enum


@dataclass(frozen=True)
class Transition:
    """A handler and what it may lead to (besides the table's end, which is always allowed)."""

    handler: Callable
    next: frozenset

    def __init__(self, handler: Callable, *nexts: Hashable):
        object.__setattr__(self, "handler", handler)
        object.__setattr__(self, "next", frozenset(nexts))


class UndeclaredTransition(RuntimeError):
    """A handler led somewhere its table does not declare: a bug in v2h, never the peer's doing."""


class StateTable:
    """One protocol's table: ``entries[(state, message)]`` or ``entries[message]``."""

    def __init__(self, name: str, entries: dict[Hashable, Transition], *, end: Hashable):
        self.name = name
        self.entries = entries
        self.end = end

    def get(self, key: Hashable) -> Transition | None:
        return self.entries.get(key)

    def __iter__(self) -> Iterator[tuple[Hashable, Transition]]:
        return iter(self.entries.items())

    def check(self, key: Hashable, reached: Hashable) -> None:
        """Raise UndeclaredTransition unless ``reached`` is declared for ``key`` (or the end)."""
        entry = self.entries[key]
        if reached != self.end and reached not in entry.next:
            raise UndeclaredTransition(f"{self.name}: {_label(key)} led to {_label(reached)}, declared "
                                       f"{sorted(_label(n) for n in entry.next)}")

    def mermaid(self) -> str:
        """The table as a Mermaid state diagram (every edge labelled with the message handled)."""
        lines = ["stateDiagram-v2"]
        for key, t in self.entries.items():
            src, msg = (key if isinstance(key, tuple) else (key, key))
            for dst in sorted(t.next | {self.end}, key=_label):
                lines.append(f"    {_node(src)} --> {_node(dst)}: {_label(msg)}")
        return "\n".join(lines)


def _label(x) -> str:
    if isinstance(x, tuple):
        return " / ".join(_label(y) for y in x)
    return x.value if isinstance(x, Enum) else str(x)


def _node(x) -> str:
    return _label(x).replace(" ", "_").replace("/", "_")
