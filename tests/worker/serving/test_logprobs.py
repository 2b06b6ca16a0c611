"""Log-probabilities, echo and token prompts through the serving app with the official openai SDK."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import torch

from tests.worker.ml.decoding.engine_helpers import reference_model

PROMPT = "The capital of France is"
MESSAGES = [{"role": "user", "content": "Name three colours."}]


@pytest.fixture(scope="module")
def tokenizer(tiny_llama_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama_dir)


def forward_logprobs(tiny_llama_dir, adapter_dir, ids: list[int]) -> torch.Tensor:
    model, _ = reference_model(tiny_llama_dir, adapter_dir)
    with torch.no_grad():
        return torch.log_softmax(model(input_ids=torch.tensor([ids])).logits[0].float(), dim=-1)


def test_echo_logprobs_of_base_and_adapter_asked_together_equal_a_forward_pass(client, tokenizer, tiny_llama_dir,
                                                                            serving_targets):
    def ask(model):
        return client.completions.create(model=model, prompt=PROMPT, max_tokens=3, temperature=0, logprobs=2,
                                         echo=True)

    with ThreadPoolExecutor(2) as pool:
        answers = dict(zip(["tiny-base", "ft-a"], pool.map(ask, ["tiny-base", "ft-a"])))
    prompt_ids = tokenizer(PROMPT).input_ids
    for model, resp in answers.items():
        choice = resp.choices[0]
        lp = choice.logprobs
        assert choice.text.startswith(PROMPT) and len(lp.tokens) == len(prompt_ids) + 3
        assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None and lp.text_offset[0] == 0
        assert "".join(lp.tokens) == choice.text  # no partial characters in this text
        assert lp.text_offset == [len("".join(lp.tokens[:i])) for i in range(len(lp.tokens))]
        ids = prompt_ids + tokenizer(choice.text[len(PROMPT):], add_special_tokens=False).input_ids
        ref = forward_logprobs(tiny_llama_dir, serving_targets[model].adapter_dir, ids)
        for p in range(1, len(ids)):
            assert lp.token_logprobs[p] == pytest.approx(ref[p - 1][ids[p]].item(), abs=1e-4)
            assert max(lp.top_logprobs[p].values()) == pytest.approx(ref[p - 1].max().item(), abs=1e-4)
            assert 2 <= len(lp.top_logprobs[p]) <= 3  # top-2, plus the chosen token when it is not among them
        assert resp.usage.completion_tokens == 3
    assert answers["tiny-base"].choices[0].logprobs.token_logprobs[1] != pytest.approx(
        answers["ft-a"].choices[0].logprobs.token_logprobs[1], abs=1e-4)


def test_scoring_only_and_token_prompts(client, tokenizer):
    ids = tokenizer(PROMPT).input_ids
    scored = client.completions.create(model="ft-b", prompt=[ids, ids[:3]], max_tokens=0, echo=True, logprobs=0)
    assert [c.text for c in scored.choices] == [PROMPT, tokenizer.decode(ids[:3])]
    assert scored.usage.completion_tokens == 0 and scored.usage.prompt_tokens == len(ids) + 3
    assert [len(c.logprobs.tokens) for c in scored.choices] == [len(ids), 3]
    first, prefix = (c.logprobs.token_logprobs for c in scored.choices)
    assert first[0] is None and prefix[0] is None and first[1:3] == pytest.approx(prefix[1:3], abs=1e-4)
    by_text = client.completions.create(model="ft-b", prompt=PROMPT, max_tokens=5, temperature=0)
    by_ids = client.completions.create(model="ft-b", prompt=ids, max_tokens=5, temperature=0)
    assert by_ids.choices[0].text == by_text.choices[0].text and by_ids.choices[0].logprobs is None


def test_chat_logprobs_in_openai_shape_streamed_alike(client):
    kw = {"model": "ft-a", "messages": MESSAGES, "max_tokens": 6, "temperature": 0, "logprobs": True,
          "top_logprobs": 3}
    resp = client.chat.completions.create(**kw)
    content = resp.choices[0].logprobs.content
    assert len(content) == 6
    for item in content:
        assert isinstance(item.token, str) and item.logprob <= 0 and isinstance(item.bytes, list)
        assert len(item.top_logprobs) == 3 and item.top_logprobs[0].logprob == pytest.approx(item.logprob)  # greedy
    streamed = [c for c in client.chat.completions.create(**kw, stream=True) if c.choices]
    tokens = [t for c in streamed if c.choices[0].logprobs for t in c.choices[0].logprobs.content]
    assert [(t.token, round(t.logprob, 5)) for t in tokens] == [(t.token, round(t.logprob, 5)) for t in content]
    plain = client.chat.completions.create(model="ft-a", messages=MESSAGES, max_tokens=2, temperature=0)
    assert plain.choices[0].logprobs is None


def test_streamed_completion_logprobs_with_echo(client):
    kw = {"model": "tiny-base", "prompt": PROMPT, "max_tokens": 4, "temperature": 0, "logprobs": 1, "echo": True}
    whole = client.completions.create(**kw).choices[0]
    chunks = [c.choices[0] for c in client.completions.create(**kw, stream=True) if c.choices]
    assert "".join(c.text for c in chunks) == whole.text and chunks[0].text == PROMPT
    tokens = [t for c in chunks if c.logprobs for t in c.logprobs.tokens]
    offsets = [o for c in chunks if c.logprobs for o in c.logprobs.text_offset]
    assert tokens == whole.logprobs.tokens and offsets == whole.logprobs.text_offset


@pytest.mark.parametrize("body,param", [
    ({"prompt": [[1, 2], "x"]}, "prompt"),
    ({"prompt": [1, 2, 10**9]}, "prompt"),  # beyond the vocabulary: the engine says so
    ({"prompt": "word " * 1100}, "prompt"),  # longer than the model's 1024 positions
    ({"prompt": "x", "logprobs": 9}, "logprobs"),
])
def test_prompt_errors_name_prompt(client, body, param):
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="tiny-base", max_tokens=2, **body)
    assert info.value.body["param"] == param
