"""Private Redis and PostgreSQL servers for fault-injection tests.

Tests that stop and restart a server must never touch the shared ones (Postgres 127.0.0.1:5432, Redis
127.0.0.1:6379): other tests and other people use those. Each server here is its own process on a free
loopback port with its files in a fresh temp dir. ``stop()`` / ``start()`` keep the port (and, for Postgres,
the data dir), so clients configured with ``.url`` before the outage reconnect afterwards.

Use the fixtures from a conftest::

    from tests.support.private_servers import private_postgres, private_redis  # noqa: F401

or, in a test module (binding by assignment keeps ruff's F811 quiet where tests take them as arguments)::

    from tests.support import private_servers
    private_postgres = private_servers.private_postgres
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Self

import pytest

LOG_TAIL_CHARS = 4000  # how much of a server log an error message carries
SERVER_OS_USER = "postgres"  # PostgreSQL refuses to run as root; as root we run it as this user


def free_port() -> int:
    """A loopback port nothing listens on right now (the OS picks it; a race is possible but rare)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _log_tail(path: Path) -> str:
    try:
        return path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
    except FileNotFoundError:
        return "(no log written)"


def _wait_until(ready: Callable[[], bool], timeout: float, failed: Callable[[], bool] = lambda: False) -> bool:
    """Poll ``ready`` until it holds; give up early when ``failed`` says the process is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        if failed():
            return False
        time.sleep(0.05)
    return ready()



class _StartedInContext:
    """``with Server() as s``: started on enter (closed again if the start fails), closed on exit."""

    def start(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class PrivateRedis(_StartedInContext):
    """A throwaway ``redis-server`` without persistence: a restart starts empty, on the same port."""

    def __init__(self, port: int | None = None, start_timeout: float = 10.0) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise FileNotFoundError("redis-server is not on PATH")
        self.binary = binary
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.dir = Path(tempfile.mkdtemp(prefix="lf-redis-"))
        self.log_path = self.dir / "redis.log"
        self._proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.is_running:
            return
        cmd = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--daemonize", "no", "--dir", str(self.dir), "--logfile", str(self.log_path)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not _wait_until(self._answers_ping, self.start_timeout, failed=lambda: not self.is_running):
            self.stop()
            raise RuntimeError(f"redis-server on port {self.port} did not start:\n{_log_tail(self.log_path)}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL if it hangs). Nothing is saved, so the data is gone."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False



def _version_key(bindir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name)) or (0,)


def find_postgres_bindir() -> Path | None:
    """The directory of ``initdb``/``pg_ctl``: $LORAFLEET_TEST_PG_BINDIR, else the highest
    /usr/lib/postgresql/<version>/bin (Debian/Ubuntu), else wherever ``initdb`` is on PATH."""
    if override := os.environ.get("LORAFLEET_TEST_PG_BINDIR"):
        return Path(override)
    candidates = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if candidates:
        return max(candidates, key=_version_key)
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


class PrivatePostgres(_StartedInContext):
    """A throwaway PostgreSQL cluster (trust auth, user ``postgres``, fsync off) that a test may stop,
    start and restart; committed rows survive because the data dir and port stay the same."""

    def __init__(self, port: int | None = None, start_timeout: float = 30.0) -> None:
        bindir = find_postgres_bindir()
        if bindir is None or not (bindir / "pg_ctl").exists():
            raise FileNotFoundError("no PostgreSQL server binaries (initdb, pg_ctl) found")
        self.bindir = bindir
        self.port = port or free_port()
        self.start_timeout = start_timeout
        self.base_dir = Path(tempfile.mkdtemp(prefix="lf-pg-"))  # short: unix socket paths max ~107 chars
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "server.log"
        self._initialised = False

    @property
    def url(self) -> str:
        """The maintenance database ``postgres``; see ``url_for`` for others."""
        return self.url_for("postgres")

    def url_for(self, database: str, driver: str | None = None) -> str:
        """``postgresql://…/db``; ``driver="psycopg"`` gives SQLAlchemy's ``postgresql+psycopg://…/db``."""
        scheme = f"postgresql+{driver}" if driver else "postgresql"
        return f"{scheme}://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def is_running(self) -> bool:
        status = subprocess.run(self._as_server_user([self._bin("pg_ctl"), "-D", str(self.data_dir), "status"]),
                                check=False, capture_output=True, cwd=self.base_dir)
        return status.returncode == 0

    def create_database(self, name: str) -> str:
        """Create database ``name`` and return its ``postgresql://`` URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_for(name)

    def start(self) -> None:
        if not self._initialised:
            self._init_cluster()
        if self.is_running:
            return
        self._pg_ctl("start", "-l", str(self.log_path), "-t", str(int(self.start_timeout)))
        if not _wait_until(self._accepts_tcp, self.start_timeout):
            raise RuntimeError(f"postgres on port {self.port} is not accepting connections:\n"
                               f"{_log_tail(self.log_path)}")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends sessions and checkpoints; ``immediate`` is a crash (recovery runs on start)."""
        if self._initialised and self.is_running:
            self._pg_ctl("stop", "-m", mode, "-t", str(int(self.start_timeout)))

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    def close(self) -> None:
        try:
            self.stop("immediate")
        finally:
            shutil.rmtree(self.base_dir, ignore_errors=True)

    def _bin(self, name: str) -> str:
        return str(self.bindir / name)

    def _as_server_user(self, cmd: list[str]) -> list[str]:
        """initdb/pg_ctl/postgres refuse uid 0: as root, run them as the ``postgres`` OS user."""
        return ["runuser", "-u", SERVER_OS_USER, "--", *cmd] if os.geteuid() == 0 else cmd

    def _run(self, cmd: list[str], what: str) -> None:
        done = subprocess.run(self._as_server_user(cmd), check=False, capture_output=True, text=True,
                              cwd=self.base_dir, timeout=self.start_timeout + 30)
        if done.returncode != 0:
            raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                               f"server log:\n{_log_tail(self.log_path)}")

    def _pg_ctl(self, action: str, *args: str) -> None:
        self._run([self._bin("pg_ctl"), "-D", str(self.data_dir), "-w", "-s", *args, action], f"pg_ctl {action}")

    def _init_cluster(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.base_dir, user=SERVER_OS_USER, group=SERVER_OS_USER)
        self._run([self._bin("initdb"), "-D", str(self.data_dir), "-A", "trust", "-U", "postgres", "--no-sync",
                   "--locale=C", "--encoding=UTF8"], "initdb")
        # fsync/full_page_writes off only risk data on an OS crash; synchronous_commit stays on, or an
        # immediate stop (a simulated crash) would lose commits the client was told had succeeded.
        settings = {"port": str(self.port), "listen_addresses": "'127.0.0.1'",
                    "unix_socket_directories": f"'{self.base_dir}'", "fsync": "off", "full_page_writes": "off",
                    "shared_buffers": "'32MB'"}
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write("\n# lorafleet private test server\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._initialised = True

    def _accepts_tcp(self) -> bool:
        cmd = [self._bin("pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"]
        ready = subprocess.run(cmd, check=False)
        return ready.returncode == 0



@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    """A started private Redis for one test; skips where redis-server is not installed."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    with PrivateRedis() as server:
        yield server


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private PostgreSQL cluster for one test; skips where the server binaries are missing."""
    if find_postgres_bindir() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    with PrivatePostgres() as server:
        yield server
