"""Training data: render, tokenize with the loss mask, split, and plan micro-batches.

Rendering follows Alpaca-LoRA: the target text is the prompt followed directly by the output, EOS
is appended when the last token is not EOS and the sequence is shorter than ``cutoff_len`` (so a
truncated example ends without EOS, as in Alpaca-LoRA). With ``train_on_inputs=False`` every token
that lies entirely inside the prompt text (BOS included) gets label -100; the mask is taken from
one tokenization of the full text (character offsets of the fast tokenizer), so the prompt/response boundary never
disagrees with the tokens the model sees.

Torch is imported lazily (only the collate functions need it).
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.prompts import render_prompt
from contracts.records import Example

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100
TOKENIZE_CHUNK = 4096


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    line: int
    full_length: int  # tokens before cutoff truncation, EOS included
    n_loss_tokens: int  # positions with a loss: labels[1:] that are not -100 (the first is never predicted)

    @property
    def truncated(self) -> bool:
        return self.full_length > len(self.input_ids)


def load_tokenizer(tokenizer_dir: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


def example_messages(example: Example) -> list[dict]:
    """Chat messages for an example; Alpaca rows become one user turn and one assistant turn."""
    if example.messages is not None:
        return [{"role": m["role"], "content": m["content"]} for m in example.messages]
    user = example.instruction + (f"\n\n{example.input}" if example.input else "")
    return [{"role": "user", "content": user}, {"role": "assistant", "content": example.output}]


def render_example(example: Example, template: str, tokenizer: PreTrainedTokenizerBase) -> tuple[str, str]:
    """(prompt text, full text). The full text starts with the prompt text."""
    if template != "chat":
        prompt = render_prompt(example.instruction, example.input, template)
        return prompt, prompt + example.output
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError("prompt_template 'chat' needs a base model whose tokenizer has a chat template")
    msgs = example_messages(example)
    prompt = tokenizer.apply_chat_template(msgs[:-1], tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(msgs, tokenize=False).rstrip()  # ends with the end-of-turn token
    if not full.startswith(prompt):
        raise ValueError(f"line {example.line}: the chat template does not render the prompt as a prefix")
    return prompt, full


def tokenize_examples(
    examples: Sequence[Example],
    tokenizer: PreTrainedTokenizerBase,
    *,
    cutoff_len: int,
    train_on_inputs: bool,
    template: str = "alpaca",
) -> list[TokenizedExample]:
    """Tokenize in batches (one pass over the full texts) and build labels with the prompt mask."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise ValueError("the tokenizer has no EOS token")
    out: list[TokenizedExample] = []
    for start in range(0, len(examples), TOKENIZE_CHUNK):
        chunk = examples[start:start + TOKENIZE_CHUNK]
        rendered = [render_example(ex, template, tokenizer) for ex in chunk]
        enc = tokenizer([full for _, full in rendered], return_attention_mask=False,
                        add_special_tokens=template != "chat")
        for i, (ex, (prompt, _), ids) in enumerate(zip(chunk, rendered, enc["input_ids"])):
            n_prompt = count_prompt_tokens(enc, i, len(prompt), tokenizer, prompt)
            out.append(_build_example(ex.line, ids, n_prompt, eos, cutoff_len, train_on_inputs))
    return out


def count_prompt_tokens(enc: Any, row: int, prompt_chars: int, tokenizer: PreTrainedTokenizerBase,
                        prompt: str) -> int:
    """Tokens that lie entirely inside the prompt text (leading special tokens included).

    A token that straddles the prompt/response boundary holds response text, so it is trained on.
    Slow tokenizers (no character offsets) fall back to Alpaca-LoRA's rule: the prompt's own length.
    """
    encodings = getattr(enc, "encodings", None)
    if not encodings or prompt_chars == 0:
        if prompt_chars == 0:
            return 0
        return len(tokenizer(prompt, add_special_tokens=True)["input_ids"])
    encoding = encodings[row]
    last = encoding.char_to_token(prompt_chars - 1)
    if last is None:  # a character no token covers (normaliser dropped it): scan the offsets
        return sum(1 for _, end in encoding.offsets if end <= prompt_chars)
    _, end = encoding.token_to_chars(last)
    return last + 1 if end <= prompt_chars else last


def _build_example(line: int, ids: list[int], n_prompt: int, eos: int, cutoff_len: int,
                   train_on_inputs: bool) -> TokenizedExample:
    full_length = len(ids) + (0 if ids and ids[-1] == eos else 1)
    ids = ids[:cutoff_len]
    labels = list(ids)
    if not train_on_inputs:
        labels[:n_prompt] = [IGNORE_INDEX] * min(n_prompt, len(labels))
    if (not ids or ids[-1] != eos) and len(ids) < cutoff_len:
        ids.append(eos)
        labels.append(eos)
    n_loss = len(labels) - 1 - (max(0, min(n_prompt, len(labels)) - 1) if not train_on_inputs else 0)
    return TokenizedExample(input_ids=ids, labels=labels, line=line, full_length=full_length,
                            n_loss_tokens=max(0, n_loss))


def n_val_examples(n_examples: int, val_set_size: float) -> int:
    """``val_set_size`` < 1 is a fraction, otherwise a count; at least one example stays for training."""
    if val_set_size <= 0 or n_examples < 2:
        return 0
    n = round(n_examples * val_set_size) if val_set_size < 1 else int(val_set_size)
    return max(1 if val_set_size < 1 else 0, min(n, n_examples - 1))


