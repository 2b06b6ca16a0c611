"""Users and API keys: keys are stored hashed, found by their plaintext, and stop working when revoked."""
from __future__ import annotations

from sqlalchemy import select

from models.crud import users as crud
from models.user import ApiKey, hash_api_key


def test_key_is_stored_hashed(session, alice):
    row = session.execute(select(ApiKey).where(ApiKey.user_id == alice.id)).scalar_one()
    assert row.key_hash == hash_api_key(alice.plain_key) != alice.plain_key
    assert alice.plain_key.startswith(row.key_prefix) and len(row.key_prefix) < len(alice.plain_key)


def test_key_finds_its_user(session, alice, bob):
    assert crud.get_user_by_key(session=session, key=alice.plain_key) is alice
    assert crud.get_user_by_key(session=session, key=bob.plain_key) is bob
    assert crud.get_user_by_key(session=session, key=alice.plain_key + "x") is None


def test_revoked_key_and_inactive_user_are_refused(session, alice):
    second, plain = crud.create_api_key(session=session, user=alice, name="ci")
    crud.revoke_api_key(session=session, key=second)
    session.flush()
    assert crud.get_user_by_key(session=session, key=plain) is None
    assert crud.get_user_by_key(session=session, key=alice.plain_key) is alice
    alice.is_active = False
    session.flush()
    assert crud.get_user_by_key(session=session, key=alice.plain_key) is None


def test_user_by_name(session, alice):
    assert crud.get_user_by_name(session=session, name="alice") is alice
    assert crud.get_user_by_name(session=session, name="nobody") is None
