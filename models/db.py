"""Engine and session factories. Nothing is created at import time."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
T = TypeVar("T")


def make_engine(url: str, **kwargs) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _):  # WAL: readers don't block the writer
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 20)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work for workers: commit on success, roll back on error."""
    with unit_of_work(factory()) as session:
        yield session


@contextmanager
def unit_of_work(session: Session) -> Iterator[Session]:
    """Commit ``session`` on success, roll it back on error, close it either way."""
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# Errors of a database that is restarting or unreachable: worth waiting out, not worth failing a job for.
TRANSIENT_DB_ERRORS = (OperationalError, InterfaceError)


def retry_transient(fn: Callable[[], T], *, deadline_s: float = 120.0, what: str = "database call") -> T:
    """``fn()``, retried with exponential back-off (0.2 s doubling to 5 s) while the database is unreachable,
    for up to ``deadline_s``; then the last error is raised."""
    delay, give_up_at = 0.2, time.monotonic() + deadline_s
    while True:
        try:
            return fn()
        except TRANSIENT_DB_ERRORS:
            if time.monotonic() + delay > give_up_at:
                raise
            log.warning("%s failed (database unreachable?); retrying in %.1f s", what, delay)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
