"""Fast API tests: the real app (``api.main.create_app``, no dispatcher, no worker) under FastAPI's
``TestClient``, on a Postgres database of its own per test.

Each test's database is a copy of one migrated template (``CREATE DATABASE ... TEMPLATE``), so a test
starts from empty tables in ~0.1 s and no test sees another's rows. Where a real worker is the point,
the tests live in ``tests/integration``.
"""
from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psycopg
import pytest

from tests.conftest import PG_ADMIN, _pg_url


@pytest.fixture(scope="session")
def template_database() -> Iterator[str]:
    """A migrated database used only as the template of each test's database."""
    from models.migrate import upgrade_database

    name = f"lf_api_tpl_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    upgrade_database(_pg_url(name).replace("postgresql://", "postgresql+psycopg://"))
    yield name
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def database_url(template_database) -> Iterator[str]:
    """A fresh database for one test, copied from the migrated template."""
    name = f"lf_api_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"')
    yield _pg_url(name).replace("postgresql://", "postgresql+psycopg://")
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(database_url, tmp_path):
    from models.settings import Settings

    return Settings(DATABASE_URL=database_url, LORAFLEET_DATA_DIR=str(tmp_path / "data"),
                    LORAFLEET_MAX_UPLOAD_BYTES=str(1024 * 1024), LORAFLEET_MAX_LINE_BYTES=str(64 * 1024))


@pytest.fixture
def app(settings):
    from api.main import create_app

    return create_app(settings)  # no dispatcher: submitted jobs stay queued


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


@dataclass
class ApiUser:
    id: str
    name: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


@pytest.fixture
def make_user(client, app) -> Callable[..., ApiUser]:
    """Create a user straight in the test's database; returns its id, name and API key."""
    from models.crud.users import create_user
    from models.db import session_scope

    def make(name: str | None = None, *, is_admin: bool = False) -> ApiUser:
        name = name or f"user-{secrets.token_hex(3)}"
        with session_scope(app.state.session_factory) as s:
            user, key = create_user(session=s, name=name, is_admin=is_admin)
            s.flush()
            return ApiUser(user.id, name, key)

    return make


@pytest.fixture
def alice(make_user) -> ApiUser:
    return make_user("alice")


@pytest.fixture
def bob(make_user) -> ApiUser:
    return make_user("bob")


@pytest.fixture
def admin(make_user) -> ApiUser:
    return make_user("root-admin", is_admin=True)


@pytest.fixture
def upload(client) -> Callable[..., dict]:
    """Upload ``content`` as ``user`` with ``purpose``; returns the JSON response (asserts 200)."""

    def do(user: ApiUser, content: bytes | str, purpose: str = "fine-tune", filename: str = "data.jsonl") -> dict:
        data = content.encode() if isinstance(content, str) else content
        r = client.post("/v1/files", headers=user.headers, files={"file": (filename, data)},
                        data={"purpose": purpose})
        assert r.status_code == 200, r.text
        return r.json()

    return do
