"""Turn a request (raw prompt, chat messages, or an eval row) into the text the model sees.

Templates: "chat" uses the tokenizer's chat template (the base model's default); any Alpaca
template renders one turn, the way the fine-tune data was built (see ``records.parse_chat_record``):
the last user message is the instruction, the system/developer messages (joined by newlines) are
the input, earlier user/assistant turns are dropped (Alpaca is single-turn).
Returns ``(text, add_special_tokens)``: chat-template text already carries its special tokens.
"""
from __future__ import annotations

from typing import Any

from contracts.prompts import render_prompt
from worker.ml.decoding.tool_prompts import content_text, render_chat, worded_messages

CHAT_TEMPLATE = "chat"


def messages_to_instruction(messages: list[dict]) -> tuple[str, str]:
    """(instruction, input) for Alpaca templates: last user message, system messages."""
    users = [content_text(m.get("content")) for m in messages if m.get("role") == "user"]
    if not users:
        raise ValueError("messages must contain a user message")
    system = "\n".join(content_text(m.get("content")) for m in messages if m.get("role") in ("system", "developer"))
    return users[-1], system


def render_messages(messages: list[dict], template: str, tokenizer: Any,
                    tools: list[dict] | None = None) -> tuple[str, bool]:
    """``tools`` (OpenAI function tools) and tool turns: see ``tool_prompts``."""
    if template == CHAT_TEMPLATE:
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError("this model's tokenizer has no chat template; use an Alpaca prompt template")
        return render_chat(messages, tokenizer, tools), False
    instruction, inp = messages_to_instruction(worded_messages(messages, tools) if tools else messages)
    return render_prompt(instruction, inp, template), True


def instruction_message(instruction: str, inp: str) -> dict:
    """An eval row (instruction + optional input) as the one user message a chat model gets."""
    return {"role": "user", "content": f"{instruction}\n\n{inp}" if inp else instruction}


def render_instruction(instruction: str, inp: str, template: str, tokenizer: Any) -> tuple[str, bool]:
    """An eval row (instruction + optional input) in the given template."""
    if template == CHAT_TEMPLATE:
        return render_messages([instruction_message(instruction, inp)], template, tokenizer)
    return render_prompt(instruction, inp, template), True
