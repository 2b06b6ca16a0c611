"""`/v1/chat/completions` and `/v1/completions` through the API's proxy to `lorafleet serve`, with the
official openai SDK: non-streaming, streaming, usage, ownership of adapters."""
from __future__ import annotations

import openai
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BASE = "smollm2-135m-instruct"
MESSAGES = [{"role": "user", "content": "Name three colours."}]


def test_chat_completion_and_streaming_agree(openai_client, inference_server):
    full = openai_client.chat.completions.create(model=BASE, messages=MESSAGES, max_tokens=16, temperature=0)
    text = full.choices[0].message.content
    assert text and full.object == "chat.completion" and full.model == BASE
    assert full.usage.completion_tokens > 0 and full.usage.prompt_tokens > 0
    assert full.usage.total_tokens == full.usage.prompt_tokens + full.usage.completion_tokens
    stream = openai_client.chat.completions.create(model=BASE, messages=MESSAGES, max_tokens=16, temperature=0,
                                                   stream=True)
    pieces, finish = [], None
    for chunk in stream:
        if chunk.choices:
            pieces.append(chunk.choices[0].delta.content or "")
            finish = chunk.choices[0].finish_reason or finish
    assert "".join(pieces) == text  # greedy: streaming gives the same answer
    assert finish in ("stop", "length")


def test_text_completion(openai_client, inference_server):
    out = openai_client.completions.create(model=BASE, prompt="The capital of France is", max_tokens=8,
                                           temperature=0)
    assert out.object == "text_completion" and out.choices[0].text and out.usage.completion_tokens > 0


def test_unknown_or_foreign_models_are_404(openai_client, inference_server):
    with pytest.raises(openai.NotFoundError) as err:
        openai_client.chat.completions.create(model="ft:smollm2-135m-instruct:x:ftjob-nope", messages=MESSAGES)
    assert err.value.body["param"] == "model"
