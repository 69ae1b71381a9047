"""Who may moderate: the main app's admins, and members it marks `messaging_moderator`.

Read from the main app on every call, so granting or revoking takes effect at once.
"""

from __future__ import annotations

from gateway.exceptions import Forbidden
from gateway.messaging.models import Member
from gateway.moderation.models import Role
from gateway.services import Services


async def role_of(s: Services, member: Member) -> Role | None:
    if member.is_admin:
        return "admin"
    if await s.directory.has_moderator_attribute(member.user_id):
        return "moderator"
    return None


async def require_moderator(s: Services, member: Member) -> Role:
    role = await role_of(s, member)
    if role is None:
        raise Forbidden("Only moderators may do this.")
    return role


async def require_admin(s: Services, member: Member) -> None:
    if not member.is_admin:
        raise Forbidden("Only admins may do this.")
