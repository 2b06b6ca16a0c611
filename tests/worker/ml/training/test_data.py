"""Rendering, label masking (token by token), splitting and micro-batch planning."""
from __future__ import annotations

import pytest

from contracts.prompts import render_prompt
from contracts.records import Example
from worker.ml.training.data import (
    IGNORE_INDEX,
    collate_micro_batch,
    load_tokenizer,
    n_val_examples,
    pack_step,
    plan_epoch,
    plan_steps,
    render_example,
    split_train_val,
    tokenize_examples,
)


@pytest.fixture(scope="module")
def tokenizer(base_model_dir):
    return load_tokenizer(base_model_dir)


def _ex(instruction="Name a colour.", input="", output="Blue is a colour.", line=1, messages=None):
    return Example(instruction, input, output, messages=messages, line=line)


@pytest.mark.parametrize("template", ["alpaca", "alpaca_legacy", "alpaca_short"])
@pytest.mark.parametrize("inp", ["", "The sky on a clear day."])
def test_prompt_tokens_masked_response_and_eos_trained(tokenizer, template, inp):
    ex = _ex(input=inp)
    [t] = tokenize_examples([ex], tokenizer, cutoff_len=256, train_on_inputs=False, template=template)
    prompt = render_prompt(ex.instruction, ex.input, template)
    full_ids = tokenizer(prompt + ex.output)["input_ids"]
    assert t.input_ids == full_ids + [tokenizer.eos_token_id]
    n_prompt = len(tokenizer(prompt)["input_ids"])
    assert t.labels[:n_prompt] == [IGNORE_INDEX] * n_prompt
    assert t.labels[n_prompt:] == t.input_ids[n_prompt:]
    assert tokenizer.decode(t.labels[n_prompt:]) == ex.output + tokenizer.eos_token
    assert t.n_loss_tokens == len(t.input_ids) - n_prompt
    assert not t.truncated


def test_train_on_inputs_trains_every_token(tokenizer):
    [t] = tokenize_examples([_ex()], tokenizer, cutoff_len=256, train_on_inputs=True)
    assert t.labels == t.input_ids
    assert t.n_loss_tokens == len(t.input_ids) - 1
    assert t.input_ids[-1] == tokenizer.eos_token_id


def test_cutoff_truncates_without_eos_and_records_full_length(tokenizer):
    ex = _ex(output="word " * 200)
    [t] = tokenize_examples([ex], tokenizer, cutoff_len=64, train_on_inputs=False)
    full = tokenizer(render_prompt(ex.instruction) + ex.output)["input_ids"]
    assert t.input_ids == full[:64] and len(t.labels) == 64
    assert t.input_ids[-1] != tokenizer.eos_token_id
    assert t.truncated and t.full_length == len(full) + 1


def test_prompt_longer_than_cutoff_leaves_nothing_to_train(tokenizer):
    [t] = tokenize_examples([_ex(instruction="long " * 100)], tokenizer, cutoff_len=32, train_on_inputs=False)
    assert set(t.labels) == {IGNORE_INDEX} and t.n_loss_tokens == 0


def test_eos_is_appended_once_when_output_ends_with_eos(tokenizer):
    [t] = tokenize_examples([_ex(output="Blue." + tokenizer.eos_token)], tokenizer, cutoff_len=256,
                            train_on_inputs=False)
    assert t.input_ids[-1] == tokenizer.eos_token_id and t.input_ids[-2] != tokenizer.eos_token_id


def test_chat_template_masks_everything_before_the_assistant_content(tokenizer):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
            {"role": "assistant", "content": "Hello there."}]
    ex = _ex(messages=msgs)
    [t] = tokenize_examples([ex], tokenizer, cutoff_len=256, train_on_inputs=False, template="chat")
    prompt, full = render_example(ex, "chat", tokenizer)
    assert prompt.endswith("<|im_start|>assistant\n") and full == prompt + "Hello there.<|im_end|>"
    trained = [tok for tok, lab in zip(t.input_ids, t.labels) if lab != IGNORE_INDEX]
    assert tokenizer.decode(trained) == "Hello there.<|im_end|>"
    assert t.input_ids[-1] == tokenizer.eos_token_id and t.input_ids.count(tokenizer.eos_token_id) == 3
    assert tokenizer.decode(t.input_ids) == full


def test_alpaca_row_under_chat_template_becomes_user_turn(tokenizer):
    prompt, full = render_example(_ex(input="ctx"), "chat", tokenizer)
    assert "<|im_start|>user\nName a colour.\n\nctx<|im_end|>" in prompt
    assert full.endswith("Blue is a colour.<|im_end|>")


