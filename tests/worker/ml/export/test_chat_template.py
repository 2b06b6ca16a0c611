"""The embedded chat template renders exactly the prompt the adapter was trained on."""
from __future__ import annotations

import pytest

from contracts.prompts import TEMPLATES
from contracts.records import Example
from worker.ml.export.chat_template import alpaca_chat_template, training_chat_template

ROWS = [
    Example(instruction="Give three tips for staying healthy.", input="", output="Eat well."),
    Example(instruction="Add the two numbers.", input="17 and 25", output="42"),
    Example(instruction="Translate to French:", input="line one\nline two {braces} \"quotes\"", output="..."),
    Example(instruction="  leading spaces and a trailing newline\n", input="", output="ok"),
]


def alpaca_messages(ex: Example) -> list[dict]:
    """How a llama.cpp / Ollama user sends an Alpaca row: the input as a system message, the instruction as
    the user turn (serving maps messages to instruction/input the same way)."""
    return ([{"role": "system", "content": ex.input}] if ex.input else []) + [{"role": "user", "content": ex.instruction}]


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama_dir)


@pytest.mark.parametrize("template", sorted(TEMPLATES))
def test_alpaca_template_renders_the_training_prompt(template, tokenizer):
    from worker.ml.training.data import render_example

    chat = alpaca_chat_template(template)
    for ex in ROWS:
        trained_prompt, _full = render_example(ex, template, tokenizer)
        rendered = tokenizer.apply_chat_template(alpaca_messages(ex), chat_template=chat, tokenize=False,
                                                 add_generation_prompt=True)
        assert rendered == trained_prompt


def test_alpaca_template_maps_messages_as_serving_does(tokenizer):
    """Several system messages join with newlines into the input, the last user turn is the instruction,
    earlier turns and assistant messages drop out, text parts of a list count."""
    from worker.ml.decoding.request_prompts import render_messages

    messages = [{"role": "system", "content": "first"}, {"role": "user", "content": "old question"},
                {"role": "assistant", "content": "old answer"}, {"role": "developer", "content": "second"},
                {"role": "user", "content": [{"type": "text", "text": "new "}, {"type": "text", "text": "question"}]}]
    for template in TEMPLATES:
        served, _ = render_messages(messages, template, tokenizer)
        rendered = tokenizer.apply_chat_template(messages, chat_template=alpaca_chat_template(template),
                                                 tokenize=False, add_generation_prompt=True)
        assert rendered == served and "### Input:\nfirst\nsecond\n\n" in rendered and "old" not in rendered


def test_chat_trained_adapters_keep_the_base_template(tokenizer):
    from worker.ml.training.data import render_example

    base_template = tokenizer.chat_template
    chat = training_chat_template("chat", base_template)
    assert chat == base_template
    for ex in ROWS:
        trained_prompt, _ = render_example(ex, "chat", tokenizer)
        user = ex.instruction + (f"\n\n{ex.input}" if ex.input else "")
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": user}], chat_template=chat,
                                                 tokenize=False, add_generation_prompt=True)
        assert rendered == trained_prompt
    with pytest.raises(ValueError, match="no"):
        training_chat_template("chat", None)
