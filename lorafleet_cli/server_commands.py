"""The server-side commands (up, api, worker, dispatcher, serve, migrate, users create, models add, demo): each
takes the parsed flags as a namespace; ``lorafleet_cli.server_app`` declares their flags."""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def _apply_env(args: argparse.Namespace) -> None:
    """CLI flags become environment settings, so child processes see the same configuration."""
    if getattr(args, "data_dir", None):
        os.environ["LORAFLEET_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if getattr(args, "dtype", None):
        os.environ["LORAFLEET_INFERENCE_DTYPE"] = args.dtype
    if getattr(args, "deterministic", False):
        os.environ["LORAFLEET_BATCH_INVARIANT"] = "1"
    from models.settings import get_settings

    get_settings.cache_clear()


def cmd_migrate(args) -> int:
    _apply_env(args)
    from lorafleet_cli.bootstrap import migrate
    from models.settings import get_settings

    migrate(get_settings())
    print("database is at head")
    return 0


def cmd_users_create(args) -> int:
    _apply_env(args)
    from lorafleet_cli.bootstrap import create_user_direct
    from models.settings import get_settings

    user_id, key = create_user_direct(get_settings(), args.name, args.admin)
    print(f"created user {args.name} ({user_id}); API key (shown once):\n{key}")
    return 0


def cmd_models_add(args) -> int:
    _apply_env(args)
    from lorafleet_cli.bootstrap import register_base_model
    from models.settings import get_settings

    register_base_model(get_settings(), args.name, Path(args.path).resolve(), args.description or "")
    print(f"registered base model {args.name} -> {args.path}")
    return 0


def worker_command(queues: str, concurrency: int = 1, *, memory_gb: float | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "lorafleet_cli.main", "worker", "--queues", queues, "--concurrency", str(concurrency),
           "--loglevel", "WARNING"]
    return cmd + (["--memory-gb", str(memory_gb)] if memory_gb else [])


def cmd_worker(args) -> int:
    """Register, run Celery on this worker's own queue, heartbeat; SIGTERM drains (see worker.supervisor)."""
    _apply_env(args)
    import logging

    from models.settings import get_settings
    from worker.supervisor import WorkerOptions, run_worker

    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.host:
        os.environ["LORAFLEET_HOSTNAME"] = args.host
        get_settings.cache_clear()
    gpus = tuple(int(g) for g in args.gpus.split(",")) if args.gpus else ()
    options = WorkerOptions(queues=tuple(q.strip() for q in args.queues.split(",") if q.strip()), gpus=gpus,
                            concurrency=args.concurrency, memory_gb=args.memory_gb, loglevel=args.loglevel)
    return run_worker(get_settings(), options)


def cmd_dispatcher(args) -> int:
    """The admission loop as its own process; several may run (one pass at a time, by advisory lock)."""
    _apply_env(args)
    import logging
    import threading

    from models.settings import get_settings
    from worker.dispatcher import build_loop

    logging.basicConfig(level=args.loglevel.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    loop = build_loop(get_settings())
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    loop.start()
    while not stopped.wait(0.5) and loop.is_alive():
        pass
    loop.stop()
    loop.join(10)
    return 0


def cmd_api(args) -> int:
    _apply_env(args)
    import uvicorn

    from models.settings import get_settings

    workers = args.workers or get_settings().api_processes
    uvicorn.run("api.main:create_app", factory=True, host=args.host, port=args.port, workers=workers,
                log_level="warning", access_log=False)
    return 0


def serve_command(port: int, base_model: str, host: str = "127.0.0.1") -> list[str]:
    return [sys.executable, "-m", "lorafleet_cli.main", "serve", "--host", host, "--port", str(port),
            "--base-model", base_model]


def cmd_serve(args) -> int:
    """The inference server for one base model (internal; the API proxies chat/completions to it)."""
    _apply_env(args)
    import uvicorn

    from models.settings import get_settings
    from worker.resources import apply_torch_threads
    from worker.serving.service import create_service_app

    apply_torch_threads(get_settings())
    uvicorn.run(create_service_app(get_settings(), args.base_model), host=args.host, port=args.port,
                log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    return 0


def _stop_with_parent() -> None:
    """In a child of ``up``: receive SIGTERM when ``up`` dies, however it dies."""
    from billiard.util import set_pdeathsig

    set_pdeathsig(signal.SIGTERM)


def cmd_up(args) -> int:
    """Everything in one command: migrate, bootstrap an admin, start workers, serve the API."""
    _apply_env(args)
    from lorafleet_cli.bootstrap import ensure_admin, migrate
    from models.settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings)
    key_file = ensure_admin(settings)
    print(f"lorafleet: data dir {settings.data_dir} ({'embedded SQLite + SQLAlchemy broker' if settings.embedded else 'Postgres + Redis'})")
    print(f"lorafleet: admin API key in {key_file}" if key_file else "lorafleet: an admin exists (bootstrapped on "
          "another host; its key is in that host's data dir); `lorafleet users create NAME --admin` makes another")
    serve_port = args.port + 1
    os.environ.setdefault("LORAFLEET_INFERENCE_URL", f"http://127.0.0.1:{serve_port}")
    # Workers drain quickly here: one machine, a person waiting on Ctrl-C (jobs resume from their checkpoint).
    os.environ.setdefault("LORAFLEET_WORKER_SHUTDOWN_GRACE", "8")
    get_settings.cache_clear()
    children = [  # each stops itself (workers drain) if `up` dies without stopping them
        subprocess.Popen(cmd, start_new_session=True, preexec_fn=_stop_with_parent)  # noqa: PLW1509 - no threads yet
        for cmd in (serve_command(serve_port, args.base_model), worker_command("gpu", 1), worker_command("io", 2))
    ]
    from worker.dispatcher import build_loop

    dispatcher = build_loop(get_settings())
    dispatcher.start()

    def _stop(*_):
        dispatcher.stop()
        for child in children:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
        deadline = time.time() + 12
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        import uvicorn

        print(f"lorafleet: API on http://{args.host}:{args.port}/v1, dashboard on http://{args.host}:{args.port}/",
              flush=True)
        uvicorn.run("api.main:create_app", factory=True, host=args.host, port=args.port, log_level="warning",
                    access_log=False, timeout_graceful_shutdown=3)
    finally:
        _stop()
    return 0


def cmd_demo(args) -> int:
    _apply_env(args)
    from lorafleet_demo.run import run_demo

    return run_demo(args)