def test_tokenizes_in_chunks_consistently(tokenizer, monkeypatch):
    from worker.ml.training import data

    exs = [_ex(instruction=f"Count to {i}.", output=" ".join(map(str, range(i))), line=i) for i in range(1, 12)]
    whole = tokenize_examples(exs, tokenizer, cutoff_len=40, train_on_inputs=False)
    monkeypatch.setattr(data, "TOKENIZE_CHUNK", 3)
    assert tokenize_examples(exs, tokenizer, cutoff_len=40, train_on_inputs=False) == whole
    assert [t.line for t in whole] == list(range(1, 12))


@pytest.mark.parametrize("n, size, expected", [(100, 0, 0), (100, 0.1, 10), (100, 7, 7), (100, 500, 99),
                                               (10, 0.01, 1), (1, 0.5, 0)])
def test_n_val_examples(n, size, expected):
    assert n_val_examples(n, size) == expected


def test_split_is_seeded_disjoint_and_keeps_order():
    items = list(range(50))
    train, val = split_train_val(items, 0.2, seed=3)
    assert len(val) == 10 and sorted(train + val) == items
    assert train == sorted(train) and val == sorted(val)
    assert split_train_val(items, 0.2, seed=3) == (train, val)
    assert split_train_val(items, 0.2, seed=4)[1] != val


def test_plan_steps_counts_partial_steps():
    plan = plan_steps(100, batch_size=16, micro_batch_size=4, num_epochs=2)
    assert (plan.steps_per_epoch, plan.micro_batches_per_epoch, plan.total_steps) == (7, 25, 14)
    assert plan.total_micro_batches == 50
    half = plan_steps(96, 16, 4, 0.5)
    assert (half.total_steps, half.total_micro_batches) == (3, 12)


def test_plan_epoch_covers_each_example_once_sorted_within_steps():
    lengths = [(i * 37) % 23 + 1 for i in range(45)]
    steps = plan_epoch(lengths, batch_size=16, micro_batch_size=4, seed=1, epoch=0)
    flat = [i for step in steps for mb in step for i in mb]
    assert sorted(flat) == list(range(45)) and len(steps) == 3
    assert [len(mb) for mb in steps[-1]] == [4, 4, 4, 1]
    for step in steps:
        step_lengths = [lengths[i] for mb in step for i in mb]
        assert step_lengths == sorted(step_lengths, reverse=True)
    assert plan_epoch(lengths, 16, 4, seed=1, epoch=0) == steps
    assert plan_epoch(lengths, 16, 4, seed=1, epoch=1) != steps
    unsorted = plan_epoch(lengths, 16, 4, seed=1, epoch=0, group_by_length=False)
    assert [sorted(i for mb in s for i in mb) for s in unsorted] == [sorted(i for mb in s for i in mb) for s in steps]


def test_pack_step_fills_rows_first_fit_decreasing_without_splitting_examples():
    lengths = [50, 10, 40, 30, 60, 20, 100]
    group = [0, 1, 2, 3, 4, 5, 6]
    micro = pack_step(group, lengths, row_tokens=100, rows_per_micro_batch=2)
    rows = [row for mb in micro for row in mb]
    assert rows == [[6], [4, 2], [0, 3, 5], [1]]  # longest first, each into the first row with room
    assert [len(mb) for mb in micro] == [2, 2]
    assert sorted(i for row in rows for i in row) == group and all(sum(lengths[i] for i in r) <= 100 for r in rows)
    assert pack_step([0], [500], row_tokens=100, rows_per_micro_batch=4) == [[[0]]]  # a long example rides alone


def test_collate_right_pads_and_shifts_targets(tokenizer):
    exs = tokenize_examples([_ex(), _ex(output="A much longer answer about colours.")], tokenizer,
                            cutoff_len=256, train_on_inputs=False)
    batch = collate_micro_batch(exs, pad_id=0)
    short, long_ = exs
    width = len(long_.input_ids)
    assert batch["input_ids"].shape == (2, width)
    assert batch["input_ids"][0, len(short.input_ids):].eq(0).all()
    assert batch["targets"][0].tolist() == short.labels[1:] + [IGNORE_INDEX] * (width - len(short.input_ids) + 1)
    assert batch["targets"][1].tolist() == long_.labels[1:] + [IGNORE_INDEX]
    assert batch["n_tokens"] == len(short.input_ids) + width
    assert batch["n_loss"] == short.n_loss_tokens + long_.n_loss_tokens
