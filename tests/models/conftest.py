"""Fixtures for the data layer's tests: a Postgres database of its own per test (a copy of one migrated
template -- the fixtures of ``tests/api/conftest.py``), a session on it, and users to own rows."""
from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.api.conftest import database_url, template_database  # noqa: F401  (fixtures, re-exported)


@pytest.fixture
def session_factory(database_url) -> Iterator[sessionmaker[Session]]:  # noqa: F811
    from models.db import make_engine, make_sessionmaker

    engine = make_engine(database_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def session(session_factory) -> Iterator[Session]:
    with session_factory() as s:
        yield s


@pytest.fixture
def make_user(session) -> Callable:
    """Create a user in the test's session; returns the User row (its plaintext key is ``.plain_key``)."""
    from models.crud.users import create_user

    def make(name: str, **fields):
        user, key = create_user(session=session, name=name)
        for k, v in fields.items():
            setattr(user, k, v)
        user.plain_key = key
        session.flush()
        return user

    return make


@pytest.fixture
def alice(make_user):
    return make_user("alice")


@pytest.fixture
def bob(make_user):
    return make_user("bob")
