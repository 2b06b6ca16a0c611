"""The private-server harness: stopping really cuts clients off, starting again keeps the port, and clients
configured before the outage reconnect (Postgres also keeps its committed rows)."""
from __future__ import annotations

import socket

import psycopg
import pytest
import redis
import sqlalchemy as sa
from redis.backoff import NoBackoff
from redis.retry import Retry

from tests.support import private_servers
from tests.support.private_servers import PrivatePostgres, PrivateRedis

pytestmark = pytest.mark.integration
private_redis = private_servers.private_redis  # the fixtures, bound here so pytest finds them
private_postgres = private_servers.private_postgres


def _refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_redis_client_reconnects_to_the_same_port_after_a_restart(private_redis):
    client = redis.Redis.from_url(private_redis.url, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    client.set("k", "v")
    assert client.get("k") == b"v"
    port = private_redis.port

    private_redis.stop()
    with pytest.raises(redis.ConnectionError):
        client.ping()

    private_redis.start()
    assert private_redis.port == port
    assert client.ping() is True
    assert client.get("k") is None  # no persistence: the restarted server is a fresh, empty one
    client.set("k", "again")
    assert client.get("k") == b"again"


def test_redis_start_fails_with_the_server_log_when_its_port_is_taken():
    server = PrivateRedis()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", server.port))
        squatter.listen()
        with pytest.raises(RuntimeError, match="(?i)address already in use"), server:
            pass
    assert not server.dir.exists()


def test_redis_close_stops_the_server_and_removes_its_dir():
    with PrivateRedis() as server:
        assert redis.Redis.from_url(server.url).ping() is True
        directory = server.dir
    assert _refuses_connections(server.port)
    assert not directory.exists()


def test_postgres_keeps_committed_rows_across_a_stop_and_start(private_postgres):
    url = private_postgres.create_database("faults")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE jobs (id int PRIMARY KEY, state text)")
        conn.execute("INSERT INTO jobs VALUES (1, 'running'), (2, 'queued')")
    port = private_postgres.port

    private_postgres.stop()
    assert not private_postgres.is_running
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(url, connect_timeout=2)

    private_postgres.start()
    assert private_postgres.port == port
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id, state FROM jobs ORDER BY id").fetchall()
    assert rows == [(1, "running"), (2, "queued")]


def test_postgres_survives_an_immediate_stop_by_crash_recovery(private_postgres):
    url = private_postgres.create_database("crash")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE t AS SELECT generate_series(1, 100) AS n")

    private_postgres.stop(mode="immediate")
    private_postgres.start()

    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (100,)


def test_sqlalchemy_pre_ping_recovers_where_a_plain_pool_fails_after_restart(private_postgres):
    url = private_postgres.url_for(private_postgres.create_database("pool").rsplit("/", 1)[1], driver="psycopg")
    plain = sa.create_engine(url, pool_size=1)
    pinged = sa.create_engine(url, pool_size=1, pool_pre_ping=True)
    try:
        for engine in (plain, pinged):
            with engine.connect() as conn:  # leaves one connection in each pool
                assert conn.execute(sa.text("SELECT 1")).scalar() == 1

        private_postgres.restart()

        with pytest.raises(sa.exc.OperationalError), plain.connect() as conn:  # stale pooled connection
            conn.execute(sa.text("SELECT 1"))
        with pinged.connect() as conn:
            assert conn.execute(sa.text("SELECT 1")).scalar() == 1
    finally:
        plain.dispose()
        pinged.dispose()


def test_postgres_close_stops_the_server_and_removes_its_files():
    with PrivatePostgres() as server:
        assert server.is_running
        base = server.base_dir
    assert _refuses_connections(server.port)
    assert not base.exists()
