"""OpenAI's log-probability and prompt fields, both ways (torch-free; used by ``openai_format``).

Requests:
- ``/v1/completions``: ``logprobs`` (an integer 0-5: how many alternatives per token; the chosen token
  is always reported too) and ``echo`` (the prompt comes back before the completion, its tokens scored
  when ``logprobs`` is set; ``max_tokens: 0`` then scores without generating). ``prompt`` is a string, a
  list of strings, a list of token ids or a list of such lists (one choice per prompt).
- ``/v1/chat/completions``: ``logprobs: true`` and ``top_logprobs`` (0-20).

Responses: legacy completions ``{tokens, token_logprobs, top_logprobs, text_offset}`` (first prompt
token: null log-probability and null alternatives; alternatives as ``{token: logprob}``), chat
``{content: [{token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}], refusal}``.
The numbers are the model's own distribution (``log_softmax`` of its raw logits, before temperature and
top-p), as OpenAI and vLLM report them; see ``worker/ml/decoding/logprobs.py``.
"""
from __future__ import annotations

from typing import Any

from contracts.decoding import MAX_TOP_LOGPROBS, TokenLogprobs

MAX_COMPLETION_LOGPROBS = 5  # OpenAI's limit for /v1/completions


class LogprobsError(ValueError):
    """A bad log-probability or prompt field; ``param`` names it (``openai_format`` renders it)."""

    def __init__(self, message: str, param: str, code: str = "invalid_value") -> None:
        super().__init__(message)
        self.param, self.code = param, code


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def logprob_knobs(chat: bool, body: dict, num_beams: int = 1) -> dict[str, Any]:
    """``{"logprobs": k or None, "echo": bool}`` for ``DecodeRequest`` from an OpenAI body."""
    if chat:
        wanted, top = body.get("logprobs"), body.get("top_logprobs")
        if wanted not in (None, True, False):
            raise LogprobsError("'logprobs' must be a boolean", "logprobs")
        if top is not None and (not _is_int(top) or not 0 <= top <= MAX_TOP_LOGPROBS):
            raise LogprobsError(f"'top_logprobs' must be an integer from 0 to {MAX_TOP_LOGPROBS}", "top_logprobs")
        if top and not wanted:
            raise LogprobsError("'top_logprobs' needs 'logprobs': true", "top_logprobs")
        if body.get("echo") not in (None, False):
            raise LogprobsError("'echo' is not supported by chat completions", "echo", "unsupported_parameter")
        k, echo = (top or 0) if wanted else None, False
    else:
        k, echo = body.get("logprobs"), body.get("echo")
        if k is not None and (not _is_int(k) or not 0 <= k <= MAX_COMPLETION_LOGPROBS):
            raise LogprobsError(f"'logprobs' must be an integer from 0 to {MAX_COMPLETION_LOGPROBS}", "logprobs")
        if echo not in (None, True, False):
            raise LogprobsError("'echo' must be a boolean", "echo")
        echo = bool(echo)
    if k is not None and num_beams > 1:
        raise LogprobsError("'logprobs' is not available with beam search ('num_beams' > 1)", "logprobs")
    return {"logprobs": k, "echo": echo}


def _is_token_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_is_int(t) and t >= 0 for t in value)


def prompt_inputs(prompt: Any) -> list[dict[str, Any]]:
    """The ``DecodeRequest`` inputs of a completions ``prompt``: ``{"prompt": str}`` or ``{"prompt_ids": [...]}``."""
    if prompt is None:
        raise LogprobsError("'prompt' is required", "prompt", "missing_required_parameter")
    if isinstance(prompt, str):
        return [{"prompt": prompt}]
    if isinstance(prompt, list) and prompt:
        if all(isinstance(p, str) for p in prompt):
            return [{"prompt": p} for p in prompt]
        if all(_is_int(t) for t in prompt):
            if not _is_token_list(prompt):
                raise LogprobsError("'prompt' token ids must be integers >= 0", "prompt")
            return [{"prompt_ids": prompt}]
        if all(isinstance(p, list) for p in prompt):
            for i, p in enumerate(prompt):
                if not _is_token_list(p):
                    raise LogprobsError(f"'prompt[{i}]' must be a non-empty list of token ids (integers >= 0)",
                                        "prompt")
            return [{"prompt_ids": p} for p in prompt]
    raise LogprobsError("'prompt' must be a string, a non-empty list of strings, a list of token ids or a list of "
                        "lists of token ids", "prompt")


def completion_logprobs(lp: TokenLogprobs | None) -> dict | None:
    """Legacy completions ``logprobs``: tokens, token_logprobs, top_logprobs (chosen token included), text_offset."""
    if lp is None:
        return None
    tops: list[dict[str, float] | None] = []
    for token, logprob, top in zip(lp.token_ids, lp.token_logprobs, lp.top_logprobs):
        if logprob is None:
            tops.append(None)
            continue
        entry = {lp.pieces[t].text: v for t, v in top}
        entry.setdefault(lp.pieces[token].text, logprob)
        tops.append(entry)
    return {"tokens": [lp.pieces[t].text for t in lp.token_ids], "token_logprobs": list(lp.token_logprobs),
            "top_logprobs": tops, "text_offset": list(lp.text_offset)}


def chat_logprobs(lp: TokenLogprobs | None) -> dict | None:
    """Chat ``logprobs``: ``{"content": [{token, logprob, bytes, top_logprobs}], "refusal": None}``."""
    if lp is None:
        return None

    def entry(token: int, logprob: float) -> dict:
        piece = lp.pieces[token]
        return {"token": piece.text, "logprob": logprob, "bytes": list(piece.bytes)}

    content = [{**entry(t, v), "top_logprobs": [entry(a, w) for a, w in top]}
               for t, v, top in zip(lp.token_ids, lp.token_logprobs, lp.top_logprobs) if v is not None]
    return {"content": content, "refusal": None}
