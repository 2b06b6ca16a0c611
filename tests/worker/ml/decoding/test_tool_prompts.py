"""Tools and tool turns in chat prompts: natively through a template that knows tools, in words otherwise."""
from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from worker.ml.decoding.tool_prompts import render_chat, template_knows_tools

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
HISTORY = [{"role": "user", "content": "Weather in Oslo?"},
           {"role": "assistant", "content": None, "tool_calls": [
               {"id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
           {"role": "tool", "tool_call_id": "call_1", "content": "4 degrees"}]
TOOLS_TEMPLATE = (  # a minimal Hermes-style template that knows tools
    "{% if tools %}<tools>{% for t in tools %}{{ t.function.name }}{% endfor %}</tools>{% endif %}"
    "{% for m in messages %}<{{ m.role }}>{{ m.content }}"
    "{% for c in m.tool_calls or [] %}[call {{ c.function.name }} {{ c.function.arguments.city }}]{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}<assistant>{% endif %}")


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def test_template_without_tools_gets_them_in_words(tokenizer):
    assert not template_knows_tools(tokenizer)  # SmolLM2's template ignores tools
    text = render_chat(HISTORY, tokenizer, [WEATHER])
    assert '"name": "get_weather"' in text and "<tool_call>" in text  # the functions and the call format
    assert '{"name": "get_weather", "arguments": {"city": "Oslo"}}' in text  # the earlier call, as text
    assert "<tool_response>\n4 degrees\n</tool_response>" in text and text.endswith("<|im_start|>assistant\n")
    plain = [{"role": "user", "content": "hi"}]
    assert render_chat(plain, tokenizer) == tokenizer.apply_chat_template(plain, tokenize=False,
                                                                          add_generation_prompt=True)


def test_template_with_tools_gets_them_natively(tiny_llama_dir):
    tok = AutoTokenizer.from_pretrained(tiny_llama_dir)
    tok.chat_template = TOOLS_TEMPLATE
    assert template_knows_tools(tok)
    text = render_chat(HISTORY, tok, [WEATHER])
    assert text.startswith("<tools>get_weather</tools><user>Weather in Oslo?")
    assert "[call get_weather Oslo]" in text and "<tool>4 degrees" in text  # arguments handed over as a dict
