"""Adapters for integration tests without training: random PEFT folders registered as Adapter rows."""
from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from tests.worker.ml.decoding.engine_helpers import make_random_adapter

BASE = "smollm2-135m-instruct"


def make_adapter_folders(base_model_dir: Path, root: Path, n: int = 2) -> list[Path]:
    """``n`` LoRA folders on the real base model (non-zero lora_B, so each changes the answers)."""
    return [make_random_adapter(base_model_dir, root / f"adapter-{i}", seed=11 + i, r=8, scale=0.05)
            for i in range(n)]


def user_id_of(client) -> str:
    r = httpx.get(f"{client.base_url}me", headers={"Authorization": f"Bearer {client.api_key}"})
    r.raise_for_status()
    return r.json()["id"]


def register_adapters(settings, owner_id: str, folders: list[Path]) -> list[str]:
    """Adapter rows owned by ``owner_id`` for the folders; returns their model names."""
    from models.db import make_engine, make_sessionmaker
    from models.registry import Adapter

    names = [f"ft:{BASE}:t{secrets.token_hex(3)}:manual" for _ in folders]
    engine = make_engine(settings.sqlalchemy_url)
    with make_sessionmaker(engine)() as s:
        for name, folder in zip(names, folders):
            s.add(Adapter(owner_id=owner_id, name=name, base_model=BASE, path=str(folder)))
        s.commit()
    engine.dispose()
    return names


def api(client, method: str, path: str, **kw) -> httpx.Response:
    """A raw call to lorafleet's own paths with the SDK client's key."""
    return httpx.request(method, f"{client.base_url}{path.lstrip('/')}", timeout=60,
                         headers={"Authorization": f"Bearer {client.api_key}"}, **kw)
