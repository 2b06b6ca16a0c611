"""The worker registry, worker side: what this host has (devices, memory, base models on hand) and the
row that says so, registered at start and refreshed by heartbeats. Torch-free: GPUs are read with
``nvidia-smi`` so the supervisor never initialises CUDA before its Celery children fork."""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from sqlalchemy.orm import Session

from models.settings import Settings
from models.worker import Worker, WorkerState


@dataclass(frozen=True)
class Devices:
    kind: str                      # "cpu" or "cuda:<device name>"
    gpu_indexes: list[int] = field(default_factory=list)
    memory_total_bytes: int = 0    # per device
    memory_free_bytes: int = 0


def new_worker_id(host: str) -> str:
    return f"{host}-{secrets.token_hex(3)}"


def package_version() -> str:
    try:
        return version("lorafleet")
    except PackageNotFoundError:
        return "dev"


def detect_devices(gpus: list[int] | None, memory_gb: float | None) -> Devices:
    """The GPUs this worker owns (by index), or the CPU; ``memory_gb`` overrides what is detected
    (e.g. to keep headroom, or to model a host in tests)."""
    if gpus:
        found = _nvidia_smi(gpus)
        if found is not None:
            name, total, free = found
            if memory_gb:
                total = free = int(memory_gb * 2**30)
            return Devices(kind=f"cuda:{name}", gpu_indexes=gpus, memory_total_bytes=total, memory_free_bytes=free)
    total = int(memory_gb * 2**30) if memory_gb else _host_memory("MemTotal")
    free = int(memory_gb * 2**30) if memory_gb else _host_memory("MemAvailable")
    return Devices(kind="cpu", memory_total_bytes=total, memory_free_bytes=free)


def _nvidia_smi(gpus: list[int]) -> tuple[str, int, int] | None:
    """(name, smallest total, smallest free) over ``gpus``, in bytes; None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total,memory.free",
                          "--format=csv,noheader,nounits"], check=False, capture_output=True, text=True, timeout=20)
    rows = [[c.strip() for c in line.split(",")] for line in out.stdout.splitlines() if line.strip()]
    mine = [r for r in rows if r and int(r[0]) in gpus]
    if not mine:
        return None
    return mine[0][1], min(int(r[2]) for r in mine) * 2**20, min(int(r[3]) for r in mine) * 2**20


def _host_memory(key: str) -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def materialised_base_models(settings: Settings) -> list[str]:
    """Base models already converted into this host's models dir (no download or conversion needed)."""
    root = settings.models_dir
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "config.json").exists())


def register(session: Session, settings: Settings, *, worker_id: str, host: str, devices: Devices, slots: int,
             queues: list[str], now: datetime) -> Worker:
    row = session.get(Worker, worker_id) or Worker(id=worker_id, started_at=now)
    row.host, row.device_kind, row.gpu_indexes, row.slots = host, devices.kind, devices.gpu_indexes, slots
    row.memory_total_bytes, row.memory_free_bytes = devices.memory_total_bytes, devices.memory_free_bytes
    row.queues, row.version, row.state, row.heartbeat_at = queues, package_version(), WorkerState.alive, now
    row.base_models, row.stopped_at = materialised_base_models(settings), None
    session.add(row)
    return row


def heartbeat(session: Session, settings: Settings, worker_id: str, now: datetime, *, draining: bool) -> Worker | None:
    """Refresh the row (None if it is gone). A worker the dispatcher declared lost comes back alive: its
    jobs were already re-queued, and their old claims are fenced off."""
    row = session.get(Worker, worker_id)
    if row is None:
        return None
    row.heartbeat_at, row.base_models = now, materialised_base_models(settings)
    row.state = WorkerState.draining if draining else WorkerState.alive
    return row


def default_host(settings: Settings) -> str:
    return settings.hostname or socket.gethostname()
