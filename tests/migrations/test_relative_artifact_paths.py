"""Revision 0003: adapter and checkpoint paths under the artifact root become relative, and back."""
from __future__ import annotations

from alembic import command
from sqlalchemy import create_engine, text

from models.migrate import alembic_config, upgrade_database


def insert_rows(url: str, root: str) -> None:
    """Adapters as rows written before 0003 hold them (the schema is unchanged, so the ORM can write them)."""
    from models.crud.users import create_user
    from models.db import make_engine, make_sessionmaker, session_scope
    from models.registry import Adapter

    engine = make_engine(url)
    with session_scope(make_sessionmaker(engine)) as s:
        user, _ = create_user(session=s, name="u")
        rows = [("a1", "ftjob-1", f"{root}/jobs/ftjob-1/adapter"),        # under this root
                ("a2", "ftjob-2", "/old-mount/lf/jobs/ftjob-2/adapter"),  # another host's mount
                ("a3", None, "/somewhere/else/adapter"),                  # outside any store: kept
                ("a4", "ftjob-4", "jobs/ftjob-4/adapter")]                # already relative
        s.add_all([Adapter(id=row_id, owner_id=user.id, name=row_id, base_model="b", job_id=job_id, path=path)
                   for row_id, job_id, path in rows])
    engine.dispose()


def paths(url: str) -> dict[str, str]:
    with create_engine(url).connect() as c:
        return dict(c.execute(text("SELECT id, path FROM adapters")).all())


def test_absolute_paths_under_the_store_become_relative(tmp_path, monkeypatch):
    root = tmp_path / "artifacts"
    monkeypatch.setenv("LORAFLEET_ARTIFACT_URI", str(root))
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade_database(url, "0002")
    insert_rows(url, str(root))
    upgrade_database(url, "0003")
    assert paths(url) == {"a1": "jobs/ftjob-1/adapter", "a2": "jobs/ftjob-2/adapter",
                          "a3": "/somewhere/else/adapter", "a4": "jobs/ftjob-4/adapter"}
    command.downgrade(alembic_config(url), "0002")
    assert paths(url) == {"a1": f"{root}/jobs/ftjob-1/adapter", "a2": f"{root}/jobs/ftjob-2/adapter",
                          "a3": "/somewhere/else/adapter", "a4": f"{root}/jobs/ftjob-4/adapter"}
