"""A lorafleet model (a base model, an adapter or a checkpoint) as an in-process teacher.

``LocalTeacher`` answers the same completion-style ``TeacherRequest``s as ``OpenAITeacher`` with the
batched ``InferenceEngine`` of the worker that runs the job (its GPU, no HTTP hop), so a self-instruct
job can use a model the user just fine-tuned without serving it:

- ``api="completions"``: the prompt is the model's raw input (what the published pipelines sent to
  davinci); ``api="chat"``: the prompt is adapted exactly as ``OpenAITeacher`` does for chat models
  (one user message ``CHAT_CONTINUE_INSTRUCTION + "\\n\\n" + prompt`` rendered with the model's chat
  or adapter template; an echo of the prompt's last line is removed).
- A whole batch of requests is decoded together; each answer reaches ``on_response`` (the ledger) as
  soon as its row finishes, before the rest of the batch.
- Sampling is seeded per request from its ledger id, so one request always gets the same answer.
- ``max_tokens`` is cut to the room left in the context window (the published pipelines shrank it
  when the API said the prompt was too long); a prompt that leaves no room answers that request
  with ``finish_reason="error"``, as a 400 from a remote teacher does.
- ``presence_penalty`` / ``frequency_penalty`` are not implemented by the engine and are ignored
  (logged once), as ``OpenAITeacher`` drops them for lorafleet's own server.
- Token counts are the tokenizer's; the cost is 0 unless the job gives a price per million tokens.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

from contracts.decoding import DecodeRequest, DecodeResult, ModelTarget
from worker.ml.decoding.adapter_cache import AdapterLoadError
from worker.ml.teachers.continuation import apply_stops, chat_content, chat_reply, request_seed, unique_stops
from worker.ml.teachers.costs import FREE, ModelPrice, TeacherUsage
from worker.ml.teachers.interface import ResponseCallback, TeacherRequest, TeacherResponse

logger = logging.getLogger(__name__)
MAX_STOPS = 16  # what the engine's SamplingParams accept


class LocalTeacher:
    """``Teacher`` over an ``InferenceEngine`` and one model of it (``target``)."""

    def __init__(self, engine, target: ModelTarget, *, api: Literal["chat", "completions"] = "completions",
                 price: ModelPrice | None = None, continuation: bool = True) -> None:
        if api not in ("chat", "completions"):
            raise ValueError("api must be 'chat' or 'completions'")
        self.engine = engine
        self.target = target
        self.model = target.name
        self.api = api
        self.continuation = continuation  # chat API: the prompt is text to continue (see continuation.chat_content)
        self.price = price or FREE
        self.usage = TeacherUsage()
        self._warned_penalties = False

    def __repr__(self) -> str:
        return f"LocalTeacher(model={self.model!r}, api={self.api!r})"

    # --- Teacher protocol
    def complete(self, requests: Sequence[TeacherRequest],
                 on_response: ResponseCallback | None = None) -> list[TeacherResponse]:
        if not requests:
            return []
        answers: dict[int, TeacherResponse] = {}
        rows: list[DecodeRequest] = []
        row_of: list[int] = []  # request index of each engine row
        for i, req in enumerate(requests):
            row = self._decode_request(req)
            if isinstance(row, TeacherResponse):
                self._answer(answers, i, row, on_response)
            else:
                rows.append(row)
                row_of.append(i)

        def finished(j: int, result: DecodeResult) -> None:
            i = row_of[j]
            self._answer(answers, i, self._response(requests[i], result), on_response)

        self.engine.generate(rows, on_result=finished)
        return [answers[i] for i in range(len(requests))]

    def estimate_cost(self, request: TeacherRequest) -> float:
        return self.price.cost(len(self.engine.tokenizer(request.prompt).input_ids), request.params.max_tokens)

    # --- one request
    def _answer(self, answers: dict, i: int, resp: TeacherResponse, on_response: ResponseCallback | None) -> None:
        answers[i] = resp
        self.usage.add(resp)
        if on_response is not None:
            on_response(resp)

    def _decode_request(self, req: TeacherRequest) -> DecodeRequest | TeacherResponse:
        p = req.params
        if (p.presence_penalty or p.frequency_penalty) and not self._warned_penalties:
            self._warned_penalties = True
            logger.warning("local teacher %s ignores presence/frequency penalties", self.model)
        sample = p.temperature > 0 and p.top_p > 0  # top_p 0 keeps only the top token: greedy
        common = {"temperature": p.temperature if sample else 0.0, "top_p": p.top_p if sample else 1.0,
                  "stop": unique_stops(p.stop)[:MAX_STOPS], "seed": request_seed(req.request_id),
                  "adapter_dir": self.target.adapter_dir, "prompt_template": self.target.prompt_template}
        if self.api == "chat":
            row = DecodeRequest(messages=[{"role": "user", "content": chat_content(req.prompt, self.continuation)}],
                                    max_new_tokens=1, **common)
        else:
            row = DecodeRequest(prompt=req.prompt, max_new_tokens=1, **common)
        try:
            prompt_tokens = len(self.engine.encode(row))
        except (ValueError, AdapterLoadError) as exc:
            return TeacherResponse(req.request_id, "", "error", model=self.model, error=str(exc))
        room = self.engine.max_positions - prompt_tokens
        if room < 1:
            return TeacherResponse(req.request_id, "", "error", prompt_tokens, model=self.model, error=(
                f"context_length_exceeded: the prompt has {prompt_tokens} tokens; the model takes "
                f"{self.engine.max_positions}"))
        return row.model_copy(update={"max_new_tokens": min(p.max_tokens, room)})

    def _response(self, req: TeacherRequest, result: DecodeResult) -> TeacherResponse:
        if not result.ok:
            return TeacherResponse(req.request_id, "", "error", result.prompt_tokens, 0, 0.0, self.model,
                                   error=result.error)
        text = chat_reply(req.prompt, result.text, self.continuation) if self.api == "chat" else result.text
        text, stopped = apply_stops(text, req.params.stop)
        finish = "stop" if stopped else result.finish_reason
        pt, ct = result.prompt_tokens, result.completion_tokens
        return TeacherResponse(req.request_id, text, finish, pt, ct, self.price.cost(pt, ct), self.model)

