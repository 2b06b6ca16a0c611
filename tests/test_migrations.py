"""Alembic is the only way tables are made: upgrade an empty Postgres DB, then autogenerate finds nothing."""
from __future__ import annotations

import secrets

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

import models
from models.migrate import upgrade_database
from tests.integration.conftest import PG_ADMIN, _pg_url

pytestmark = pytest.mark.integration


def test_migrations_match_the_models_on_postgres():
    name = f"lf_mig_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    url = _pg_url(name).replace("postgresql://", "postgresql+psycopg://")
    try:
        engine = create_engine(url)
        with engine.connect() as conn:
            assert inspect(conn).get_table_names() == []
        upgrade_database(url)
        with engine.connect() as conn:
            tables = set(inspect(conn).get_table_names())
            assert {"users", "api_keys", "files", "datasets", "base_models", "jobs", "job_events", "checkpoints",
                    "adapters", "usage_records", "alembic_version"} <= tables
            diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}),
                                    models.Base.metadata)
        assert diff == []
        engine.dispose()
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migrations_run_on_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    upgrade_database(url)
    with create_engine(url).connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), models.Base.metadata)
    assert diff == []
