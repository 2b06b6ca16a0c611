"""Batched decoding over one base model with many LoRA adapters mixed in a batch.

How a call to ``generate`` runs:
1. every request is rendered and tokenised, and its adapter is fetched from the LRU cache (a row
   whose adapter or prompt is bad gets an error result; the other rows go on);
2. rows are sorted by prompt length and cut into buckets (``max_batch_size`` rows,
   ``max_batch_tokens`` padded prompt tokens), so little padding is computed;
3. each bucket is prefilled once with left padding (``kv_prefill.py``), then decoded token by token
   with the KV cache; PEFT's mixed-adapter forward gives every row its own adapter (or none);
   finished rows leave the batch (their cache rows are dropped), so the batch shrinks instead of
   decoding padding.
Beam search requests go through ``beams.py`` (HF generate, same mixed-adapter routing). The helpers
get the public ``LoadedModel`` (model, tokenizer, pad/EOS ids, adapter routing) and ``DecodeRow``s.

Not thread-safe: one thread owns an engine (the serving batcher, or a Celery task).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import torch

from contracts.decoding import DecodeRequest, DecodeResult, TokenLogprobs
from contracts.tools import with_tool_calls
from worker.ml.decoding.adapter_cache import AdapterLoadError
from worker.ml.decoding.beams import generate_beams
from worker.ml.decoding.constraints import BatchGrammar
from worker.ml.decoding.detokenize import TextAccumulator, TextStream
from worker.ml.decoding.kv_prefill import prefill
from worker.ml.decoding.loaded_model import LoadedModel
from worker.ml.decoding.logprobs import PromptLogprobs, TokenPieces, prompt_logprobs, step_logprobs
from worker.ml.decoding.request_prompts import CHAT_TEMPLATE, render_instruction, render_messages
from worker.ml.decoding.rows import DecodeRow
from worker.ml.decoding.sampling import make_generator, select_next_tokens

DEFAULT_ADAPTER_CACHE_BYTES = 1 << 30  # LoRA weights kept resident (r=8 q/v on a 7B model is ~17 MB)
DeltaCallback = Callable[[int, str], None]  # (request index, new text)
ResultCallback = Callable[[int, DecodeResult], None]  # (request index, its finished result)
LogprobsCallback = Callable[[int, TokenLogprobs], None]  # (request index, its tokens since the last call)
Event = tuple[int, str, bool, TokenLogprobs | None]  # (request index, new text, finished, new tokens' logprobs)


class InferenceEngine:
    def __init__(self, base_model_dir: Path, device: str = "auto", dtype: str = "auto",
                 adapter_cache_bytes: int = DEFAULT_ADAPTER_CACHE_BYTES, max_batch_size: int = 32,
                 max_batch_tokens: int = 16384, batch_invariant: bool = False) -> None:
        self.base_model_dir = Path(base_model_dir)
        self.loaded = LoadedModel.load(self.base_model_dir, device, dtype, adapter_cache_bytes)
        self.model, self.tokenizer, self.adapters = self.loaded.model, self.loaded.tokenizer, self.loaded.adapters
        self.device, self.dtype = self.loaded.device, self.loaded.dtype
        self.max_positions = self.loaded.max_positions
        self.pieces = TokenPieces(self.tokenizer)
        self.batch_invariant = batch_invariant  # every row decoded alone: see README "Deterministic mode"
        self.max_batch_size = 1 if batch_invariant else max_batch_size
        self.max_batch_tokens = 1 if batch_invariant else max_batch_tokens  # 1: echoed prompts are scored alone too
        self.prefill_group_min_tokens = 512  # a prefill group is split off only past this many real tokens

    # --- prompts
    def prompt_template_for(self, adapter_dir: Path | None) -> str:
        """The base model chats with its tokenizer's template; adapters use the one they trained on."""
        if adapter_dir is None:
            return CHAT_TEMPLATE if getattr(self.tokenizer, "chat_template", None) else "alpaca"
        return self.adapters.get(adapter_dir).prompt_template or "alpaca"

    def render_instruction(self, instruction: str, inp: str, adapter_dir: Path | None,
                           template: str | None = None) -> tuple[str, bool]:
        return render_instruction(instruction, inp, template or self.prompt_template_for(adapter_dir), self.tokenizer)

    def encode(self, request: DecodeRequest) -> list[int]:
        if request.prompt_ids is not None:
            vocab = self.model.get_input_embeddings().num_embeddings
            if any(t >= vocab for t in request.prompt_ids):
                raise ValueError(f"invalid_prompt: token ids must be below the vocabulary size ({vocab})")
            return list(request.prompt_ids)
        if request.prompt is not None:
            return self.tokenizer(request.prompt).input_ids
        template = request.prompt_template or self.prompt_template_for(request.adapter_dir)
        text, special = render_messages(request.messages, template, self.tokenizer, request.tools)
        return self.tokenizer(text, add_special_tokens=special).input_ids

    # --- decoding
    def generate(self, requests: list[DecodeRequest], on_delta: DeltaCallback | None = None,
                 on_result: ResultCallback | None = None, is_cancelled: Callable[[int], bool] | None = None,
                 on_logprobs: LogprobsCallback | None = None) -> list[DecodeResult]:
        """One result per request, in order. ``on_delta(i, text)`` streams text as it is decoded;
        ``on_logprobs(i, logprobs)`` (rows that ask for logprobs) streams the tokens decoded since its
        last call, just before the ``on_delta`` of the same step; ``on_result(i, result)`` fires as soon
        as row ``i`` is finished (before the batch is); a row for which ``is_cancelled(i)`` turns true
        stops at the next token (finish "stop")."""
        results: list[DecodeResult] = [None] * len(requests)  # type: ignore[list-item]
        stream = on_delta is not None or on_logprobs is not None
        for index, delta, finished, logprobs in self._run(requests, results, stream, is_cancelled):
            if on_logprobs is not None and logprobs is not None:
                on_logprobs(index, logprobs)
            if on_delta is not None and delta:
                on_delta(index, delta)
            if on_result is not None and finished:
                on_result(index, results[index])
        return results

    def stream(self, request: DecodeRequest) -> TextStream:
        """Text deltas of one request as they are decoded; ``.result`` once exhausted."""
        results: list[DecodeResult] = [None]  # type: ignore[list-item]
        return TextStream(((i, d) for i, d, _, _ in self._run([request], results, stream=True)), results)

    def _run(self, requests: list[DecodeRequest], results: list[DecodeResult], stream: bool,
             is_cancelled: Callable[[int], bool] | None = None) -> Iterator[Event]:
        """Yields (request index, new text, finished, new tokens' logprobs when ``stream``) events; fills
        ``results`` as rows finish. Echo rows first yield their prompt (scored when they ask for logprobs,
        in the prefill pass); rows with ``max_new_tokens == 0`` are only scored and end there."""
        rows = self._prepare(requests, results)
        for i, res in enumerate(results):
            if res is not None:
                yield i, "", True, None
        pinned = {r.adapter for r in rows}
        self.adapters.evict(pinned)
        for row in self._start_logprobs(rows):  # max_new_tokens == 0: echo only, scored
            row.finish = "length"
            results[row.index] = self._result(row)
            yield row.index, self._prompt_text(row), True, self._new_logprobs(row, stream)
        rows = [r for r in rows if r.finish is None]
        beam_rows = [r for r in rows if r.request.num_beams > 1]
        for row, result in generate_beams(self.loaded, beam_rows, self.max_batch_size):
            if row.request.echo:
                result.text = self._prompt_text(row) + result.text
            results[row.index] = result
            yield row.index, result.text, True, None
        for bucket in self._buckets([r for r in rows if r.request.num_beams == 1]):
            for row in bucket:
                if stream or row.request.stop:
                    row.acc = TextAccumulator(self.tokenizer, row.request.stop)
            for row, delta in self._decode(bucket, is_cancelled):
                if row.finish is not None:
                    results[row.index] = with_tool_calls(row.request.constraint, self._result(row))
                yield row.index, delta, row.finish is not None, self._new_logprobs(row, stream)

    def _start_logprobs(self, rows: list[DecodeRow]) -> list[DecodeRow]:
        """Set up the logprobs of the rows that ask for them; score the prompts of the rows that generate
        nothing (``max_new_tokens == 0``, all in one ``score_continuations`` call) and return those rows."""
        for row in rows:
            if row.request.logprobs is not None:
                row.logprobs = TokenLogprobs()
                if not row.request.echo:
                    row.text_offset = len(self._prompt_text(row))
        only = [r for r in rows if r.request.max_new_tokens == 0]
        self._score_prompts([r for r in only if r.logprobs is not None])
        return only

    def _score_prompts(self, rows: list[DecodeRow], scores: dict[int, PromptLogprobs] | None = None) -> None:
        """Add each row's prompt tokens to its logprobs: from ``scores`` (row.index -> prompt logprobs) when
        given, else teacher-forced in one ``score_continuations`` call."""
        if scores is None:
            scores = dict(zip((r.index for r in rows), prompt_logprobs(self.loaded, rows, self.max_batch_tokens)
                              if rows else []))
        for row in rows:
            for token, (logprob, top) in zip(row.prompt_ids, scores[row.index]):
                row.text_offset = self.pieces.add(row.logprobs, row.text_offset, token, logprob, top)

    def _prompt_text(self, row: DecodeRow) -> str:
        """The prompt as text (what ``echo`` returns before the completion)."""
        if row.request.prompt is not None:
            return row.request.prompt
        return self.tokenizer.decode(row.prompt_ids, skip_special_tokens=False)

    @staticmethod
    def _new_logprobs(row: DecodeRow, stream: bool) -> TokenLogprobs | None:
        """The row's tokens not yet handed out with an event (streaming only; None when there are none)."""
        if not stream or row.logprobs is None or len(row.logprobs) == row.reported:
            return None
        new = row.logprobs.since(row.reported)
        row.reported = len(row.logprobs)
        return new

    def _prepare(self, requests: list[DecodeRequest], results: list[DecodeResult]) -> list[DecodeRow]:
        rows = []
        for i, req in enumerate(requests):
            try:
                ids = self.encode(req)
                adapter = self.loaded.adapter_name(req.adapter_dir)
            except (AdapterLoadError, ValueError) as exc:
                results[i] = DecodeResult("", "error", 0, 0, error=str(exc))
                continue
            if not ids:
                results[i] = DecodeResult("", "error", 0, 0, error="the prompt is empty")
            elif req.num_beams > 1 and req.logprobs is not None:
                results[i] = DecodeResult("", "error", len(ids), 0, error="logprobs are not available with beam search")
            elif len(ids) + req.max_new_tokens > self.max_positions:
                results[i] = DecodeResult("", "error", len(ids), 0, error=(
                    f"context_length_exceeded: {len(ids)} prompt tokens + {req.max_new_tokens} new tokens > "
                    f"{self.max_positions}"))
            else:
                rows.append(DecodeRow(i, req, ids, adapter))
        return rows

    def _buckets(self, rows: list[DecodeRow]) -> Iterator[list[DecodeRow]]:
        """Length-sorted buckets bounded by rows and by KV-cache tokens (padded prompt + new tokens)."""
        bucket: list[DecodeRow] = []
        for row in sorted(rows, key=lambda r: len(r.prompt_ids)):
            span = len(row.prompt_ids) + max([row.request.max_new_tokens] + [r.request.max_new_tokens for r in bucket])
            if bucket and (len(bucket) >= self.max_batch_size or span * (len(bucket) + 1) > self.max_batch_tokens):
                yield bucket
                bucket = []
            bucket.append(row)
        if bucket:
            yield bucket

    def _decode(self, rows: list[DecodeRow], is_cancelled: Callable[[int], bool] | None = None
                ) -> Iterator[tuple[DecodeRow, str]]:
        """Prefill the bucket, then decode with the KV cache until every row finished; finished
        rows leave the batch."""
        cache, mask, logits, prompt_scores, unscored = prefill(self.loaded, rows, self.prefill_group_min_tokens)
        self._score_prompts(unscored)  # a model whose logits its output layer alone does not give
        self._score_prompts([r for r in rows if r.index in prompt_scores], prompt_scores)
        for row in rows:
            if row.request.echo:
                yield row, self._prompt_text(row)
        positions = mask.sum(-1) - 1  # position of each row's last prompt token
        generators = [make_generator(r.request) for r in rows]
        grammar = BatchGrammar.of(self.loaded, rows)  # per-row token masks of constrained rows
        while True:
            with torch.inference_mode():
                scored = [j for j, r in enumerate(rows) if r.logprobs is not None]
                raw = logits[torch.tensor(scored, device=logits.device)] if scored else None  # a copy: raw logits
                allowed = grammar.allowed(rows, logits.shape[-1], logits.device) if grammar else None
                tokens = select_next_tokens(logits, [r.request for r in rows], generators, allowed)
                if grammar:
                    grammar.consume(rows, tokens.tolist())
                if raw is not None:
                    self._record_logprobs([rows[j] for j in scored], raw, tokens[scored])
            keep = []
            for j, (row, token) in enumerate(zip(rows, tokens.tolist())):
                delta = self._advance(row, token)
                if row.finish is None and is_cancelled is not None and is_cancelled(row.index):
                    row.finish = "stop"
                yield row, delta
                if row.finish is None:
                    keep.append(j)
            if not keep:
                return
            if len(keep) < len(rows):
                index = torch.tensor(keep, device=self.device)
                with torch.inference_mode():
                    cache.batch_select_indices(index)
                    tokens, mask, positions = tokens[index], mask[index], positions[index]
                rows = [rows[j] for j in keep]
                generators = [generators[j] for j in keep]
            with torch.inference_mode(), self.loaded.adapter_rows([r.adapter for r in rows]):
                mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)
                positions = positions + 1
                logits = self.model(input_ids=tokens[:, None], attention_mask=mask, position_ids=positions[:, None],
                                    cache=cache, use_cache=True).logits[:, -1]

    def _record_logprobs(self, rows: list[DecodeRow], raw_logits: torch.Tensor, tokens: torch.Tensor) -> None:
        """Append each row's chosen token with its log-probability under the raw logits."""
        steps = step_logprobs(raw_logits, tokens, [r.request.logprobs or 0 for r in rows])
        for row, token, (logprob, top) in zip(rows, tokens.tolist(), steps):
            row.text_offset = self.pieces.add(row.logprobs, row.text_offset, token, logprob, top)

    def _advance(self, row: DecodeRow, token: int) -> str:
        """Record one new token of a row; return its new visible text and set ``finish`` when done."""
        row.out_ids.append(token)
        delta = ""
        if token in self.loaded.eos_ids:
            row.finish = "stop"
        elif row.acc is not None:
            delta, hit = row.acc.push(token)
            if hit:
                row.finish = "stop"
        if row.finish is None and len(row.out_ids) >= row.request.max_new_tokens:
            row.finish = "length"
        if row.finish is not None and row.acc is not None:
            delta += row.acc.flush()
        return delta

    def _result(self, row: DecodeRow) -> DecodeResult:
        body = row.out_ids[:-1] if row.out_ids and row.out_ids[-1] in self.loaded.eos_ids else row.out_ids
        text = self.tokenizer.decode(body, skip_special_tokens=True)
        if row.acc is not None and row.acc.stopped_at >= 0:
            text = row.acc.text[:row.acc.stopped_at]
        if row.request.echo:
            text = self._prompt_text(row) + text
        return DecodeResult(text, row.finish or "length", len(row.prompt_ids), len(row.out_ids), logprobs=row.logprobs)

