"""API load benchmark: 50 concurrent clients against `lorafleet api` on Postgres (loopback).

Starts the API on a fresh Postgres database and a private Redis namespace,
creates users and a training file, then for ``--seconds`` each client loops: mostly job-status
reads, some preflight-job submissions. Prints one JSON line: requests/s, p50/p99 latency per kind,
errors. Usage: python -m bench.api_load [--clients 50] [--seconds 20] [--submit-ratio 0.15] [--api-workers N]

``lorafleet api`` runs at its defaults unless ``--api-workers`` is given (one process per CPU core).
``--wrk`` also measures ``GET /v1/jobs/{id}`` alone with ``wrk`` (2 threads, 50 connections, 20 s,
loopback): the status path's requests/s and p99 as an outside tool sees them.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psycopg

from models.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
TRAIN = b'{"instruction": "Say hi.", "input": "", "output": "Hi."}\n' * 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RawHTTP:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams. httpx costs ~4 ms of CPU per request,
    enough for the load generator alone to saturate a core of this 2-core machine and cap the
    measurement at ~250 requests/s whatever the server does; this costs a small fraction of that."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader = self.writer = None

    async def request(self, method: str, path: str, headers: dict, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in headers.items())
        if body:
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readline()
        if not status_line:
            raise ConnectionError("server closed the connection")
        length, chunked = 0, False
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "transfer-encoding" and "chunked" in value:
                chunked = True
        if chunked:
            data = b""
            while (size := int((await self.reader.readline()).strip(), 16)):
                data += await self.reader.readexactly(size)
                await self.reader.readline()
            await self.reader.readline()
        else:
            data = await self.reader.readexactly(length)
        return int(status_line.split()[1]), data


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def client_loop(c: RawHTTP, headers, job_ids, file_id, deadline, submit_ratio, rng, stats):
    body = json.dumps({"model": "smollm2-135m-instruct", "training_file": file_id}).encode()
    while time.perf_counter() < deadline:
        submit = rng.random() < submit_ratio
        t = time.perf_counter()
        try:
            if submit:
                call = c.request("POST", "/v1/preflight/jobs", headers, body)
            else:
                call = c.request("GET", f"/v1/jobs/{rng.choice(job_ids)}", headers)
            status, data = await asyncio.wait_for(call, timeout=10)
            ok = status == 200
            if submit and ok:
                job_ids.append(json.loads(data)["id"])
        except (TimeoutError, OSError, ValueError, asyncio.IncompleteReadError):
            ok = False
            c.writer = None
        kind = "submit" if submit else "read"
        stats[kind].append(time.perf_counter() - t)
        if not ok:
            stats["errors"] += 1


async def run_load(base: str, users: list[dict], seconds: float, clients: int, submit_ratio: float) -> dict:
    import random

    stats = {"read": [], "submit": [], "errors": 0}
    host, port = base.split("//")[1].split(":")
    deadline = time.perf_counter() + seconds
    t0 = time.perf_counter()
    await asyncio.gather(*[  # one keep-alive connection per client
        client_loop(RawHTTP(host, int(port)), users[i % len(users)]["headers"], users[i % len(users)]["jobs"],
                    users[i % len(users)]["file"], deadline, submit_ratio, random.Random(i), stats)
        for i in range(clients)])
    elapsed = time.perf_counter() - t0
    return {
        "clients": clients, "seconds": round(elapsed, 2),
        "requests_per_s": round((len(stats["read"]) + len(stats["submit"])) / elapsed, 1),
        "status_reads": len(stats["read"]), "status_reads_per_s": round(len(stats["read"]) / elapsed, 1),
        "read_p50_ms": round(percentile(stats["read"], 0.5) * 1000, 1),
        "read_p99_ms": round(percentile(stats["read"], 0.99) * 1000, 1),
        "submissions": len(stats["submit"]), "submissions_per_s": round(len(stats["submit"]) / elapsed, 1),
        "submit_p50_ms": round(percentile(stats["submit"], 0.5) * 1000, 1),
        "submit_p99_ms": round(percentile(stats["submit"], 0.99) * 1000, 1),
        "errors": stats["errors"],
    }


def run_wrk(base: str, user: dict, seconds: int) -> dict:
    """``wrk -t2 -c50`` on one job's status URL; its requests/s and p99 latency."""
    out = subprocess.run(["wrk", "-t2", "-c50", f"-d{seconds}s", "--latency", "-H",
                          f"Authorization: {user['headers']['Authorization']}", f"{base}/v1/jobs/{user['jobs'][0]}"],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"^\s+99%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE).groups()
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"wrk_requests_per_s": rps, "wrk_p99_ms": round(p99_ms, 1),
            "wrk_non_2xx": int(non_2xx.group(1)) if non_2xx else 0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--submit-ratio", type=float, default=0.15)
    ap.add_argument("--api-workers", type=int, default=None, help="default: lorafleet api's own default")
    ap.add_argument("--wrk", action="store_true", help="also run wrk on GET /v1/jobs/{id}")
    ap.add_argument("--wrk-seconds", type=int, default=20)
    a = ap.parse_args()
    db = f"lf_bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{db}"')
    data_dir = Path(tempfile.mkdtemp(prefix="lf-bench-"))
    ns = f"bench{secrets.token_hex(3)}-"
    env = {**os.environ, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:5432/{db}",
           "REDIS_URL": "redis://127.0.0.1:6379/0", "LORAFLEET_DATA_DIR": str(data_dir),
           "LORAFLEET_NAMESPACE": ns}
    port = free_port()
    proc = None
    try:
        subprocess.run([sys.executable, "-m", "lorafleet_cli.main", "migrate"], env=env, check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL)
        out = subprocess.run([sys.executable, "-m", "lorafleet_cli.main", "users", "create", "bench-admin", "--admin"],
                             env=env, check=True, cwd=ROOT, capture_output=True, text=True).stdout
        admin = {"Authorization": f"Bearer {out.strip().splitlines()[-1]}"}
        workers = ["--workers", str(a.api_workers)] if a.api_workers else []
        proc = subprocess.Popen([sys.executable, "-m", "lorafleet_cli.main", "api", "--host", "127.0.0.1",
                                 "--port", str(port), *workers], env=env, cwd=ROOT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        users = []
        with httpx.Client(base_url=base, timeout=30) as c:
            for i in range(5):
                u = c.post("/v1/users", headers=admin, json={"name": f"bench-{i}"}).json()
                h = {"Authorization": f"Bearer {u['api_key']}"}
                f = c.post("/v1/files", headers=h, files={"file": ("t.jsonl", TRAIN)}, data={"purpose": "fine-tune"}).json()
                jobs = [c.post("/v1/preflight/jobs", headers=h, json={"model": "smollm2-135m-instruct",
                                                                     "training_file": f["id"]}).json()["id"]
                        for _ in range(4)]
                users.append({"headers": h, "file": f["id"], "jobs": jobs})
        wrk = run_wrk(base, users[0], a.wrk_seconds) if a.wrk else {}
        result = asyncio.run(run_load(base, users, a.seconds, a.clients, a.submit_ratio))
        api_workers = a.api_workers or Settings().api_processes
        print(json.dumps({"impl": "lorafleet-api", "api_workers": api_workers, **wrk, **result}))
    finally:
        if proc is not None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(20)
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        import redis

        r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        for key in list(r.scan_iter(f"*{ns}*")):
            r.delete(key)


if __name__ == "__main__":
    main()
