"""Plain values passed between the store, the actions and the views, with their JSON shapes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# Where a conversation began, as a client may say it (gateway/views/request.py checks this).
ORIGIN_TYPES = ("request", "profile", "suggestion", "inbox")
# What may be stored: the client's types, and "imported" (history brought over from
# WhiteBalloon's own messaging module by gateway/import_upstream.py; ref "thread:<id>"),
# which only the gateway itself writes.
STORED_ORIGIN_TYPES = (*ORIGIN_TYPES, "imported")
OriginType = Literal["request", "profile", "suggestion", "inbox", "imported"]


@dataclass(frozen=True, slots=True)
class Member:
    user_id: int
    username: str
    is_admin: bool = False

    @classmethod
    def former(cls, user_id: int) -> Member:
        """A member no longer in the main app's directory: their history stays, under a
        neutral name."""
        return cls(user_id, f"former member #{user_id}")

    def public(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "username": self.username}

    def me(self) -> dict[str, Any]:
        return {"user_id": self.user_id, "username": self.username, "is_admin": self.is_admin}


@dataclass(frozen=True, slots=True)
class Origin:
    type: OriginType
    ref: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "ref": self.ref}


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    conversation_id: int
    sender_id: int
    body: str
    created_at: str
    client_id: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "conversation_id": self.conversation_id,
            "sender_id": self.sender_id,
            "body": self.body,
            "created_at": self.created_at,
            "client_id": self.client_id,
        }


@dataclass(frozen=True, slots=True)
class Conversation:
    """One row of `conversations`, independent of who is looking at it."""

    id: int
    member_ids: tuple[int, int]
    created_by: int
    origin: Origin
    created_at: str
    updated_at: str

    def peer_of(self, user_id: int) -> int:
        low, high = self.member_ids
        return high if user_id == low else low

    def has_member(self, user_id: int) -> bool:
        return user_id in self.member_ids


@dataclass(frozen=True, slots=True)
class ConversationView:
    """A conversation as one participant sees it in their inbox."""

    conversation: Conversation
    peer: Member
    last_message: Message | None
    unread_count: int
    last_read_message_id: int

    def to_json(self) -> dict[str, Any]:
        c = self.conversation
        return {
            "id": c.id,
            "peer": self.peer.public(),
            "last_message": self.last_message.to_json() if self.last_message else None,
            "unread_count": self.unread_count,
            "last_read_message_id": self.last_read_message_id,
            "origin": c.origin.to_json(),
            "created_by": c.created_by,
            "created_at": c.created_at,
            "updated_at": c.updated_at,
        }
