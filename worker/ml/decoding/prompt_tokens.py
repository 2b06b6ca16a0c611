"""Tokenize / detokenize requests (``contracts.tokenize``) with a model's tokenizer, rendering chat messages
exactly as the engine does for that model (``InferenceEngine.encode``): the tokenizer's chat template for the
base model, an adapter's own prompt template (from its folder) for an adapter, a target's explicit template
first. Torch-free: only the tokenizer is needed, so it runs beside the engine without touching its thread.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts.decoding import ModelTarget
from contracts.tokenize import DetokenizeRequest, TokenizeRequest
from worker.ml.decoding.adapter_cache import read_adapter_template
from worker.ml.decoding.request_prompts import CHAT_TEMPLATE, content_text, render_messages


def prompt_template(target: ModelTarget, tokenizer: Any) -> str:
    """The template the engine renders ``target``'s messages with (see ``InferenceEngine.prompt_template_for``)."""
    if target.prompt_template:
        return target.prompt_template
    if target.adapter_dir is None:
        return CHAT_TEMPLATE if getattr(tokenizer, "chat_template", None) else "alpaca"
    return read_adapter_template(Path(target.adapter_dir)) or "alpaca"


def tokenize(req: TokenizeRequest, target: ModelTarget, tokenizer: Any) -> list[int]:
    """The token ids of ``req.prompt``, or of ``req.messages`` rendered for ``target``."""
    if req.prompt is not None:
        special = True if req.add_special_tokens is None else req.add_special_tokens
        return tokenizer(req.prompt, add_special_tokens=special).input_ids
    template = prompt_template(target, tokenizer)
    text, special = render_messages(req.messages, template, tokenizer)
    if template == CHAT_TEMPLATE and not req.add_generation_prompt:
        plain = [{"role": m.get("role"), "content": content_text(m.get("content"))} for m in req.messages]
        text = tokenizer.apply_chat_template(plain, tokenize=False, add_generation_prompt=False)
    if req.add_special_tokens is not None:
        special = req.add_special_tokens
    return tokenizer(text, add_special_tokens=special).input_ids


def detokenize(req: DetokenizeRequest, tokenizer: Any) -> str:
    """The text of ``req.tokens`` (special tokens kept, as vLLM's detokenize does)."""
    return tokenizer.decode(req.tokens)


def vocab_size(tokenizer: Any) -> int:
    return len(tokenizer)
