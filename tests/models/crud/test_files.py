"""The owned-file lookup every reader of a user's file goes through."""
from __future__ import annotations

from models.crud.files import get_owned_file
from models.file import File


def add_file(session, owner) -> File:
    f = File(owner_id=owner.id, filename="d.jsonl", purpose="fine-tune", bytes=1, storage_path="x", sha256="0")
    session.add(f)
    session.flush()
    return f


def test_owner_gets_the_file(session, alice):
    f = add_file(session, alice)
    assert get_owned_file(session=session, file_id=f.id, owner_id=alice.id) is f


def test_other_users_and_missing_ids_get_nothing(session, alice, bob):
    f = add_file(session, alice)
    assert get_owned_file(session=session, file_id=f.id, owner_id=bob.id) is None
    assert get_owned_file(session=session, file_id="file-missing", owner_id=alice.id) is None
