"""LoRA adapters loaded once into one PEFT model and kept in an LRU cache bounded by bytes.

Each adapter folder gets a short internal PEFT name (``a0``, ``a1``...). Adapters used by the batch
being built are pinned: eviction only drops others, least recently used first. Adapter folders are
treated as immutable artifacts, keyed by resolved path and the mtime of their config file.
"""
from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import torch

from contracts.run_config import read_prompt_template

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch
ADAPTER_META_FILE = "lorafleet.json"  # legacy {"prompt_template": ...}; adapters now carry config.json


class AdapterLoadError(Exception):
    """An adapter folder that cannot be used (missing, corrupt, or not for this base model)."""


@dataclass
class CachedAdapter:
    name: str
    path: Path
    nbytes: int
    prompt_template: str | None


def read_adapter_template(adapter_dir: Path) -> str | None:
    """The prompt template the adapter was trained with: from the run's ``config.json`` (written by
    the fine-tune engine), else from a legacy ``lorafleet.json``; None when neither records one."""
    from_config = read_prompt_template(adapter_dir)
    if from_config is not None:
        return from_config
    meta = Path(adapter_dir) / ADAPTER_META_FILE
    if not meta.is_file():
        return None
    try:
        value = json.loads(meta.read_text()).get("prompt_template")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) and value else None


class AdapterCache:
    """Owns the PEFT wrapper around ``base_model``; ``model`` is what the engine runs."""

    def __init__(self, base_model: torch.nn.Module, capacity_bytes: int) -> None:
        self.base_model = base_model
        self.capacity_bytes = capacity_bytes
        self.peft_model = None  # created on the first adapter load
        self._entries: OrderedDict[tuple[str, int], CachedAdapter] = OrderedDict()
        self._counter = 0
        self.loads = 0  # adapter folders read from disk (for tests and metrics)

    @property
    def resident(self) -> list[CachedAdapter]:
        return list(self._entries.values())

    @property
    def used_bytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def get(self, adapter_dir: Path) -> CachedAdapter:
        """The cached adapter for a folder, loading it on a miss; marks it most recently used."""
        key = self._key(adapter_dir)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            return entry
        entry = self._load(Path(key[0]))
        self._entries[key] = entry
        return entry

    def evict(self, pinned: set[str]) -> None:
        """Drop least recently used adapters (never a pinned name) until under capacity."""
        for key in list(self._entries):
            if self.used_bytes <= self.capacity_bytes:
                return
            entry = self._entries[key]
            if entry.name in pinned:
                continue
            with warnings.catch_warnings():  # "adapter X was active which is now deleted": expected here
                warnings.simplefilter("ignore", UserWarning)
                self.peft_model.delete_adapter(entry.name)
            del self._entries[key]

    def _key(self, adapter_dir: Path) -> tuple[str, int]:
        path = Path(adapter_dir).resolve()
        config = path / "adapter_config.json"
        if not config.is_file():
            raise AdapterLoadError(f"no adapter_config.json in {path}")
        return str(path), config.stat().st_mtime_ns

    def _load(self, path: Path) -> CachedAdapter:
        from peft import PeftModel

        name = f"a{self._counter}"
        self._counter += 1
        weights = [path / f for f in ("adapter_model.safetensors", "adapter_model.bin") if (path / f).is_file()]
        if not weights or weights[0].stat().st_size == 0:
            raise AdapterLoadError(f"no adapter weights (adapter_model.safetensors) in {path}")
        try:
            if self.peft_model is None:
                self.peft_model = PeftModel.from_pretrained(self.base_model, str(path), adapter_name=name,
                                                            is_trainable=False)
            else:
                self.peft_model.load_adapter(str(path), adapter_name=name, is_trainable=False)
        except Exception as exc:  # peft raises many types for bad folders; report it per adapter
            if self.peft_model is not None and name in self.peft_model.peft_config:
                self.peft_model.delete_adapter(name)  # leave no half-loaded adapter behind
            raise AdapterLoadError(f"cannot load adapter {path}: {exc}") from exc
        self.peft_model.eval()
        self.loads += 1
        nbytes = sum(p.numel() * p.element_size() for n, p in self.peft_model.named_parameters()
                     if f".{name}." in n or n.endswith(f".{name}"))
        return CachedAdapter(name, path, nbytes, read_adapter_template(path))
