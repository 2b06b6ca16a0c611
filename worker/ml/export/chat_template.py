"""The chat template an exported model carries: the prompt format its adapter was trained with.

llama.cpp / Ollama render a conversation with the file's ``tokenizer.chat_template`` (Jinja). An
adapter trained on an Alpaca template must see exactly the Alpaca prompt of training, so its
template is rebuilt here from ``contracts.prompts`` and maps messages the way lorafleet's serving
does (``request_prompts.messages_to_instruction``): the last user message is the instruction, the
system/developer messages joined by newlines are the input, other turns are dropped (Alpaca is
single-turn). An adapter trained with ``chat`` keeps the base tokenizer's own template, which is
what rendered its training prompts.
"""
from __future__ import annotations

import json

from contracts.prompts import get_template

CHAT_TEMPLATE = "chat"

# Message content as serving reads it (tool_prompts.content_text): a string, or the text parts of a list.
_CONTENT = ("{%- if m['content'] is string -%}{%- set text = m['content'] -%}"
            "{%- elif m['content'] is none -%}{%- set text = '' -%}"
            "{%- else -%}{%- set text = namespace(s='') -%}"
            "{%- for p in m['content'] -%}{%- if p['type'] == 'text' -%}{%- set text.s = text.s + p['text'] -%}"
            "{%- endif -%}{%- endfor -%}{%- set text = text.s -%}{%- endif -%}")

_COLLECT = ("{%- set ns = namespace(instruction='', input='', sep='') -%}"
            "{%- for m in messages -%}" + _CONTENT +
            "{%- if m['role'] == 'user' -%}{%- set ns.instruction = text -%}"
            "{%- elif m['role'] in ['system', 'developer'] -%}"
            "{%- set ns.input = ns.input + ns.sep + text -%}{%- set ns.sep = '\\n' -%}"
            "{%- endif -%}{%- endfor -%}")


def _literal(text: str) -> str:
    """``text`` as a Jinja expression printing it verbatim (whitespace control never touches it)."""
    return "{{ " + json.dumps(text) + " }}"


def _render(pattern: str) -> str:
    """A ``str.format`` prompt pattern with ``{instruction}`` / ``{input}`` as Jinja."""
    out, rest = [], pattern
    while rest:
        cuts = [(rest.find(f"{{{name}}}"), name) for name in ("instruction", "input") if f"{{{name}}}" in rest]
        if not cuts:
            out.append(_literal(rest))
            break
        at, name = min(cuts)
        if at:
            out.append(_literal(rest[:at]))
        out.append("{{ ns." + name + " }}")
        rest = rest[at + len(name) + 2:]
    return "".join(out)


def alpaca_chat_template(template: str) -> str:
    """A Jinja chat template whose rendering of [system?, user] equals ``render_prompt(user, system, template)``."""
    t = get_template(template)
    return (_COLLECT + "{%- if ns.input -%}" + _render(t.prompt_input) + "{%- else -%}"
            + _render(t.prompt_no_input) + "{%- endif -%}")


def training_chat_template(prompt_template: str, base_chat_template: str | None) -> str:
    """The chat template matching how the adapter's training prompts were rendered."""
    if prompt_template == CHAT_TEMPLATE:
        if not base_chat_template:
            raise ValueError("the adapter was trained with the 'chat' template but the base tokenizer has none")
        return base_chat_template
    return alpaca_chat_template(prompt_template)
