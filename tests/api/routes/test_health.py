"""``GET /health`` answers without a key, in the documented shape."""
from __future__ import annotations


def test_health_needs_no_key(client):
    assert client.get("/health").json() == {"status": "ok", "database": "ok", "mode": "embedded"}  # no Redis
