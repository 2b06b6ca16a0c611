"""The one place that reads configuration from the environment.

Nothing is created at import time: call ``get_settings()`` from an entry point.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "lorafleet"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    # Where this host's state lives (embedded SQLite db and broker, admin.key; artifacts and models unless
    # LORAFLEET_ARTIFACT_URI names a shared store).
    data_dir: Path = Field(default_factory=_default_data_dir, validation_alias="LORAFLEET_DATA_DIR")
    # Postgres in production; empty -> SQLite file under data_dir (embedded mode).
    database_url: str = Field(default="", validation_alias="DATABASE_URL")
    # Redis in production; empty -> kombu SQLAlchemy transport on SQLite under data_dir.
    redis_url: str = Field(default="", validation_alias="REDIS_URL")
    # Artifact store (datasets, adapters, checkpoints, outputs); a local path or file:// URI.
    artifact_uri: str = Field(default="", validation_alias="LORAFLEET_ARTIFACT_URI")
    # Key prefix for Redis channels and Celery queue names (lets tests share one Redis).
    namespace: str = Field(default="", validation_alias="LORAFLEET_NAMESPACE")
    # Largest accepted upload, in bytes.
    max_upload_bytes: int = Field(default=512 * 1024 * 1024, validation_alias="LORAFLEET_MAX_UPLOAD_BYTES")
    # Longest single JSONL line, in bytes.
    max_line_bytes: int = Field(default=1024 * 1024, validation_alias="LORAFLEET_MAX_LINE_BYTES")
    # Lease a worker holds on a running job; renewed by heartbeats every lease_seconds/3.
    lease_seconds: int = Field(default=60, validation_alias="LORAFLEET_LEASE_SECONDS")
    # Attempts before a job that keeps losing its worker is failed.
    max_attempts: int = Field(default=3, validation_alias="LORAFLEET_MAX_ATTEMPTS")
    # Celery broker visibility timeout; must exceed any job (Redis default of 1 h is too short).
    visibility_timeout: int = Field(default=48 * 3600, validation_alias="LORAFLEET_VISIBILITY_TIMEOUT")
    # Concurrent jobs one user may run (a user's own max_running_jobs overrides it).
    max_running_per_user: int = Field(default=2, validation_alias="LORAFLEET_MAX_RUNNING_PER_USER")
    # The pool (capacity comes from the workers that register; see `lorafleet worker`).
    # Seconds between dispatcher passes (a submission wakes it sooner through Redis).
    dispatch_interval_s: float = Field(default=2.0, gt=0, validation_alias="LORAFLEET_DISPATCH_INTERVAL")
    # Seconds between refreshes of queued jobs' estimated starts (a replay of the whole queue, as costly
    # as a pass at 10,000 pending jobs; queue positions are refreshed every pass). 0: every pass.
    estimate_interval_s: float = Field(default=10.0, ge=0, validation_alias="LORAFLEET_ESTIMATE_INTERVAL")
    # An admission no worker has claimed after this many seconds is taken back and placed again.
    admission_timeout_s: float = Field(default=60.0, gt=0, validation_alias="LORAFLEET_ADMISSION_TIMEOUT")
    # Fair share counts past GPU-seconds with this half-life.
    fair_share_half_life_s: float = Field(default=86400.0, gt=0, validation_alias="LORAFLEET_FAIR_SHARE_HALF_LIFE")
    # A user below their share who has waited this long may preempt a job running above its owner's share.
    preemption_grace_s: float = Field(default=300.0, ge=0, validation_alias="LORAFLEET_PREEMPTION_GRACE")
    preemption: bool = Field(default=True, validation_alias="LORAFLEET_PREEMPTION")
    # A job waiting longer than this goes ahead of the fair-share order (the no-starvation bound).
    starvation_s: float = Field(default=3600.0, gt=0, validation_alias="LORAFLEET_STARVATION")
    # The host name workers register under (default: the machine's).
    hostname: str = Field(default="", validation_alias="LORAFLEET_HOSTNAME")
    # This worker's registry id (set by `lorafleet worker` for its Celery process; empty elsewhere).
    worker_id: str = Field(default="", validation_alias="LORAFLEET_WORKER_ID")
    # "cpu" or "cuda:<name>": the device kind this worker's usage is metered under (set by `lorafleet worker`).
    device_kind: str = Field(default="cpu", validation_alias="LORAFLEET_DEVICE_KIND")
    # SIGTERM to a worker: its jobs pause at their next checkpoint and go back to the queue; after this
    # many seconds whatever still runs is killed and handed back (Celery's warm shutdown would wait hours).
    worker_shutdown_grace_s: float = Field(default=60.0, ge=0, validation_alias="LORAFLEET_WORKER_SHUTDOWN_GRACE")
    # Key that encrypts stored secrets (teacher API keys); empty -> secret.key in ``shared_state_dir`` (the
    # shared store when LORAFLEET_ARTIFACT_URI is set, else DATA_DIR), made once on first use.
    secret_key: str = Field(default="", validation_alias="LORAFLEET_SECRET_KEY")
    # Internal URL of the inference server (`lorafleet serve`) that answers /v1/chat/completions.
    inference_url: str = Field(default="", validation_alias="LORAFLEET_INFERENCE_URL")
    # Threads per API process for sync routes (DB work); more only adds GIL contention.
    api_threads: int = Field(default=4, ge=1, le=200, validation_alias="LORAFLEET_API_THREADS")
    # How long a dashboard sign-in (an API key exchanged for a session cookie) lasts, in seconds.
    web_session_s: int = Field(default=12 * 3600, ge=60, validation_alias="LORAFLEET_WEB_SESSION_SECONDS")
    # API processes `lorafleet api` starts; 0: one per CPU core. The API is CPU-bound Python (JSON,
    # pydantic, SQLAlchemy) and one process uses one core, so one per core is what serves the most
    # status polls at the lowest tail latency.
    api_workers: int = Field(default=0, ge=0, le=256, validation_alias="LORAFLEET_API_WORKERS")

    @property
    def api_processes(self) -> int:
        import os

        return self.api_workers or max(1, os.cpu_count() or 1)
    # Torch device for workers: "auto", "cpu", "cuda".
    device: str = Field(default="auto", validation_alias="LORAFLEET_DEVICE")
    # Precision of the inference server (`lorafleet serve`): "auto" (bf16 where the hardware runs it natively, else
    # fp32 on CPU / fp16 on old GPUs), "float32", "bfloat16" or "float16". Batch and eval jobs choose per job.
    inference_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", validation_alias="LORAFLEET_INFERENCE_DTYPE")
    # Batch-invariant decoding (inference server and batch jobs): every request is decoded in a batch of its own,
    # so a greedy answer does not depend on what else shared the batch (costs throughput; README).
    batch_invariant: bool = Field(default=False, validation_alias="LORAFLEET_BATCH_INVARIANT")
    # Torch CPU threads per job process and per inference server; 0: torch's default (every core). Set it
    # when several torch processes share one host's cores (e.g. `lorafleet up` on a small machine).
    torch_threads: int = Field(default=0, ge=0, le=1024, validation_alias="LORAFLEET_TORCH_THREADS")

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, v: str) -> str:
        if v.startswith(("postgresql://", "postgres://")):
            return "postgresql+psycopg://" + v.split("://", 1)[1]
        return v

    @property
    def embedded(self) -> bool:
        return not self.redis_url

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'lorafleet.db'}"

    @property
    def broker_url(self) -> str:
        return self.redis_url or f"sqla+sqlite:///{self.data_dir / 'broker.db'}"

    @property
    def artifacts_dir(self) -> Path:
        uri = self.artifact_uri
        uri = uri.removeprefix("file://")
        return Path(uri) if uri else self.data_dir / "artifacts"

    @property
    def models_dir(self) -> Path:
        """Converted base models: in the shared store when one is configured (``LORAFLEET_ARTIFACT_URI``),
        so a base model is materialised once for every host; else under this host's data dir."""
        return self.artifacts_dir / "models" if self.artifact_uri else self.data_dir / "models"

    @property
    def shared_state_dir(self) -> Path:
        """Files every host of a deployment must agree on (the generated secret key, the first admin's
        key): the shared store's ``.lorafleet`` folder when one is configured, else the data dir."""
        return self.artifacts_dir / ".lorafleet" if self.artifact_uri else self.data_dir


@lru_cache
def get_settings() -> Settings:
    return Settings()
