"""``lora_target_modules`` checked at submission against the base model's linear modules.

A target no module answers to would otherwise be accepted and fail on a worker minutes later. The
API never loads torch: a base model's module names come from ``contracts.base_models.LINEAR_MODULES``
by architecture, the architecture from the built-in table, a registered model's ``config.json``
(``model_type``) or its GGUF header (``general.architecture``). Unknown architecture, or a path this
process cannot read: accepted (the worker checks).
"""
from __future__ import annotations

import json
import struct
from functools import lru_cache
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from api.errors import APIError
from contracts.base_models import BUILTIN_MODELS, LAYER_INDEX, LINEAR_MODULES
from models.registry import BaseModelEntry

ALL_LINEAR = "all-linear"  # PEFT's shorthand: every linear layer but the output one


def require_lora_targets(session: Session, base_model: str, targets: list[str] | str, hp_param: str) -> None:
    """422 naming ``{hp_param}.lora_target_modules`` when a target matches no linear module of ``base_model``."""
    if targets == ALL_LINEAR:
        return
    modules = LINEAR_MODULES.get(base_model_architecture(session, base_model) or "")
    if modules is None:
        return
    unmatched = [t for t in targets if not any(peft_matches(t, m) for m in modules)]
    if unmatched:
        param = f"{hp_param}.lora_target_modules"
        leaves = sorted({m.rsplit(".", 1)[-1] for m in modules})
        raise APIError(422, "invalid_value", f"{param}: {unmatched} name no linear module of '{base_model}'; "
                       f"its modules are {leaves} (or '{ALL_LINEAR}')", param)


def peft_matches(target: str, module: str) -> bool:
    """PEFT's rule for a list of targets: a module is targeted when its full name equals the target or
    ends with "." + target. ``module`` may hold ``{i}`` for any layer index."""
    want, have = target.split("."), module.split(".")
    if len(want) > len(have):
        return False
    tail = have[len(have) - len(want):]
    return all(w == h or (h == LAYER_INDEX and w.isdigit()) for w, h in zip(want, tail, strict=True))


def base_model_architecture(session: Session, name: str) -> str | None:
    """A base model's architecture; a registered model of the same name overrides a built-in one."""
    source = session.execute(select(BaseModelEntry.source).where(BaseModelEntry.name == name)).scalar_one_or_none()
    if source is None:
        builtin = BUILTIN_MODELS.get(name)
        return builtin.architecture if builtin is not None else None
    return source_architecture(source)


@lru_cache(maxsize=256)  # a source's architecture never changes: read its config or header once
def source_architecture(source: str) -> str | None:
    """``builtin:<name>``, an HF checkpoint dir, or a .gguf file -> its architecture (None: unknown)."""
    if source.startswith("builtin:"):
        builtin = BUILTIN_MODELS.get(source.removeprefix("builtin:"))
        return builtin.architecture if builtin is not None else None
    path = Path(source)
    try:
        if path.is_dir():
            model_type = json.loads((path / "config.json").read_text()).get("model_type")
            return model_type if isinstance(model_type, str) else None
        if path.suffix == ".gguf":
            return gguf_architecture(path)
    except (OSError, ValueError, AttributeError, struct.error):
        return None
    return None


def gguf_architecture(path: Path) -> str | None:
    """``general.architecture`` from a GGUF (v2+) header, where llama.cpp writes it: the first key."""
    with open(path, "rb") as f:
        head = f.read(4096)
    if head[:4] != b"GGUF" or struct.unpack_from("<I", head, 4)[0] < 2:
        return None
    offset = 24  # magic, version, tensor count, key count
    (key_len,) = struct.unpack_from("<Q", head, offset)
    key = head[offset + 8:offset + 8 + key_len]
    offset += 8 + key_len
    (value_type,) = struct.unpack_from("<I", head, offset)
    if key != b"general.architecture" or value_type != 8:  # 8: string
        return None
    (value_len,) = struct.unpack_from("<Q", head, offset + 4)
    return head[offset + 12:offset + 12 + value_len].decode("utf-8")
