"""The pool's waiting line: round-robin between groups, first-in first-out inside a group.

A group is usually one input file.  Taking one task from each group in turn
means a ten-minute file's forty chunks cannot hold back a short file that
arrived after it: the short file's chunks interleave with the long one's.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, Hashable, TypeVar

T = TypeVar("T")


class FairQueue(Generic[T]):
    def __init__(self) -> None:
        self._groups: dict[Hashable, deque[T]] = {}
        self._turns: deque[Hashable] = deque()  # groups with work, in the order they get a turn
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def push(self, item: T, group: Hashable = "") -> None:
        """Append ``item`` to its group; a new group takes the last turn."""
        items = self._groups.get(group)
        if items is None:
            items = self._groups[group] = deque()
            self._turns.append(group)
        items.append(item)
        self._size += 1

    def push_front(self, item: T, group: Hashable = "") -> None:
        """Put ``item`` first in its group and give the group the next turn (used for retries,
        so a file waiting for one retried chunk is not held back a whole round)."""
        items = self._groups.get(group)
        if items is None:
            items = self._groups[group] = deque()
        else:
            self._turns.remove(group)
        items.appendleft(item)
        self._turns.appendleft(group)
        self._size += 1

    def pop(self) -> T | None:
        """The head of the group whose turn it is, or None when empty."""
        if not self._turns:
            return None
        group = self._turns.popleft()
        items = self._groups[group]
        item = items.popleft()
        if items:
            self._turns.append(group)
        else:
            del self._groups[group]
        self._size -= 1
        return item

    def drain(self) -> list[T]:
        """Remove and return everything, in the order ``pop`` would have given it."""
        out = []
        while self._size:
            out.append(self.pop())
        return out
