"""Who takes part in each recently used conversation, remembered per worker.

A conversation's two members never change, so this cache is never stale; it only saves a
send the database read that would learn them again.
"""

from __future__ import annotations


class ConversationMembers:
    def __init__(self, limit: int = 100_000) -> None:
        self._limit = limit
        self._members: dict[int, tuple[int, int]] = {}

    def get(self, conversation_id: int) -> tuple[int, int] | None:
        return self._members.get(conversation_id)

    def remember(self, conversation_id: int, members: tuple[int, int]) -> None:
        if len(self._members) >= self._limit:
            self._members.clear()
        self._members[conversation_id] = members
