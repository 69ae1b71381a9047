"""These tests hold on SQLite and on PostgreSQL alike."""

from tests.support.stores import store_kind

__all__ = ["store_kind"]
