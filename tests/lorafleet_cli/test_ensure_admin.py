"""One admin bootstrap per deployment: hosts with their own data dirs on one database make one admin."""
from __future__ import annotations

import multiprocessing
import stat

from lorafleet_cli.bootstrap import ensure_admin
from models.crud.users import get_user_by_key
from models.db import make_engine, make_sessionmaker
from models.settings import Settings
from models.user import User
from tests.api.conftest import database_url, template_database  # noqa: F401  (fixtures)


def host(database_url, data_dir, store=None) -> Settings:  # noqa: F811
    extra = {"LORAFLEET_ARTIFACT_URI": str(store)} if store else {}
    return Settings(DATABASE_URL=database_url, LORAFLEET_DATA_DIR=str(data_dir), **extra)


def admins(settings: Settings) -> list[User]:
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with make_sessionmaker(engine)() as s:
            return s.query(User).filter_by(is_admin=True).all()
    finally:
        engine.dispose()


def key_owner(settings: Settings, key: str) -> User | None:
    engine = make_engine(settings.sqlalchemy_url)
    try:
        with make_sessionmaker(engine)() as s:
            return get_user_by_key(session=s, key=key)
    finally:
        engine.dispose()


def test_twice_on_one_host_keeps_one_admin(database_url, tmp_path):  # noqa: F811
    settings = host(database_url, tmp_path / "a")
    first = ensure_admin(settings)
    key = first.read_text().strip()
    assert ensure_admin(settings) == first and first.read_text().strip() == key
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    assert len(admins(settings)) == 1 and key_owner(settings, key).is_admin


def test_a_second_host_finds_the_admin_key_in_the_shared_store(database_url, tmp_path):  # noqa: F811
    store = tmp_path / "shared"
    a, b = host(database_url, tmp_path / "a", store), host(database_url, tmp_path / "b", store)
    key_a, key_b = ensure_admin(a), ensure_admin(b)
    assert key_a == tmp_path / "a" / "admin.key" and key_b == tmp_path / "b" / "admin.key"
    assert key_a.read_text() == key_b.read_text() == (store / ".lorafleet" / "admin.key").read_text()
    (admin,) = admins(a)
    assert key_owner(b, key_b.read_text().strip()).id == admin.id
    assert stat.S_IMODE(key_b.stat().st_mode) == 0o600


def test_a_second_host_without_a_shared_store_makes_no_second_admin(database_url, tmp_path):  # noqa: F811
    a, b = host(database_url, tmp_path / "a"), host(database_url, tmp_path / "b")
    assert ensure_admin(a) is not None
    assert ensure_admin(b) is None and not (tmp_path / "b" / "admin.key").exists()
    assert len(admins(a)) == 1


def bootstrap_in_a_process(database_url: str, data_dir: str, store: str, start) -> None:  # noqa: F811
    start.wait(30)
    assert ensure_admin(host(database_url, data_dir, store)) is not None


def test_hosts_bootstrapping_at_once_make_one_admin(database_url, tmp_path):  # noqa: F811
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=bootstrap_in_a_process,
                         args=(database_url, str(tmp_path / name), str(tmp_path / "shared"), start))
             for name in ("a", "b", "c")]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    settings = host(database_url, tmp_path / "a")
    (admin,) = admins(settings)
    keys = {(tmp_path / name / "admin.key").read_text() for name in ("a", "b", "c")}
    assert len(keys) == 1 and key_owner(settings, keys.pop().strip()).id == admin.id


def test_the_embedded_default_bootstraps_one_admin_too(tmp_path):
    """SQLite (one host's file): a lock file beside it serialises bootstraps."""
    from lorafleet_cli.bootstrap import migrate

    settings = Settings(LORAFLEET_DATA_DIR=str(tmp_path / "data"))
    migrate(settings)
    key_file = ensure_admin(settings)
    assert ensure_admin(settings) == key_file == tmp_path / "data" / "admin.key"
    (admin,) = admins(settings)
    assert key_owner(settings, key_file.read_text().strip()).id == admin.id