def split_train_val(examples: Sequence[Any], val_set_size: float, seed: int) -> tuple[list[Any], list[Any]]:
    """Seeded random split; both parts keep the file order."""
    n_val = n_val_examples(len(examples), val_set_size)
    if n_val == 0:
        return list(examples), []
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    val_idx = set(order[:n_val])
    train = [ex for i, ex in enumerate(examples) if i not in val_idx]
    val = [ex for i, ex in enumerate(examples) if i in val_idx]
    return train, val


@dataclass(frozen=True)
class StepPlan:
    micro_batches_per_epoch: int
    steps_per_epoch: int
    total_steps: int
    total_micro_batches: int


def plan_steps(n_train: int, batch_size: int, micro_batch_size: int, num_epochs: float) -> StepPlan:
    """An optimizer step takes ``batch_size`` examples (the epoch's last one may take fewer)."""
    if n_train <= 0:
        return StepPlan(0, 0, 0, 0)
    steps_per_epoch = math.ceil(n_train / batch_size)
    full, rest = divmod(n_train, batch_size)
    micro_per_epoch = full * math.ceil(batch_size / micro_batch_size) + math.ceil(rest / micro_batch_size)
    total_steps = max(1, math.ceil(num_epochs * steps_per_epoch - 1e-9))
    whole_epochs, extra_steps = divmod(total_steps, steps_per_epoch)
    total_micro = whole_epochs * micro_per_epoch + sum(
        math.ceil(min(batch_size, n_train - s * batch_size) / micro_batch_size) for s in range(extra_steps))
    return StepPlan(micro_per_epoch, steps_per_epoch, total_steps, total_micro)


def plan_epoch(lengths: Sequence[int], batch_size: int, micro_batch_size: int, seed: int, epoch: int,
               group_by_length: bool = True) -> list[list[list[int]]]:
    """Optimizer steps -> micro-batches -> example indices, deterministic in (seed, epoch).

    Which examples share an optimizer step is a plain seeded shuffle; with ``group_by_length`` the
    examples of one step are sorted by length before being cut into micro-batches. The step's
    gradient (a token-weighted sum over its examples) is the same either way; only padding shrinks.
    """
    order = list(range(len(lengths)))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    steps = []
    for s in range(0, len(order), batch_size):
        group = order[s:s + batch_size]
        if group_by_length:
            group = sorted(group, key=lambda i: (-lengths[i], i))
        steps.append([group[m:m + micro_batch_size] for m in range(0, len(group), micro_batch_size)])
    return steps


def pack_step(group: Sequence[int], lengths: Sequence[int], row_tokens: int, rows_per_micro_batch: int
              ) -> list[list[list[int]]]:
    """One optimizer step's examples packed into rows: micro-batches -> rows -> example indices.

    First-fit decreasing: each example (longest first) goes into the first row with room for it
    (rows hold at most ``row_tokens`` tokens; an example is never split), and every
    ``rows_per_micro_batch`` rows make a micro-batch. The step's examples are the same as unpacked,
    so its gradient is too; only the number and padding of forward passes change.
    """
    rows: list[list[int]] = []
    room: list[int] = []
    for i in sorted(group, key=lambda i: (-lengths[i], i)):
        slot = next((r for r, free in enumerate(room) if free >= lengths[i]), None)
        if slot is None:
            rows.append([i])
            room.append(row_tokens - lengths[i])
        else:
            rows[slot].append(i)
            room[slot] -= lengths[i]
    return [rows[m:m + rows_per_micro_batch] for m in range(0, len(rows), rows_per_micro_batch)]


def collate_packed_micro_batch(rows: Sequence[Sequence[TokenizedExample]], pad_id: int) -> dict:
    """Several examples per row, each with its own ``position_ids`` counted from 0.

    Given ``position_ids`` and no attention mask, transformers' mask builder (``masking_utils``)
    detects the restarts and attends block-diagonally: a token sees only earlier tokens of its own
    example, so each example is computed exactly as if it were alone. The last token of each
    example has no target (it must not predict the next example's first token); pads form their own
    block at the end of a row.
    """
    import torch

    width = max(sum(len(ex.input_ids) for ex in row) for row in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    targets = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        at = 0
        for ex in row:
            n = len(ex.input_ids)
            ids[r, at:at + n] = torch.tensor(ex.input_ids, dtype=torch.long)
            targets[r, at:at + n - 1] = torch.tensor(ex.labels[1:], dtype=torch.long)
            positions[r, at:at + n] = torch.arange(n)
            at += n
        positions[r, at:] = torch.arange(width - at)
    return {"input_ids": ids, "targets": targets, "position_ids": positions,
            "n_tokens": sum(len(ex.input_ids) for row in rows for ex in row),
            "n_loss": int((targets != IGNORE_INDEX).sum())}


def collate_micro_batch(batch: Sequence[TokenizedExample], pad_id: int) -> dict:
    """Right-padded ``input_ids`` and next-token ``targets`` (-100 at pads and masked positions).

    Right padding needs no attention mask under causal attention: real tokens never see the pads.
    ``n_tokens`` counts real input tokens; ``n_loss`` counts positions with a target.
    """
    import torch

    width = max(len(ex.input_ids) for ex in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    targets = torch.full((len(batch), width), IGNORE_INDEX, dtype=torch.long)
    for row, ex in enumerate(batch):
        n = len(ex.input_ids)
        ids[row, :n] = torch.tensor(ex.input_ids, dtype=torch.long)
        targets[row, :n - 1] = torch.tensor(ex.labels[1:], dtype=torch.long)
    return {"input_ids": ids, "targets": targets, "n_tokens": sum(len(ex.input_ids) for ex in batch),
            "n_loss": int((targets != IGNORE_INDEX).sum())}
