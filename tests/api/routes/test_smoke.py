"""The fast API fixtures work: a user, an upload, a 404 for another user's file."""
from __future__ import annotations


def test_upload_and_ownership(client, alice, bob, upload):
    f = upload(alice, '{"instruction": "Say hi", "input": "", "output": "hi"}\n')
    assert client.get(f"/v1/files/{f['id']}", headers=alice.headers).json()["id"] == f["id"]
    r = client.get(f"/v1/files/{f['id']}", headers=bob.headers)
    assert r.status_code == 404 and r.json()["error"]["param"] == "file_id"
    assert client.get("/v1/files", headers={"Authorization": "Bearer nope"}).status_code == 401
