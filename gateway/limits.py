"""Every size limit a client can run into, declared once.

Whichever layer checks a limit, and every error message that states one, imports it from
here, so changing a number changes it everywhere at once.
"""

from __future__ import annotations

# Request bodies, before any parsing.
MAX_REQUEST_BYTES = 16 * 1024
# SQLite's integers are 64-bit: a larger id or cursor names nothing that can exist.
MAX_ID = 2**63 - 1

# The main app's session ids are 32 hex characters; anything much longer is not one.
MAX_SESSION_ID_CHARS = 128

# Messaging.
MAX_BODY_CHARS = 4000
MAX_CLIENT_ID_CHARS = 128
MAX_ORIGIN_REF_CHARS = 200
MEMBER_SEARCH_LIMIT = 50

# Listings: messages, reports, audit and compliance entries.
DEFAULT_PAGE = 50
MAX_PAGE = 200

# Moderation.
MAX_NOTE_CHARS = 1000
MAX_RESOLUTION_CHARS = 1000
MAX_REASON_CHARS = 500
REPORT_CONTEXT_EACH_SIDE = 5

# Live delivery.
MAX_POLL_WAIT_SECONDS = 25

# Introductions: a reply counts when it comes within this many days of the conversation.
REPLY_WINDOW_DAYS = 30
