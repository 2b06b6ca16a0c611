"""Teacher-forced log-probabilities of continuations given contexts (loglikelihood scoring).

``score_continuations`` is what loglikelihood evaluation (multiple choice, perplexity) and the
completions API's ``echo`` / ``logprobs`` need: for each item, the log-probability of every
continuation token given the context and the continuation tokens before it, whether each was the
model's greedy choice, and optionally the top-k alternatives at each position.

How it runs: items are sorted by total length and cut into buckets (bounded by padded tokens and by
padding waste, as prefill groups are); each bucket is one left-padded forward pass (attention mask and
position ids as in decoding), every row through its own LoRA adapter (``LoadedModel.adapter_rows``).
The decoder's hidden states are gathered at the continuation positions only, and the output layer
and log-softmax run on those (in chunks bounded by ``LOGITS_BUDGET_BYTES``), not on prompt positions.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from worker.ml.decoding.adapter_cache import BASE_ADAPTER
from worker.ml.decoding.loaded_model import LoadedModel
from worker.ml.decoding.rows import left_pad, positions_of
from worker.ml.decoding.token_logprobs import target_logprobs

LOGITS_BUDGET_BYTES = 1 << 29  # fp32 log-probs (positions x vocabulary) computed at once


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
    for bucket in _buckets([len(items[i].context_ids) + len(items[i].continuation_ids) for i in todo],
                           max_batch_tokens):
        indices = [todo[b] for b in bucket]
        for i, result in zip(indices, _score_bucket(loaded, [items[i] for i in indices])):
            results[i] = result
    return results  # type: ignore[return-value]


def _buckets(lengths: list[int], max_tokens: int, min_tokens: int = 512, max_waste: float = 0.25
             ) -> Iterator[list[int]]:
    """Indices into ``lengths`` in length-sorted buckets of at most ``max_tokens`` padded tokens (or one
    row), split where padding would exceed ``max_waste`` of a bucket once it has ``min_tokens`` real ones."""
    bucket: list[int] = []
    real = 0
    for i in sorted(range(len(lengths)), key=lengths.__getitem__):
        n = lengths[i]
        padded = n * (len(bucket) + 1)
        if bucket and (padded > max_tokens or (real >= min_tokens and padded - (real + n) > max_waste * padded)):
            yield bucket
            bucket, real = [], 0
        bucket.append(i)
        real += n
    if bucket:
        yield bucket


def _score_bucket(loaded: LoadedModel, items: list[ScoreItem]) -> list[ScoreResult]:
    """One left-padded forward pass; the output layer and log-softmax at the continuation positions only."""
    ids, mask = left_pad([it.context_ids + it.continuation_ids for it in items], loaded.pad_id, loaded.device)
    width = ids.shape[1]
    # the hidden state at column c predicts the token in column c + 1: continuations end every row
    rows = torch.cat([torch.full((len(it.continuation_ids),), j) for j, it in enumerate(items)]).to(ids.device)
    cols = torch.cat([torch.arange(width - len(it.continuation_ids) - 1, width - 1) for it in items]).to(ids.device)
    targets = ids[rows, cols + 1]
    adapters = [it.adapter for it in items]
    k = max(it.top_k for it in items)
    chosen, greedy, tops = [], [], []
    with torch.inference_mode():
        hidden = _continuation_states(loaded, ids, mask, adapters, rows, cols, int(width - cols.min()))
        position_adapters = [adapters[r] for r in rows.tolist()]
        step = max(1, LOGITS_BUDGET_BYTES // (4 * _vocabulary(loaded)))
        for start in range(0, len(rows), step):
            logits = hidden[start:start + step]
            if _split_output_layer(loaded):
                with loaded.adapter_rows(position_adapters[start:start + step]):
                    logits = loaded.model.get_output_embeddings()(logits)
            scored = target_logprobs(logits, targets[start:start + step], k)
            chosen += scored.chosen
            greedy += scored.greedy
            tops += scored.top
    results, start = [], 0
    for it in items:
        end = start + len(it.continuation_ids)
        item_tops = [tops[p][:it.top_k] for p in range(start, end)] if it.top_k else []
        results.append(ScoreResult(chosen[start:end], all(greedy[start:end]), item_tops))
        start = end
    return results


def _continuation_states(loaded: LoadedModel, ids: torch.Tensor, mask: torch.Tensor, adapters: list[str],
                         rows: torch.Tensor, cols: torch.Tensor, tail: int) -> torch.Tensor:
    """(continuation tokens, hidden) from the decoder, each row through its adapter; where the output
    layer cannot be run apart from the model (logit soft-capping, scaling), the logits themselves of the
    last ``tail`` columns."""
    with loaded.adapter_rows(adapters):
        if _split_output_layer(loaded):
            states = loaded.model.get_decoder()(input_ids=ids, attention_mask=mask, position_ids=positions_of(mask),
                                                use_cache=False).last_hidden_state
            return states[rows, cols]
        logits = loaded.model(input_ids=ids, attention_mask=mask, position_ids=positions_of(mask),
                              use_cache=False, logits_to_keep=tail).logits
    return logits[rows, cols - (ids.shape[1] - tail)]


_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")


def _split_output_layer(loaded: LoadedModel) -> bool:
    """Whether logits are exactly ``output_embeddings(decoder(...).last_hidden_state)`` for this model."""
    config = loaded.model.config
    return not any(getattr(config, name, None) not in (None, 1, 1.0) for name in _LOGIT_TRANSFORMS)


def _vocabulary(loaded: LoadedModel) -> int:
    return int(loaded.model.get_output_embeddings().weight.shape[0])
