"""Teacher-forced log-probabilities of continuations given contexts (loglikelihood scoring).

``score_continuations`` is what loglikelihood evaluation (multiple choice, perplexity) and the
completions API's ``echo`` / ``logprobs`` need: for each item, the log-probability of every
continuation token given the context and the continuation tokens before it, whether each was the
model's greedy choice, and optionally the top-k alternatives at each position.

How it runs: items are sorted by total length and cut into buckets (bounded by padded tokens and by
the size of the logits kept); each bucket is one left-padded forward pass (attention mask and
position ids as in decoding), every row through its own LoRA adapter (``LoadedModel.adapter_rows``).
Left padding puts every continuation at the end of its row, so logits are computed only for the last
``longest continuation + 1`` positions, and log-softmax only at each row's own continuation positions.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from worker.ml.decoding.adapter_cache import BASE_ADAPTER
from worker.ml.decoding.loaded_model import LoadedModel

LOGITS_BUDGET_BYTES = 1 << 30  # logits (rows x kept positions x vocabulary, fp32) of one forward pass


@dataclass
class ScoreItem:
    context_ids: list[int]  # at least one token: the first continuation token is predicted from it
    continuation_ids: list[int]
    adapter: str = BASE_ADAPTER  # PEFT adapter name (``LoadedModel.adapter_name``), as a decode row's
    top_k: int = 0  # alternatives reported per continuation position


@dataclass
class ScoreResult:
    token_logprobs: list[float]  # one per continuation token
    is_greedy: bool  # every continuation token was the argmax of its position
    top_logprobs: list[list[tuple[int, float]]] = field(default_factory=list)  # per position, (id, logprob), best first

    @property
    def logprob(self) -> float:
        """Sum of the continuation's token log-probabilities (lm-eval's loglikelihood)."""
        return sum(self.token_logprobs)


def score_continuations(loaded: LoadedModel, items: list[ScoreItem], max_batch_tokens: int = 16384
                        ) -> list[ScoreResult]:
    """One ``ScoreResult`` per item, in order. Raises ValueError for an item without context or longer
    than the model's positions (callers truncate contexts from the left, as harnesses do)."""
    for i, item in enumerate(items):
        if not item.context_ids:
            raise ValueError(f"item {i}: empty context (the first continuation token has nothing to follow)")
        if len(item.context_ids) + len(item.continuation_ids) > loaded.max_positions:
            raise ValueError(f"item {i}: {len(item.context_ids) + len(item.continuation_ids)} tokens > "
                             f"{loaded.max_positions} positions")
    results: list[ScoreResult | None] = [None] * len(items)
    todo = []
    for i, item in enumerate(items):
        if item.continuation_ids:
            todo.append(i)
        else:
            results[i] = ScoreResult([], True, [])
    vocab = int(loaded.model.get_output_embeddings().weight.shape[0])
    for bucket in _buckets(items, todo, max_batch_tokens, max(1, LOGITS_BUDGET_BYTES // (4 * vocab))):
        for i, result in zip(bucket, _score_bucket(loaded, [items[i] for i in bucket])):
            results[i] = result
    return results  # type: ignore[return-value]


def _buckets(items: list[ScoreItem], indices: list[int], max_tokens: int, max_logit_rows: int) -> Iterator[list[int]]:
    """Length-sorted buckets: padded tokens <= ``max_tokens`` and kept logits <= ``max_logit_rows``
    (each bucket has at least one item)."""
    def total(i: int) -> int:
        return len(items[i].context_ids) + len(items[i].continuation_ids)

    bucket: list[int] = []
    tail = 0
    for i in sorted(indices, key=total):
        new_tail = max(tail, len(items[i].continuation_ids) + 1)
        rows = len(bucket) + 1
        if bucket and (total(i) * rows > max_tokens or new_tail * rows > max_logit_rows):
            yield bucket
            bucket, new_tail = [], len(items[i].continuation_ids) + 1
        bucket.append(i)
        tail = new_tail
    if bucket:
        yield bucket


def _score_bucket(loaded: LoadedModel, items: list[ScoreItem]) -> list[ScoreResult]:
    """One left-padded forward pass; log-softmax at the continuation positions only."""
    tail = max(len(it.continuation_ids) for it in items)
    sequences = [it.context_ids + it.continuation_ids for it in items]
    out, ids, _ = loaded.forward_left_padded(sequences, [it.adapter for it in items], logits_to_keep=tail + 1)
    with torch.inference_mode():
        logits = out.logits[:, :-1]  # position p of these predicts column p + 1 of the last ``tail`` ids
        rows = torch.cat([torch.full((len(it.continuation_ids),), j) for j, it in enumerate(items)])
        cols = torch.cat([torch.arange(tail - len(it.continuation_ids), tail) for it in items])
        rows, cols = rows.to(logits.device), cols.to(logits.device)
        logprobs = torch.log_softmax(logits[rows, cols].float(), dim=-1)  # (continuation tokens, vocabulary)
        targets = ids[:, -tail:][rows, cols]
        chosen = logprobs.gather(-1, targets[:, None])[:, 0].tolist()
        greedy = (logprobs.argmax(-1) == targets).tolist()
        k = max(it.top_k for it in items)
        top = torch.topk(logprobs, k, dim=-1) if k else None
        top_values = top.values.tolist() if top is not None else []
        top_ids = top.indices.tolist() if top is not None else []
    results, start = [], 0
    for it in items:
        end = start + len(it.continuation_ids)
        tops = [list(zip(top_ids[p][:it.top_k], top_values[p][:it.top_k])) for p in range(start, end)] if it.top_k else []
        results.append(ScoreResult(chosen[start:end], all(greedy[start:end]), tops))
        start = end
    return results
