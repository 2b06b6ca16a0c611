"""The Celery application, built from settings on first use (nothing connects at import time).

``celery -A worker.celery_app:app worker -Q gpu`` works through the module ``__getattr__``.
Torch-free: the API imports it to send tasks by name.

Reliability settings follow DESIGN.md section 6: late acks, prefetch 1, reject on worker loss,
a visibility timeout longer than any job, one task per child process on GPU workers. Each worker
consumes only its own queue (``worker.dispatcher.worker_queue``): the dispatcher decides placement.
Embedded mode (no REDIS_URL) uses kombu's SQLAlchemy transport on a SQLite file: it needs no
server, survives restarts (messages are rows), and its ``broker_transport_options`` are passed
to ``create_engine`` -- so only engine arguments go there (a 30 s SQLite busy timeout), never
``visibility_timeout``. Job state never depends on the broker: Postgres/SQLite rows and worker
leases are the truth, the broker only carries "run job X" nudges.
"""
from __future__ import annotations

from functools import lru_cache

from celery import Celery, signals

from models.settings import Settings, get_settings

TASK_NAMES = {
    "preflight": "lorafleet.preflight.run",
    "fine_tuning": "lorafleet.fine_tuning.run",
    "generation": "lorafleet.generation.run",
    "batch": "lorafleet.batch.run",
    "eval": "lorafleet.eval.run",
    "export": "lorafleet.export.run",
}


def queue_name(settings: Settings, queue: str) -> str:
    return f"{settings.namespace}{queue}"


def create_celery_app(settings: Settings) -> Celery:
    app = Celery("lorafleet", broker=settings.broker_url, include=["worker.tasks"])
    if settings.embedded:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        transport_options: dict = {"connect_args": {"timeout": 30}}
    else:
        transport_options = {"visibility_timeout": settings.visibility_timeout}
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        result_backend=None,
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options=transport_options,
        broker_connection_retry_on_startup=True,
        # A broker blip must not touch running jobs: Postgres holds their state and the runner is idempotent,
        # so a message redelivered after the blip is dropped harmlessly. Reconnect for as long as it takes.
        worker_cancel_long_running_tasks_on_connection_loss=False,
        broker_connection_retry=True,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        task_default_queue=queue_name(settings, "io"),
        worker_enable_remote_control=not settings.embedded,
        worker_send_task_events=False,
    )
    return app


@signals.worker_init.connect
def preload_ml_stack(**_) -> None:
    """Import torch / transformers / peft and the ML core once, in the worker's main process.

    Each job runs in a fresh pool child (one task per child), forked from this process: the child
    starts with the libraries loaded instead of spending ~10 s importing them on every job. Importing
    creates no threads and touches no GPU, so forking afterwards is safe. A host without the
    ``[worker]`` extra (an io-only worker) skips it.
    """
    try:
        import worker.ml.decoding.engine
        import worker.ml.training.finetune  # noqa: F401
    except ImportError:
        pass


@lru_cache
def get_celery_app() -> Celery:
    return create_celery_app(get_settings())


def __getattr__(name: str):
    if name == "app":
        return get_celery_app()
    raise AttributeError(name)
