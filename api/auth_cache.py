"""A small in-process cache of API key hash -> user snapshot, so hot read paths skip two queries.

Entries live ``TTL_SECONDS``; revoking a key through this process drops it at once, other API
replicas stop accepting it within the TTL.
"""
from __future__ import annotations

import threading
import time

TTL_SECONDS = 5.0
_MAX_ENTRIES = 10_000


class AuthCache:
    def __init__(self, ttl: float = TTL_SECONDS):
        self.ttl = ttl
        self._entries: dict[str, tuple[float, object]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str):
        hit = self._entries.get(key_hash)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key_hash: str, user) -> None:
        with self._lock:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[key_hash] = (time.monotonic() + self.ttl, user)

    def drop_user(self, user_id: str) -> None:
        with self._lock:
            for k in [k for k, (_, user) in self._entries.items() if user.id == user_id]:
                del self._entries[k]
