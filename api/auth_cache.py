"""A small in-process cache of API key -> user id, so hot read paths skip the key lookup.

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
        self._entries: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def get(self, key_hash: str) -> str | None:
        hit = self._entries.get(key_hash)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key_hash: str, user_id: str) -> None:
        with self._lock:
            if len(self._entries) >= _MAX_ENTRIES:
                self._entries.clear()
            self._entries[key_hash] = (time.monotonic() + self.ttl, user_id)

    def drop_user(self, user_id: str) -> None:
        with self._lock:
            for k in [k for k, (_, uid) in self._entries.items() if uid == user_id]:
                del self._entries[k]
